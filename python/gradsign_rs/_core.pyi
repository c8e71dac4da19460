"""Stub of the compiled module `gradsign_rs._core` (Rust, PyO3), checked against it by `mypy.stubtest`.

Every argument error is a GradSignError naming the argument; a buffer the machine cannot hold is a MemoryError
naming the argument and the bytes; `num_threads` is None (one per core) or 1..=1024.
"""

from typing import final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "GradSignError",
    "SignAccumulator",
    "spearman",
    "kendall_tau",
    "precision_at_k",
    "top_k_regret",
    "correlate",
    "bootstrap_rows",
    "hamming_matrix",
]

__version__: str

class GradSignError(ValueError):
    """Bad input: the message names the file, node, op, shape or value at fault."""

@final
class SignAccumulator:
    """Integer sign counters for `n_weights` scored weights; O(n_weights) memory for any number of samples."""

    def __new__(cls, n_weights: int, *, num_threads: int | None = None) -> SignAccumulator: ...
    def update(self, offset: int, block: npt.NDArray[np.floating | np.integer | np.bool_]) -> None:
        """Add sign(block) to weights offset..offset+len; block is (len,) or (samples, len) in any layout;
        float32/float64 read as they are, float16/integers/bool converted exactly; NaN and 0 count 0."""
    def score(self) -> int:
        """Exact Σ_k |count_k|."""
    def segment_scores(self, bounds: list[int] | tuple[int, ...]) -> list[int]:
        """Σ|count| over each [bounds[s], bounds[s+1])."""
    def counts(self) -> npt.NDArray[np.int32]: ...
    def reset(self) -> None: ...
    @property
    def n_weights(self) -> int: ...
    @property
    def num_threads(self) -> int: ...

# Rank statistics (rust/rank.rs, rust/resample.rs); wrapped with validation in gradsign_rs.stats.

def spearman(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], *, nan_policy: str = "omit") -> float:
    """Spearman's rho with average ranks for ties, as scipy.stats.spearmanr's statistic."""

def kendall_tau(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], *, variant: str = "b", nan_policy: str = "omit"
) -> float:
    """Kendall's tau-b ("b") or tau-c ("c") in O(n log n), as scipy.stats.kendalltau's statistic."""

def precision_at_k(
    scores: npt.NDArray[np.float64], truth: npt.NDArray[np.float64], k: int, *, nan_policy: str = "omit"
) -> float:
    """Fraction of the true top-k found in the top-k by score."""

def top_k_regret(
    scores: npt.NDArray[np.float64], truth: npt.NDArray[np.float64], k: int, *, nan_policy: str = "omit"
) -> float:
    """Best truth overall minus the best truth among the top-k by score."""

def correlate(
    columns: list[npt.NDArray[np.float64]],
    truth: npt.NDArray[np.float64],
    *,
    methods: list[str],
    bootstrap: int,
    seed: int,
    confidence: float,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pairs used (C,), estimates, interval lows and highs (C, len(methods)); NaN pairs omitted."""

def bootstrap_rows(n: int, bootstrap: int, seed: int) -> npt.NDArray[np.uint32]:
    """The rows each resample of `correlate` draws: shape (bootstrap, n)."""

def hamming_matrix(codes: npt.NDArray[np.uint8], *, num_threads: int | None = None) -> npt.NDArray[np.uint64]:
    """Hamming distances between the rows of bit-packed codes (e.g. np.packbits(..., axis=1)): (rows, rows)."""
