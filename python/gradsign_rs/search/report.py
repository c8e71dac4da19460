"""Summaries of search runs: mean +- std of the found networks' accuracies, paired gains, anytime curves, a report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gradsign_rs.search.benchmark import FINAL_COLUMNS
from gradsign_rs.search.runner import VANILLA
from gradsign_rs.search.runs_file import parse_incumbents

# Short names for tables; the NAS-Bench-201 paper's valid/test pairs plus the GradSign paper's CIFAR-10 target.
LABELS = {
    "c10valid_valid_200ep": "C10 valid",
    "c10valid_test_200ep": "C10-valid test",
    "c10_test_200ep": "C10 test",
    "c100_valid_200ep": "C100 valid",
    "c100_test_200ep": "C100 test",
    "in16_valid_200ep": "IN16 valid",
    "in16_test_200ep": "IN16 test",
}
ANYTIME_TARGETS = ("c10valid_test_200ep", "c10_test_200ep", "c100_test_200ep", "in16_test_200ep")

# Published NAS-Bench-201 results (500 runs, 12000 s, mean +- std) that could be checked against a stored copy;
# all are secondary copies of the NAS-Bench-201 paper's table. Values not found are left out, not guessed.
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "rs": {"c10_test_200ep": (93.70, 0.36)},
    "reinforce": {"c10valid_valid_200ep": (91.09, 0.37), "c10_test_200ep": (93.85, 0.37)},
}
PUBLISHED_SOURCES = (
    "REINFORCE CIFAR-10 valid/test 91.09 ± 0.37 / 93.85 ± 0.37: the NAS-Bench-201 rows quoted in Termritthikun "
    "et al., EEEA-Net (Eng. Appl. AI 2021, doi:10.1016/j.engappai.2021.104397), Table 9, and in the RMI-NAS "
    "README (CIFAR-10 test). The two disagree on REINFORCE's CIFAR-100 / ImageNet16-120 test accuracy "
    "(70.17 ± 1.61 / 43.16 ± 2.28 vs 71.71 ± 1.09 / 45.24 ± 1.18), so neither is quoted here. "
    "RS CIFAR-10 test 93.70 ± 0.36: as quoted from LLMatic's NAS-Bench-201 table in a public review of that paper. "
    "REA and BOHB rows were not found in the stored sources."
)


def runs_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows of a runs file (strings or numbers) as a typed frame; a run that evaluated nothing has NaN accuracies."""
    frame = pd.DataFrame(rows)
    numeric = [
        "seed",
        "evaluations",
        "seconds_used",
        "proxy_seconds",
        "proxy_scored",
        "best_valid_12ep",
        *FINAL_COLUMNS,
    ]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values(["algo", "assist", "seed"], kind="stable").reset_index(drop=True)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (algo, assist): runs, runs that found a network, mean evaluations and seconds, mean and std per target."""
    groups = frame.groupby(["algo", "assist"], sort=True)
    summary = groups.agg(
        runs=("seed", "size"),
        found=("best_valid_12ep", "count"),
        evaluations=("evaluations", "mean"),
        seconds_used=("seconds_used", "mean"),
        proxy_seconds=("proxy_seconds", "mean"),
    )
    for target in FINAL_COLUMNS:
        summary[f"{target}_mean"] = groups[target].mean()
        summary[f"{target}_std"] = groups[target].std(ddof=1)
    return summary


def paired_gains(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (algo, assisting proxy): mean and standard error of assisted - vanilla accuracy over the shared seeds."""
    records = []
    vanilla = frame[frame["assist"] == VANILLA].set_index(["algo", "seed"])
    for (algo, assist), group in frame[frame["assist"] != VANILLA].groupby(["algo", "assist"], sort=True):
        baseline = vanilla[list(FINAL_COLUMNS)].add_suffix("_vanilla")
        paired = group.set_index(["algo", "seed"]).join(baseline, how="inner")
        record: dict[str, object] = {"algo": algo, "assist": assist, "pairs": len(paired)}
        for target in FINAL_COLUMNS:
            gain = paired[target] - paired[f"{target}_vanilla"]
            record[f"{target}_gain"] = gain.mean()
            record[f"{target}_se"] = gain.std(ddof=1) / np.sqrt(gain.count()) if gain.count() > 1 else np.nan
        records.append(record)
    return pd.DataFrame(records)


def anytime_curves(
    frame: pd.DataFrame, finals: pd.DataFrame, target: str, grid: np.ndarray
) -> dict[tuple[str, str], np.ndarray]:
    """Mean over runs of the incumbent's `target` accuracy at each time of `grid` (s), per (algo, assist).

    The incumbent at time t is the best-by-validation network among those evaluated by t. A time before some run's
    first evaluation is NaN, so every plotted point averages the same runs.
    """
    curves = {}
    values = finals[target]
    for key, group in frame.groupby(["algo", "assist"], sort=True):
        per_run = np.full((len(group), len(grid)), np.nan)
        for row, cell in enumerate(group["incumbents"].fillna("")):
            incumbents = parse_incumbents(str(cell))
            if not incumbents:
                continue
            times = np.array([t for t, _ in incumbents])
            accuracy = values.loc[[i for _, i in incumbents]].to_numpy()
            position = np.searchsorted(times, grid, side="right") - 1
            per_run[row] = np.where(position >= 0, accuracy[np.maximum(position, 0)], np.nan)
        curves[key] = per_run.mean(axis=0)  # NaN wherever any run has no incumbent yet
    return curves


def _mean_std(mean: float, std: float) -> str:
    return "–" if np.isnan(mean) else f"{mean:.2f} ± {0.0 if np.isnan(std) else std:.2f}"


def format_summary(summary: pd.DataFrame, targets: tuple[str, ...] = FINAL_COLUMNS) -> str:
    """A plain-text table for the terminal."""
    header = f"{'algo':<10} {'assist':<10} {'runs':>5} {'evals':>6}  " + "  ".join(f"{LABELS[t]:>15}" for t in targets)
    lines = [header]
    for (algo, assist), row in summary.iterrows():
        cells = "  ".join(f"{_mean_std(row[f'{t}_mean'], row[f'{t}_std']):>15}" for t in targets)
        lines.append(f"{algo:<10} {assist:<10} {int(row['runs']):>5} {row['evaluations']:>6.1f}  {cells}")
    return "\n".join(lines)


def summary_json(summary: pd.DataFrame, gains: pd.DataFrame) -> dict[str, object]:
    """Summary and paired gains as plain JSON-able data."""

    def clean(value: object) -> object:
        return None if isinstance(value, float) and np.isnan(value) else value

    groups = [
        {
            "algo": algo,
            "assist": assist,
            **{k: clean(float(v) if k not in ("runs", "found") else int(v)) for k, v in row.items()},
        }
        for (algo, assist), row in summary.iterrows()
    ]
    return {"groups": groups, "paired_gains": [{k: clean(v) for k, v in r.items()} for r in gains.to_dict("records")]}


def write_report(
    frame: pd.DataFrame, finals: pd.DataFrame, out: Path, *, budget: float, title: str, notes: str
) -> None:
    """summary.md, summary.json and anytime.png (best test accuracy vs simulated time, vanilla vs assisted) in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    summary, gains = summarize(frame), paired_gains(frame)
    columns = list(FINAL_COLUMNS)
    lines = [f"# {title}", "", notes, ""]
    lines += [
        "Accuracy (%) of the network each run found (best by 12-epoch validation accuracy), mean ± std over runs:",
        "",
    ]
    lines += [
        "| algorithm | assist | runs | evaluations | search s (proxy s) | "
        + " | ".join(LABELS[c] for c in columns)
        + " |"
    ]
    lines += ["|---" * (5 + len(columns)) + "|"]
    for (algo, assist), row in summary.iterrows():
        lines.append(
            f"| {algo} | {assist} | {int(row['runs'])} | {row['evaluations']:.1f} | "
            f"{row['seconds_used']:.0f} ({row['proxy_seconds']:.0f}) | "
            + " | ".join(_mean_std(row[f"{c}_mean"], row[f"{c}_std"]) for c in columns)
            + " |"
        )
    if len(gains):
        lines += ["", "Assisted − vanilla, paired by seed (mean ± standard error):", ""]
        lines += ["| algorithm | assist | pairs | " + " | ".join(LABELS[c] for c in columns) + " |"]
        lines += ["|---" * (3 + len(columns)) + "|"]
        for record in gains.to_dict("records"):
            lines.append(
                f"| {record['algo']} | {record['assist']} | {record['pairs']} | "
                + " | ".join(f"{record[f'{c}_gain']:+.2f} ± {record[f'{c}_se']:.2f}" for c in columns)
                + " |"
            )
    lines += ["", "Published NAS-Bench-201 results for the vanilla algorithms (12000 s, 500 runs), where found:", ""]
    lines += ["| algorithm | " + " | ".join(LABELS[c] for c in columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for algo, published in PUBLISHED.items():
        lines.append(
            f"| {algo} | " + " | ".join(_mean_std(*published[c]) if c in published else "" for c in columns) + " |"
        )
    lines += ["", f"Sources: {PUBLISHED_SOURCES}", ""]

    grid = np.linspace(0.0, budget, 241)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    colors = dict(zip(sorted(frame["algo"].unique()), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, target in zip(axes.flat, ANYTIME_TARGETS):
        curves = anytime_curves(frame, finals, target, grid)
        for (algo, assist), curve in curves.items():
            ax.plot(
                grid,
                curve,
                color=colors[algo],
                linestyle="-" if assist == VANILLA else "--",
                label=algo if assist == VANILLA else f"{algo} + {assist}",
            )
        # Zoom on where the algorithms differ: the range the curves span after the first sixth of the budget.
        late = np.array([curve[grid >= budget / 6] for curve in curves.values()])
        if np.isfinite(late).any():
            low, high = np.nanmin(late), np.nanmax(late)
            ax.set_ylim(low - 0.25 * (high - low) - 0.1, high + 0.1 * (high - low) + 0.1)
        ax.set_title(LABELS[target])
        ax.set_ylabel("accuracy of the incumbent (%)")
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("simulated search time (s)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Anytime performance: mean over runs of the best-by-validation network's test accuracy")
    fig.tight_layout()
    fig.savefig(out / "anytime.png", dpi=120)
    plt.close(fig)
    lines += ["![anytime curves](anytime.png)", ""]
    (out / "summary.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(summary_json(summary, gains), indent=2) + "\n")
