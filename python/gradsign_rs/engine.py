"""Per-sample gradients from onnxruntime-training, without torch and without training artifacts on disk.

`prepare()` turns a classifier into a gradient program: the forward graph plus a softmax cross-entropy loss on
integer labels, with the scored weights as graph inputs, differentiated by onnxruntime's GradientGraphBuilder.
`GradientSource` runs it one sample at a time (batch 1: BatchNorm normalises with that sample's statistics, as in
the authors' per-sample loop) and writes every gradient straight into one preallocated flat buffer, which the
caller consumes before the next sample overwrites it.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
from collections.abc import Iterator

import numpy as np
import onnx

from gradsign_rs._core import GradSignError
from gradsign_rs._ort import capi, ort, provider_name
from gradsign_rs.frontend import loss as loss_pass
from gradsign_rs.frontend._graph import serialize
from gradsign_rs.frontend.loss import LABELS, LOSS
from gradsign_rs.frontend.pin import pin_batch
from gradsign_rs.frontend.pipeline import Network, prepare_network
from gradsign_rs.frontend.protocol import Protocol
from gradsign_rs.frontend.prune import prune
from gradsign_rs.frontend.unshare import normalization_parameters
from gradsign_rs.frontend.weights import ScoredWeight, reachable_weights
from gradsign_rs.ort_errors import explain

# onnxruntime's graph transformers log at INFO by default: keep warnings and errors only.
ort.set_default_logger_severity(3)


@dataclasses.dataclass(frozen=True)
class GradientProgram:
    """A prepared model: the gradient graph and everything needed to feed it and lay out its gradients."""

    source: str
    graph: bytes
    key: str
    data_input: str
    input_dims: tuple[int | str | None, ...]
    input_dtype: type
    logits: str
    weights: tuple[ScoredWeight, ...]
    live: frozenset[str]
    # Tensors fed as inputs on every run: the scored weights and the normalisation parameters.
    weight_values: dict[str, np.ndarray]
    protocol: Protocol = Protocol(follows_paper=True)

    @property
    def n_weights(self) -> int:
        return sum(w.size for w in self.weights)

    @property
    def bounds(self) -> list[int]:
        """Offsets of each scored weight in the flat gradient buffer, plus the total."""
        return [0, *np.cumsum([w.size for w in self.weights]).tolist()]


_CACHE_SIZE = 32
_cache: collections.OrderedDict[str, bytes] = collections.OrderedDict()
_cache_lock = threading.Lock()


def _loss_graph(model: onnx.ModelProto, logits: str, live: set[str]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The per-sample loss program: labels and a cross-entropy loss on the logits, with the live scored weights
    and every normalisation parameter fed as inputs (`gradsign_rs.frontend.loss.feed_as_inputs` says why)."""
    with_loss = loss_pass.add_cross_entropy(model, logits, 1)
    return loss_pass.feed_as_inputs(with_loss, set(live) | normalization_parameters(with_loss.graph))


def _build_gradient_graph(loss_model: bytes, live: set[str], source: str) -> bytes:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the graph transformers log every pass at INFO
    # Only the training rewrites (BatchNorm -> training BatchNorm) are wanted here: with all optimisations on,
    # common-subexpression elimination merges NAS-Bench-201's parallel pooling edges so that the gradient builder
    # finds reachable weights "unreachable". The session optimises the finished gradient graph anyway.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        optimized = capi.get_optimized_model(loss_model, live, options)
        builder = capi.GradientGraphBuilder(optimized, {LOSS}, live, LOSS, options)
        builder.build()
        return builder.get_model()
    except Exception as exc:  # onnxruntime raises RuntimeError / its own Fail types
        raise explain(exc, source=source, what="building the gradient graph", model=loss_model) from exc


def gradient_graph(loss_model: bytes, requires_grad: set[str], source: str) -> bytes:
    """The gradient graph of a serialized model whose scalar output is `LOSS`, with `<name>_grad` outputs for the
    named graph inputs. Uncached; the same builder and error messages as `prepare` (used by `gradsign_rs.proxies`)."""
    return _build_gradient_graph(loss_model, requires_grad, source)


def _pruned(proto: onnx.ModelProto, weights: tuple[ScoredWeight, ...], logits: str) -> onnx.ModelProto:
    """`proto` without structural zeros and unread nodes (`gradsign_rs.frontend.prune`), after K is fixed: weights
    of pruned ops stay in K with gradient 0, exactly what they would have had. Unpruned if no weight would stay
    live (every weight then has gradient 0, and the unpruned graph still gives onnxruntime something to
    differentiate)."""
    pruned = prune(proto)
    return pruned if reachable_weights(pruned, list(weights), logits) else proto


def prepare(
    model: object,
    *,
    weights: str | list[str] = "conv_linear",
    batchnorm: str = "train",
    input: str | None = None,
    output: str | None = None,
    constant_inputs: dict[str, np.ndarray] | None = None,
) -> GradientProgram:
    """Prepare `model` with the front end (`gradsign_rs.frontend.pipeline.prepare_network`: every option is
    documented there) and build its per-sample gradient program (cached by the content hash of the loss graph)."""
    network = prepare_network(
        model, weights=weights, batchnorm=batchnorm, input=input, output=output, constant_inputs=constant_inputs
    )
    return program_of(network)


def program_of(network: Network) -> GradientProgram:
    """The per-sample (batch 1) gradient program of a prepared network."""
    source, logits = network.source, network.logits
    proto = pin_batch(network.proto, network.data_input, logits, 1)
    proto = _pruned(proto, network.weights, logits)
    live = reachable_weights(proto, list(network.weights), logits)
    if not live:
        raise GradSignError(
            f"{source}: none of the {len(network.weights)} scored weights reaches the output {logits!r}"
        )
    loss_model, values = _loss_graph(proto, logits, live)
    loss_bytes = serialize(loss_model, source)
    key = hashlib.sha256(loss_bytes).hexdigest()
    with _cache_lock:
        graph = _cache.get(key)
        if graph is not None:
            _cache.move_to_end(key)
    if graph is None:
        graph = _build_gradient_graph(loss_bytes, live, source)
        with _cache_lock:
            _cache[key] = graph
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return GradientProgram(
        source=source,
        graph=graph,
        key=key,
        data_input=network.data_input,
        input_dims=network.input_dims,
        input_dtype=network.input_dtype,
        logits=logits,
        weights=network.weights,
        live=frozenset(live),
        weight_values=values,
        protocol=network.protocol,
    )


def deterministic_session(graph: bytes, provider: str, what: str) -> ort.InferenceSession:
    """A single-threaded onnxruntime session with deterministic kernels: the float summation order, and so every
    sign and score, is the same on every run and for any number of lanes. `what` names the graph in errors."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.use_deterministic_compute = True
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(graph, options, providers=[provider_name(provider)])
    except GradSignError:
        raise
    except Exception as exc:
        raise explain(exc, source=what, what="loading the graph into a session", model=graph) from exc


class GradientSource:
    """One onnxruntime session over a gradient program, run one sample at a time.

    onnxruntime runs single-threaded: intra-op threads change the float summation order, so signs of near-zero
    gradients (and the score) would depend on the thread count. Parallelism comes from lanes instead: each lane
    has its own binding and buffer, and several lanes may run on different samples at once (Run is thread-safe).
    """

    def __init__(self, program: GradientProgram, *, provider: str = "cpu"):
        self._session = deterministic_session(program.graph, provider, f"{program.source}: the gradient graph")
        self.program = program
        outputs = {o.name for o in self._session.get_outputs()}
        for weight in program.weights:
            if weight.name in program.live and f"{weight.name}_grad" not in outputs:
                raise GradSignError(f"{program.source}: the gradient graph has no gradient for weight {weight.name!r}")

    def num_classes(self, sample: np.ndarray) -> int:
        """Run the forward pass on one sample and check the logits are (1, classes)."""
        feeds = {self.program.data_input: sample[None], LABELS: np.zeros(1, np.int64)}
        feeds.update(self.program.weight_values)
        try:
            (logits,) = self._session.run([self.program.logits], feeds)
        except Exception as exc:
            raise explain(exc, source=self.program.source, what="running the forward pass on one sample") from exc
        if logits.ndim != 2 or logits.shape[0] != 1:
            raise GradSignError(
                f"{self.program.source}: output {self.program.logits!r} has shape {tuple(logits.shape)} for one "
                "sample; GradSign needs (N, classes) logits"
            )
        return int(logits.shape[1])

    def lane(self) -> Lane:
        return Lane(self._session, self.program)


class Lane:
    """A binding whose gradient outputs are written straight into one flat float32 buffer (|K| values)."""

    def __init__(self, session: ort.InferenceSession, program: GradientProgram):
        self._session = session
        self.program = program
        self.buffer = np.zeros(program.n_weights, dtype=np.float32)
        self.loss = np.zeros((), dtype=np.float32)
        self._binding = session.io_binding()
        for name, value in program.weight_values.items():
            self._binding.bind_cpu_input(name, value)
        for weight, start in zip(program.weights, program.bounds):
            if weight.name not in program.live:
                continue  # unreachable: its slice stays 0
            view = self.buffer[start : start + weight.size]
            self._binding.bind_output(f"{weight.name}_grad", "cpu", 0, np.float32, list(weight.shape), view.ctypes.data)
        self._binding.bind_output(LOSS, "cpu", 0, np.float32, [], self.loss.ctypes.data)

    def step(self, inputs: np.ndarray, labels: np.ndarray, index: int) -> np.ndarray:
        """Sample `index`'s flat gradient: the lane's buffer, valid until its next step."""
        self._binding.bind_cpu_input(self.program.data_input, inputs[index : index + 1])
        self._binding.bind_cpu_input(LABELS, labels[index : index + 1])
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:
            raise explain(exc, source=self.program.source, what=f"running the gradient step on sample {index}") from exc
        return self.buffer

    def stream(self, inputs: np.ndarray, labels: np.ndarray, indices: range | None = None) -> Iterator[np.ndarray]:
        """Yield each sample's flat gradient (the same buffer each time: consume it before the next)."""
        for i in indices if indices is not None else range(inputs.shape[0]):
            yield self.step(inputs, labels, i)
