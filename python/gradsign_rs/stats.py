"""Rank statistics of scores against ground truth, computed by the Rust core.

Spearman's rho and Kendall's tau equal the statistics of scipy.stats.spearmanr / kendalltau (scipy is the
reference in the tests, never a dependency here). Inputs are 1-D arrays or lists of any real dtype, converted
to float64; results are Python floats. `nan_policy` follows scipy: "omit" drops the pairs where either value is
NaN, "propagate" returns NaN, "raise" raises GradSignError naming the first NaN's position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from gradsign_rs import _core
from gradsign_rs._core import GradSignError

__all__ = [
    "NAN_POLICIES",
    "METHODS",
    "spearman",
    "kendall_tau",
    "precision_at_k",
    "top_k_regret",
    "correlate",
    "bootstrap_rows",
]

NAN_POLICIES = ("omit", "propagate", "raise")
# Names `correlate` accepts; "kendall" is tau-b.
METHODS = ("spearman", "kendall", "kendall_c")


def _as_float64(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """`values` as a contiguous 1-D float64 array; bool, integer and float dtypes are accepted."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise GradSignError(f"{name} must be 1-D, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise GradSignError(f"{name} must be real numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float64)


def spearman(x: npt.ArrayLike, y: npt.ArrayLike, *, nan_policy: str = "omit") -> float:
    """Spearman's rank correlation rho in [-1, 1] (average ranks for ties).

    NaN for fewer than two pairs or a constant input, as scipy.
    """
    return _core.spearman(_as_float64(x, "x"), _as_float64(y, "y"), nan_policy=nan_policy)


def kendall_tau(x: npt.ArrayLike, y: npt.ArrayLike, *, variant: str = "b", nan_policy: str = "omit") -> float:
    """Kendall's tau in [-1, 1]: tau-b (ties corrected, `variant="b"`) or Stuart's tau-c (`"c"`), O(n log n).

    NaN for fewer than two pairs or a constant input, as scipy.
    """
    return _core.kendall_tau(_as_float64(x, "x"), _as_float64(y, "y"), variant=variant, nan_policy=nan_policy)


def precision_at_k(scores: npt.ArrayLike, truth: npt.ArrayLike, k: int, *, nan_policy: str = "omit") -> float:
    """The fraction (0..1) of the k best by `truth` that are also among the k best by `scores`.

    Higher is better in both; ties at the k-th place go to the earlier position. 1 <= k <= number of pairs.
    """
    return _core.precision_at_k(
        _as_float64(scores, "scores"), _as_float64(truth, "truth"), _positive_int(k, "k"), nan_policy=nan_policy
    )


def top_k_regret(scores: npt.ArrayLike, truth: npt.ArrayLike, k: int, *, nan_policy: str = "omit") -> float:
    """Best `truth` overall minus the best `truth` among the k best by `scores` (>= 0, in `truth`'s units)."""
    return _core.top_k_regret(
        _as_float64(scores, "scores"), _as_float64(truth, "truth"), _positive_int(k, "k"), nan_policy=nan_policy
    )


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GradSignError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _nonnegative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**64:
        raise GradSignError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return int(value)


def _score_columns(score_table: Mapping[Any, npt.ArrayLike] | pd.DataFrame) -> dict[Any, npt.NDArray[np.float64]]:
    """Column name -> float64 values, in the table's order."""
    if isinstance(score_table, pd.DataFrame):
        items: Iterable[tuple[Any, Any]] = score_table.items()
    elif isinstance(score_table, Mapping):
        items = score_table.items()
    else:
        raise GradSignError(
            f"score_table must be a dict of name -> array or a DataFrame, got {type(score_table).__name__}"
        )
    if isinstance(score_table, pd.DataFrame) and score_table.columns.duplicated().any():
        raise GradSignError(
            f"score_table has duplicate columns: {list(score_table.columns[score_table.columns.duplicated()])}"
        )
    columns = {name: _as_float64(values, f"score column {name!r}") for name, values in items}
    if not columns:
        raise GradSignError("score_table has no columns")
    return columns


def _first_nan(values: npt.NDArray[np.float64]) -> int | None:
    nan = np.isnan(values)
    return int(nan.argmax()) if nan.any() else None


def correlate(
    score_table: Mapping[Any, npt.ArrayLike] | pd.DataFrame,
    truth: npt.ArrayLike,
    *,
    methods: Iterable[str] = ("spearman", "kendall"),
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    num_threads: int | None = None,
    nan_policy: str = "omit",
) -> pd.DataFrame:
    """Every score column against `truth`, with percentile bootstrap intervals, computed in parallel.

    `score_table` maps column names to arrays (or is a DataFrame), each as long as `truth`. Each of the
    `bootstrap` resamples draws that many rows with replacement (seeded by `seed` and the resample number),
    the same rows for every column, so intervals are comparable and independent of `num_threads` (None: one
    thread per core). The interval is the central `confidence` range of the resample statistics, leaving out
    resamples where a statistic is NaN (e.g. a constant resample); bootstrap=0 gives NaN intervals.

    Returns a DataFrame indexed by column name ("score") with `n` (pairs used; all rows for a column that
    "propagate" leaves NaN) and, per method m in `methods`
    ("spearman", "kendall" = tau-b, "kendall_c"), the columns m, m_low and m_high.
    """
    columns = _score_columns(score_table)
    y = _as_float64(truth, "truth")
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise GradSignError(f"methods must be distinct names among {METHODS}, got {methods!r}")
    if nan_policy not in NAN_POLICIES:
        raise GradSignError(f"unknown nan_policy {nan_policy!r}: use 'omit', 'propagate' or 'raise'")
    bootstrap = _nonnegative_int(bootstrap, "bootstrap")
    seed = _nonnegative_int(seed, "seed")
    if num_threads is not None:
        num_threads = _positive_int(num_threads, "num_threads")
    for name, x in columns.items():
        if len(x) != len(y):
            raise GradSignError(f"score column {name!r} has {len(x)} values but truth has {len(y)}")

    names = list(columns)
    computed = _columns_to_compute(y, [columns[c] for c in names], names, nan_policy)
    n_pairs = np.full(len(names), len(y), dtype=np.int64)
    estimate, low, high = (np.full((len(names), len(methods)), np.nan) for _ in range(3))
    if computed:
        n_pairs[computed], estimate[computed], low[computed], high[computed] = _core.correlate(
            [columns[names[i]] for i in computed],
            y,
            methods=list(methods),
            bootstrap=bootstrap,
            seed=seed,
            confidence=float(confidence),
            num_threads=num_threads,
        )
    data: dict[str, npt.NDArray[Any]] = {"n": n_pairs}
    for j, m in enumerate(methods):
        data[m], data[f"{m}_low"], data[f"{m}_high"] = estimate[:, j], low[:, j], high[:, j]
    return pd.DataFrame(data, index=pd.Index(names, name="score"))


def _columns_to_compute(
    y: npt.NDArray[np.float64], xs: list[npt.NDArray[np.float64]], names: list[Any], nan_policy: str
) -> list[int]:
    """Positions of the columns to compute: all under "omit"; under "propagate" those with no NaN in the pair
    (the others stay NaN); "raise" refuses the first NaN, truth first."""
    if nan_policy == "omit":
        return list(range(len(xs)))
    truth_nan = _first_nan(y)
    if truth_nan is not None and nan_policy == "raise":
        raise GradSignError(f"truth is NaN at position {truth_nan} (nan_policy='raise')")
    computed = []
    for i, x in enumerate(xs):
        position = _first_nan(x)
        if position is not None and nan_policy == "raise":
            raise GradSignError(f"score column {names[i]!r} is NaN at position {position} (nan_policy='raise')")
        if position is None and truth_nan is None:
            computed.append(i)
    return computed


def bootstrap_rows(n: int, bootstrap: int, seed: int) -> npt.NDArray[np.intp]:
    """The rows `correlate` resamples for a table of `n` rows: shape (bootstrap, n), row b for resample b."""
    rows = _core.bootstrap_rows(
        _nonnegative_int(n, "n"), _nonnegative_int(bootstrap, "bootstrap"), _nonnegative_int(seed, "seed")
    )
    return rows.astype(np.intp)
