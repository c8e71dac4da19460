"""Stub of the compiled module `gradsign_rs._core` (Rust, PyO3)."""

import numpy as np
import numpy.typing as npt

__version__: str

class GradSignError(ValueError):
    """Bad input: the message names the file, node, op, shape or value at fault."""

class SignAccumulator:
    """Integer sign counters for `n_weights` scored weights; O(n_weights) memory for any number of samples."""

    def __init__(self, n_weights: int, *, num_threads: int | None = None) -> None: ...
    def update(self, offset: int, block: npt.NDArray[np.float32]) -> None:
        """Add sign(block) to weights offset..offset+len; block is (len,) or (samples, len); NaN and 0 count 0."""
    def score(self) -> int:
        """Exact Σ_k |count_k|."""
    def segment_scores(self, bounds: list[int]) -> list[int]:
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
