"""This project's proxies against published values of the same proxies on the same NAS-Bench-201 architectures.

The published values are NAS-Bench-Suite-Zero's (`peer_proxies_cifar10.csv` in the shared data: 9445 architectures
without dead operations). They were computed with other seeds, batches and code, so agreement is judged by rank:
the Spearman correlation between our value and the published value over the architectures both have. Beside it,
each proxy's Spearman correlation with a trained accuracy, ours and published, on the same architectures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from gradsign_rs import stats
from gradsign_rs._core import GradSignError

# Our proxy name -> the published column, where the names differ.
PUBLISHED_NAMES = {"jacob_cov": "jacov"}
AGREEMENT_BAR = 0.9


@dataclasses.dataclass(frozen=True)
class ProxyAgreement:
    """One proxy: rank agreement with the published values and both correlations with the target."""

    proxy: str
    n: int
    spearman_vs_published: float
    ours_vs_target: float
    published_vs_target: float

    @property
    def passes(self) -> bool:
        return bool(self.spearman_vs_published >= AGREEMENT_BAR)


def compare(ours: pd.DataFrame, published: pd.DataFrame, truth: pd.Series) -> list[ProxyAgreement]:
    """Every proxy column of `ours` that `published` also has; all three indexed by architecture index."""
    rows = []
    for proxy in ours.columns:
        column = PUBLISHED_NAMES.get(proxy, proxy)
        if column not in published.columns:
            continue
        joined = pd.concat(
            {"ours": ours[proxy], "published": published[column], "target": truth}, axis=1, join="inner"
        ).replace([np.inf, -np.inf], np.nan).dropna()
        if len(joined) < 2:
            raise GradSignError(f"proxy {proxy!r}: fewer than 2 architectures with finite values in both tables")
        rows.append(
            ProxyAgreement(
                proxy=proxy,
                n=len(joined),
                spearman_vs_published=stats.spearman(joined["ours"], joined["published"]),
                ours_vs_target=stats.spearman(joined["ours"], joined["target"]),
                published_vs_target=stats.spearman(joined["published"], joined["target"]),
            )
        )
    if not rows:
        raise GradSignError(f"no proxy column of {list(ours.columns)} is in the published table")
    return rows


def markdown(rows: list[ProxyAgreement], *, target: str, source: str) -> str:
    """A table of the agreements, with the bar and what each column means."""
    lines = [
        "| proxy | architectures | Spearman ours vs published | ours vs target | published vs target | >= 0.9 |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.proxy} | {r.n} | {r.spearman_vs_published:.4f} | {r.ours_vs_target:.4f} | "
            f"{r.published_vs_target:.4f} | {'PASS' if r.passes else 'FAIL'} |"
        )
    lines += [
        "",
        f"Target: `{target}`. Our values: `{source}`. Published: NAS-Bench-Suite-Zero (`peer_proxies_cifar10.csv`).",
        "Correlations are Spearman's rho over the architectures where both values are finite.",
    ]
    return "\n".join(lines) + "\n"


def write_report(rows: list[ProxyAgreement], out: Path, *, target: str, source: str, notes: str = "") -> None:
    """validation.md and validation.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    text = "# Proxies vs published values (NAS-Bench-201, CIFAR-10)\n\n" + (notes + "\n\n" if notes else "")
    (out / "validation.md").write_text(text + markdown(rows, target=target, source=source))
    table = pd.DataFrame([dataclasses.asdict(r) | {"passes": r.passes} for r in rows])
    (out / "validation.json").write_text(table.to_json(orient="records", indent=2) + "\n")
