"""This project's proxies against published values of the same proxies on the same NAS-Bench-201 architectures.

The published values are NAS-Bench-Suite-Zero's (`peer_proxies_cifar10.csv` in the shared data: 9445 architectures
without dead operations). They were computed with other seeds, batches and code, so agreement is judged by rank:
the Spearman correlation between our value and the published value over the architectures both have. Beside it,
each proxy's Spearman correlation with a trained accuracy, ours and published, on the same architectures.

A second published source, NASLib's NAS-Bench-Suite-Zero subset of 725 architectures
(`suite_zero/zc_nasbench201_subset725.json`), measures how well published values agree with each other: the
Spearman correlation of the two sources over the architectures they share is the ceiling that agreement with
either one can be expected to reach.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from gradsign_rs import stats
from gradsign_rs._core import GradSignError
from gradsign_rs.spaces import nb201

# Our proxy name -> the published column, where the names differ.
PUBLISHED_NAMES = {"jacob_cov": "jacov"}
AGREEMENT_BAR = 0.9
# NASLib's NAS-Bench-201 encoding: op ids, and the edge (target, source) of each tuple position.
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))


def read_suite_zero(path: str | Path, dataset: str = "cifar10") -> pd.DataFrame:
    """NASLib's NAS-Bench-Suite-Zero JSON ({dataset: {"(op ids)": {proxy: {"score": v}, ...}}}) as a table of
    proxy scores indexed by NAS-Bench-201 index."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())[dataset]
    except FileNotFoundError:
        raise GradSignError(f"published values {str(path)!r} do not exist") from None
    except OSError as exc:
        raise GradSignError(f"published values {str(path)!r}: cannot read them ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise GradSignError(f"{path}: not a NAS-Bench-Suite-Zero JSON with a {dataset!r} section ({exc!r})") from exc
    rows = {}
    for key, proxies in entries.items():
        try:
            ids = ast.literal_eval(key)
            by_edge = {edge: NASLIB_OPS[op] for edge, op in zip(NASLIB_EDGES, ids, strict=True)}
            arch = nb201.Arch(tuple(by_edge[edge] for edge in nb201.EDGES))
        except (ValueError, SyntaxError, TypeError, IndexError) as exc:
            raise GradSignError(f"{path}: {dataset} entry {key!r} is not a NASLib NAS-Bench-201 op tuple") from exc
        rows[arch.index] = {
            name: value["score"] for name, value in proxies.items() if isinstance(value, dict) and "score" in value
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("index")


@dataclasses.dataclass(frozen=True)
class ProxyAgreement:
    """One proxy: rank agreement with the published values and both correlations with the target."""

    proxy: str
    n: int
    spearman_vs_published: float
    ours_vs_target: float
    published_vs_target: float
    # Against the second published source, where it has the proxy (NaN otherwise): architectures shared with
    # ours, our agreement with it, and the two published sources' agreement with each other.
    n_second: int = 0
    ours_vs_second: float = math.nan
    n_published_second: int = 0
    published_vs_second: float = math.nan

    @property
    def passes(self) -> bool:
        return bool(self.spearman_vs_published >= AGREEMENT_BAR)


def _finite_join(columns: dict[str, pd.Series]) -> pd.DataFrame:
    """The named columns on the architectures where all of them are finite."""
    return pd.concat(columns, axis=1, join="inner").replace([np.inf, -np.inf], np.nan).dropna()


def _second_source(ours: pd.Series, published: pd.Series, second: pd.DataFrame | None, column: str) -> dict:
    """n_second, ours_vs_second and published_vs_second of one proxy (defaults where `second` lacks it)."""
    if second is None or column not in second.columns:
        return {}
    with_ours = _finite_join({"ours": ours, "second": second[column]})
    between = _finite_join({"published": published, "second": second[column]})
    return {
        "n_second": len(with_ours),
        "ours_vs_second": stats.spearman(with_ours["ours"], with_ours["second"]) if len(with_ours) > 1 else math.nan,
        "n_published_second": len(between),
        "published_vs_second": stats.spearman(between["published"], between["second"])
        if len(between) > 1
        else math.nan,
    }


def compare(
    ours: pd.DataFrame, published: pd.DataFrame, truth: pd.Series, second: pd.DataFrame | None = None
) -> list[ProxyAgreement]:
    """Every proxy column of `ours` that `published` also has; all indexed by architecture index. `second`: another
    published source (`read_suite_zero`), compared with ours and with `published` where it has the proxy."""
    rows = []
    for proxy in ours.columns:
        column = PUBLISHED_NAMES.get(proxy, proxy)
        if column not in published.columns:
            continue
        joined = _finite_join({"ours": ours[proxy], "published": published[column], "target": truth})
        if len(joined) < 2:
            raise GradSignError(f"proxy {proxy!r}: fewer than 2 architectures with finite values in both tables")
        rows.append(
            ProxyAgreement(
                proxy=proxy,
                n=len(joined),
                spearman_vs_published=stats.spearman(joined["ours"], joined["published"]),
                ours_vs_target=stats.spearman(joined["ours"], joined["target"]),
                published_vs_target=stats.spearman(joined["published"], joined["target"]),
                **_second_source(ours[proxy], published[column], second, column),
            )
        )
    if not rows:
        raise GradSignError(f"no proxy column of {list(ours.columns)} is in the published table")
    return rows


def markdown(
    rows: list[ProxyAgreement], *, target: str, source: str, published: str = "peer_proxies_cifar10.csv"
) -> str:
    """A table of the agreements, with the bar and what each column means."""
    second = any(r.n_second for r in rows)
    extra = " ours vs second (architectures) | published vs second (architectures) |" if second else ""
    lines = [
        f"| proxy | architectures | Spearman ours vs published | ours vs target | published vs target | >= 0.9 |{extra}",
        "|---|---:|---:|---:|---:|---|" + ("---:|---:|" if second else ""),
    ]
    for r in rows:
        cells = (
            f" {r.ours_vs_second:.4f} ({r.n_second}) | {r.published_vs_second:.4f} ({r.n_published_second}) |"
            if r.n_second
            else " | |"
        )
        lines.append(
            f"| {r.proxy} | {r.n} | {r.spearman_vs_published:.4f} | {r.ours_vs_target:.4f} | "
            f"{r.published_vs_target:.4f} | {'PASS' if r.passes else 'FAIL'} |" + (cells if second else "")
        )
    lines += [
        "",
        f"Target: `{target}`. Our values: `{source}`. Published: NAS-Bench-Suite-Zero (`{published}`).",
        "Correlations are Spearman's rho over the architectures where both values are finite.",
    ]
    if second:
        lines.append(
            "Second: NASLib's NAS-Bench-Suite-Zero subset (`zc_nasbench201_subset725.json`); `published vs second` is "
            "the two published sources' agreement on the architectures they share, the ceiling for either."
        )
    return "\n".join(lines) + "\n"


def write_report(
    rows: list[ProxyAgreement],
    out: Path,
    *,
    target: str,
    source: str,
    notes: str = "",
    published: str = "peer_proxies_cifar10.csv",
    title: str = "Proxies vs published values (NAS-Bench-201, CIFAR-10)",
) -> None:
    """validation.md and validation.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    text = f"# {title}\n\n" + (notes + "\n\n" if notes else "")
    (out / "validation.md").write_text(text + markdown(rows, target=target, source=source, published=published))
    table = pd.DataFrame([dataclasses.asdict(r) | {"passes": r.passes} for r in rows])
    (out / "validation.json").write_text(table.to_json(orient="records", indent=2) + "\n")
