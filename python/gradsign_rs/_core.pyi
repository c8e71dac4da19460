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
