"""score(): model -> per-sample gradients -> Rust sign accumulator -> Score."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time

import numpy as np

from gradsign_rs import engine, validate
from gradsign_rs._core import GradSignError, SignAccumulator
from gradsign_rs.frontend.pipeline import Network, prepare_network


@dataclasses.dataclass(frozen=True)
class Score:
    """A GradSign score: `value` = Σ_k |Σ_i sign(g_ik)| over the scored weights K (an exact integer)."""

    value: int
    n_samples: int
    n_weights: int
    per_layer: dict[str, int]
    layer_sizes: dict[str, int]
    seconds: float
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    # "paper" when the score follows the paper's protocol, "flagged" when not: `protocol_reasons` say why.
    protocol: str = "paper"
    protocol_reasons: tuple[str, ...] = ()
    # Exact adaptations made to the exported graph (a Softmax skipped, Dropout made inactive...).
    protocol_notes: tuple[str, ...] = ()

    @property
    def mean(self) -> float:
        """The mean variant: value / |K| (in [0, n_samples])."""
        return self.value / self.n_weights

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "mean": self.mean,
            "n_samples": self.n_samples,
            "n_weights": self.n_weights,
            "seconds": self.seconds,
            "timings": self.timings,
            "protocol": self.protocol,
            "protocol_reasons": list(self.protocol_reasons),
            "protocol_notes": list(self.protocol_notes),
            "per_layer": self.per_layer,
            "layer_sizes": self.layer_sizes,
        }


def _is_torch_module(model: object) -> bool:
    return any(cls.__module__.startswith("torch.nn") and cls.__name__ == "Module" for cls in type(model).__mro__)


def score(
    model: object,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    weights: str | list[str] = "conv_linear",
    provider: str = "cpu",
    num_threads: int | None = None,
    batchnorm: str = "train",
    input: str | None = None,
    output: str | None = None,
    constant_inputs: dict[str, np.ndarray] | None = None,
) -> Score:
    """GradSign of a classifier on labelled samples.

    model: ONNX path, os.PathLike, onnx.ModelProto, serialized bytes, a torch.nn.Module (exported on the fly by
        `from_torch`), or a `gradsign_rs.frontend.Network` already prepared.
    inputs: float `(N, ...)` matching the model's data input; labels: int `(N,)` class indices.
    weights: "conv_linear" (every Conv / fully connected weight, as the paper) or a list of initializer names.
    num_threads: samples run in parallel, each on a single-threaded onnxruntime lane (None: one per core); the
        score does not depend on it.
    """
    start = time.perf_counter()
    if _is_torch_module(model):
        from gradsign_rs.torch_export import from_torch

        model = from_torch(model, np.asarray(inputs)[:1])
    threads = validate.check_threads(num_threads)
    if not isinstance(model, Network):
        model = prepare_network(
            model, weights=weights, batchnorm=batchnorm, input=input, output=output, constant_inputs=constant_inputs
        )
    inputs, labels = validate.check_samples(model, inputs, labels)
    program = engine.program_of(model)
    source = engine.GradientSource(program, provider=provider)
    validate.check_labels(labels, source.num_classes(inputs[0]), program.source)
    prepared = time.perf_counter()
    workers = min(threads or os.cpu_count() or 1, len(labels))
    accumulator = SignAccumulator(program.n_weights, num_threads=1)
    results = _run_lanes(source, accumulator, inputs, labels, workers)
    nonfinite = sum(r.nonfinite for r in results)
    if nonfinite:  # NaN gradients count 0: a score from them would be a silently different number
        first = min(r.first_nonfinite for r in results if r.nonfinite)
        raise GradSignError(
            f"{program.source}: the loss is NaN or inf for {nonfinite} of {len(labels)} samples (first: sample "
            f"{first}): the network overflows float32 at these weights and inputs, so there is no score"
        )
    names = [w.name for w in program.weights]
    per_layer = dict(zip(names, accumulator.segment_scores(program.bounds)))
    end = time.perf_counter()
    return Score(
        value=accumulator.score(),
        n_samples=int(labels.shape[0]),
        n_weights=program.n_weights,
        per_layer=per_layer,
        layer_sizes={w.name: w.size for w in program.weights},
        seconds=end - start,
        timings={
            "prepare": prepared - start,
            "gradients": sum(r.gradient_seconds for r in results),
            "reduce": sum(r.reduce_seconds for r in results),
            "wall": end - prepared,
        },
        protocol=program.protocol.label,
        protocol_reasons=program.protocol.reasons,
        protocol_notes=program.protocol.notes,
    )


@dataclasses.dataclass
class _LaneResult:
    gradient_seconds: float = 0.0
    reduce_seconds: float = 0.0
    nonfinite: int = 0
    first_nonfinite: int = -1


def _run_lane(lane: engine.Lane, accumulator: SignAccumulator, inputs, labels, indices: range) -> _LaneResult:
    """Stream a strided share of the samples into the shared accumulator (integer sums commute: order-free)."""
    result = _LaneResult()
    tick = time.perf_counter()
    for index, flat in zip(indices, lane.stream(inputs, labels, indices)):
        mid = time.perf_counter()
        accumulator.update(0, flat)
        if not np.isfinite(lane.loss):
            result.first_nonfinite = index if result.nonfinite == 0 else result.first_nonfinite
            result.nonfinite += 1
        tock = time.perf_counter()
        result.gradient_seconds += mid - tick
        result.reduce_seconds += tock - mid
        tick = tock
    return result


def _run_lanes(source, accumulator, inputs, labels, workers: int) -> list[_LaneResult]:
    shares = [range(w, len(labels), workers) for w in range(workers)]
    if workers == 1:
        return [_run_lane(source.lane(), accumulator, inputs, labels, shares[0])]
    # onnxruntime and the Rust update release the GIL, so threads run samples in parallel.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gradsign-lane") as pool:
        futures = [pool.submit(_run_lane, source.lane(), accumulator, inputs, labels, share) for share in shares]
        return [f.result() for f in futures]
