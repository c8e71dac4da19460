"""Evaluation of a scores table against ground truth: rank statistics, precision@k, a markdown report and plots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gradsign_rs import stats
from gradsign_rs._core import GradSignError

TOP_K = (10, 100)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How well `score` ranks networks by `target`, over `n` networks with both values."""

    target: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    precision_at_k: dict[int, float]
    top_k_accuracy: dict[int, float]
    bootstrap: int

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _set_score_scale(ax, values) -> None:
    """Log x for positive scores; otherwise symlog, linear only below the smallest non-zero |score|, so that a
    group of zero scores (disconnected cells) sits one step left of the rest instead of decades away."""
    nonzero = values[values != 0].abs()
    if (values > 0).all():
        ax.set_xscale("log")
    elif len(nonzero):
        ax.set_xscale("symlog", linthresh=float(nonzero.min()))  # proxies such as jacob_cov are negative


def evaluate(
    table: pd.DataFrame, target: str, *, score: str = "score", bootstrap: int = 1000, seed: int = 0
) -> Evaluation:
    """Signed Spearman / Kendall tau-b with percentile bootstrap intervals, precision@k and top-k accuracy."""
    x = table[score].to_numpy(np.float64)
    y = table[target].to_numpy(np.float64)
    ci = stats.correlate({score: x}, y, methods=("spearman", "kendall"), bootstrap=bootstrap, seed=seed)
    row = ci.loc[score] if isinstance(ci, pd.DataFrame) and score in ci.index else ci.iloc[0]
    n_top = sorted({k for k in (*TOP_K, max(1, len(x) // 100)) if k <= len(x)})
    order = np.argsort(-x, kind="stable")
    return Evaluation(
        target=target,
        n=len(x),
        spearman=stats.spearman(x, y),
        spearman_ci=(float(row["spearman_low"]), float(row["spearman_high"])),
        kendall=stats.kendall_tau(x, y),
        kendall_ci=(float(row["kendall_low"]), float(row["kendall_high"])),
        precision_at_k={k: stats.precision_at_k(x, y, k) for k in n_top},
        top_k_accuracy={k: float(y[order[:k]].max()) for k in n_top},
        bootstrap=bootstrap,
    )


def subset_spearman(
    table: pd.DataFrame, masks: dict[str, np.ndarray], targets: list[str], *, score: str = "score"
) -> dict[str, dict[str, tuple[int, float]]]:
    """Spearman of `score` with each target within each named subset of the rows: {subset: {target: (n, rho)}}."""
    return {
        name: {t: (int(mask.sum()), stats.spearman(table[score][mask], table[t][mask])) for t in targets}
        for name, mask in masks.items()
        if mask.sum() >= 3
    }


def write_report(
    table: pd.DataFrame,
    evaluations: list[Evaluation],
    out: Path,
    *,
    title: str,
    notes: str = "",
    score: str = "score",
    subsets: dict[str, dict[str, tuple[int, float]]] | None = None,
    appendix: str = "",
) -> None:
    """summary.md (ending with `appendix`, markdown), evaluation.json, one scatter plot per target and the top-k
    curve, in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradSignError(f"--report {str(out)!r}: cannot create the folder ({exc.strerror})") from None
    label = "GradSign" if score == "score" else score  # a proxy column of `gradsign batch --proxies` is named by it
    lines = [f"# {title}", "", notes, "", f"Networks evaluated: {evaluations[0].n}.", ""]
    lines += [
        "| target | Spearman ρ (95% CI) | Kendall τ (95% CI) | "
        + " | ".join(f"precision@{k}" for k in evaluations[0].precision_at_k)
        + " |"
    ]
    lines += ["|---|---|---|" + "---|" * len(evaluations[0].precision_at_k)]
    for e in evaluations:
        lines.append(
            f"| {e.target} | {e.spearman:.4f} ({e.spearman_ci[0]:.4f}, {e.spearman_ci[1]:.4f}) | "
            f"{e.kendall:.4f} ({e.kendall_ci[0]:.4f}, {e.kendall_ci[1]:.4f}) | "
            + " | ".join(f"{v:.2f}" for v in e.precision_at_k.values())
            + " |"
        )
    lines += ["", "Best accuracy among the top-k networks by score:", ""]
    for e in evaluations:
        best = table[e.target].max()
        lines.append(
            f"- {e.target}: "
            + ", ".join(f"top-{k}: {v:.2f}" for k, v in e.top_k_accuracy.items())
            + f" (best in the table: {best:.2f})"
        )
    lines += ["", f"Intervals: percentile bootstrap over networks, {evaluations[0].bootstrap} resamples.", ""]
    if subsets:
        lines += [
            "Spearman ρ within subsets of the networks:",
            "",
            "| subset | networks | " + " | ".join(e.target for e in evaluations) + " |",
            "|---|---:|" + "---:|" * len(evaluations),
        ]
        for name, by_target in subsets.items():
            n = next(iter(by_target.values()))[0]
            lines.append(f"| {name} | {n} | " + " | ".join(f"{by_target[e.target][1]:.4f}" for e in evaluations) + " |")
        lines.append("")
    for e in evaluations:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter(table[score], table[e.target], s=3, alpha=0.35, linewidths=0)
        _set_score_scale(ax, table[score])
        ax.set_xlabel(label)
        ax.set_ylabel(f"{e.target} (%)")
        ax.margins(x=0.03, y=0.03)  # points on the extremes (zero scores, 10% accuracy) stay off the frame
        ax.set_title(f"ρ = {e.spearman:.3f}, τ = {e.kendall:.3f} (n = {e.n})")
        fig.tight_layout()
        fig.savefig(out / f"scatter_{e.target}.png", dpi=120)
        plt.close(fig)
        lines.append(f"![score vs {e.target}](scatter_{e.target}.png)")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ks = np.unique(np.geomspace(1, len(table), 60).astype(int))
    for e in evaluations:
        ranked = table.sort_values(score, ascending=False)[e.target].to_numpy()
        ax.plot(ks, [ranked[:k].max() for k in ks], label=f"best of top-k by {label} ({e.target})")
        ax.plot(ks, [ranked[:k].mean() for k in ks], linestyle="--", label=f"mean of top-k ({e.target})")
    ax.set_xscale("log")
    ax.set_xlabel(f"k (networks taken in {label} order)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "topk.png", dpi=120)
    plt.close(fig)
    lines += ["", "![accuracy of the top-k networks by score](topk.png)", ""]
    if appendix:
        lines += [appendix.rstrip(), ""]
    (out / "summary.md").write_text("\n".join(lines))
    payload = [e.to_dict() for e in evaluations]
    if subsets:
        payload.append(
            {"subsets": {k: {t: {"n": n, "spearman": r} for t, (n, r) in v.items()} for k, v in subsets.items()}}
        )
    (out / "evaluation.json").write_text(json.dumps(payload, indent=2) + "\n")
