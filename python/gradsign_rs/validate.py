"""The one validation boundary: samples, labels (including the logits width), thread counts, before any graph is
built or run. `score()` and every proxy call these and nothing else checks its arguments again."""

from __future__ import annotations

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.data import check_labels_array
from gradsign_rs.frontend._graph import static_shapes
from gradsign_rs.frontend.pin import pin_batch
from gradsign_rs.frontend.pipeline import Network

# More lanes than this only queue on each other: the limit keeps a typo from spawning thousands of threads.
MAX_THREADS = 1024


def check_threads(num_threads: object) -> int | None:
    """`num_threads` as an int in [1, MAX_THREADS], or None (one per core)."""
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
        raise GradSignError(f"num_threads must be an int or None, got {num_threads!r}")
    if not 1 <= int(num_threads) <= MAX_THREADS:
        raise GradSignError(f"num_threads must be between 1 and {MAX_THREADS}, got {num_threads}")
    return int(num_threads)


def check_samples(network: Network, inputs: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Samples and labels checked against the network's data input (declared dims, batch first, and dtype): at
    least one sample, float inputs of matching shape without NaN/inf, one integer label >= 0 per sample that fits
    int64. Returns C-contiguous arrays of the input's dtype and int64."""
    name, dims, dtype = network.data_input, network.input_dims, network.input_dtype
    if dims and isinstance(dims[0], int) and dims[0] > 1:
        raise GradSignError(
            f"{network.source}: the model's input {name!r} has a fixed batch size {dims[0]}; per-sample gradients "
            "need batch 1: export it with a dynamic (or size-1) batch dimension"
        )
    inputs = np.asarray(inputs)
    labels = np.asarray(labels)
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise GradSignError(f"no samples: inputs have shape {inputs.shape}; at least one sample is needed")
    if not np.issubdtype(inputs.dtype, np.floating):
        raise GradSignError(
            f"inputs have dtype {inputs.dtype}; the model's input {name!r} takes "
            f"{np.dtype(dtype).name} (normalise images first, e.g. with gradsign_rs.load_images)"
        )
    if dims and (
        len(dims) != inputs.ndim
        or any(isinstance(d, int) and d > 0 and d != s for d, s in zip(dims[1:], inputs.shape[1:]))
    ):
        shown = tuple(d if isinstance(d, int) and d > 0 else "?" for d in dims)
        raise GradSignError(f"inputs of shape {inputs.shape} do not match the model's input {name!r} of shape {shown}")
    if labels.shape != (inputs.shape[0],):
        raise GradSignError(f"labels have shape {labels.shape}, expected ({inputs.shape[0]},) to match the inputs")
    finite = np.isfinite(inputs.reshape(inputs.shape[0], -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise GradSignError(f"inputs contain NaN or inf in {bad.size} sample(s), first at index {bad[0]}")
    labels = check_labels_array(labels)
    return np.ascontiguousarray(inputs, dtype=dtype), np.ascontiguousarray(labels, dtype=np.int64)


def check_labels(labels: np.ndarray, classes: int, source: str) -> None:
    """Every label must index one of the model's `classes` logits (onnxruntime's loss reads out of bounds)."""
    if int(labels.max()) >= classes:
        raise GradSignError(
            f"{source}: label {int(labels.max())} (index {int(np.argmax(labels))}) is outside the model's "
            f"{classes} logits"
        )


def static_classes(network: Network) -> int | None:
    """The logits width from shape inference at batch 1, or None when only a forward pass can tell."""
    shape = static_shapes(pin_batch(network.proto, network.data_input, network.logits, 1)).get(network.logits)
    if shape is None:
        return None
    if len(shape) != 2:
        raise GradSignError(
            f"{network.source}: output {network.logits!r} has shape {shape} at batch 1; GradSign "
            "needs (N, classes) logits"
        )
    return int(shape[1])
