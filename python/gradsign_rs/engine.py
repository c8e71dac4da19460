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
import re
import threading
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs import model as gm
from gradsign_rs._core import GradSignError
from gradsign_rs._ort import capi, ort, provider_name
from gradsign_rs.prune import prune_structural_zeros

LABELS = "gradsign.labels"
LOSS = "gradsign.loss"
LOG_PROB = "gradsign.log_prob"
# onnxruntime's graph transformers log at INFO by default: keep warnings and errors only.
ort.set_default_logger_severity(3)

_NUMPY_OF_ONNX = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
}


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
    weights: tuple[gm.ScoredWeight, ...]
    live: frozenset[str]
    # Tensors fed as inputs on every run: the scored weights and the BatchNorm parameters.
    weight_values: dict[str, np.ndarray]

    @property
    def n_weights(self) -> int:
        return sum(w.size for w in self.weights)

    @property
    def bounds(self) -> list[int]:
        """Offsets of each scored weight in the flat gradient buffer, plus the total."""
        return [0, *np.cumsum([w.size for w in self.weights]).tolist()]


_GRADIENT_ERROR = re.compile(r"gradient builder has not been registered: (\S+) for node (.+?)\s*$", re.M)
_CACHE_SIZE = 32
_cache: collections.OrderedDict[str, bytes] = collections.OrderedDict()
_cache_lock = threading.Lock()


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)


def _loss_graph(model: onnx.ModelProto, logits: str, live: set[str]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Add labels and a cross-entropy loss; move tensors that must stay distinct to graph inputs.

    Moved (and returned by name, to be fed on every run): the live scored weights, which are differentiated, and
    every BatchNormalization parameter, because onnxruntime merges equal initializers (fresh BN scales are all
    ones) and two BatchNorms sharing one scale break its gradient builder ("Duplicate definition").
    """
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info(LABELS, onnx.TensorProto.INT64, [1]))
    # The gradient builder reads the log-probabilities output (O(1)), so the node must declare it.
    graph.node.append(
        helper.make_node("SoftmaxCrossEntropyLoss", [logits, LABELS], [LOSS, LOG_PROB], name="gradsign/loss")
    )
    logits_info = next(o for o in graph.output if o.name == logits)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(LOSS, onnx.TensorProto.FLOAT, []), logits_info])
    return model, feed_as_inputs(graph, set(live) | batchnorm_parameters(graph))


def batchnorm_parameters(graph: onnx.GraphProto) -> set[str]:
    """Scale, bias, mean and variance of every BatchNormalization node."""
    return {name for node in graph.node if node.op_type == "BatchNormalization" for name in node.input[1:5] if name}


def feed_as_inputs(graph: onnx.GraphProto, names: set[str]) -> dict[str, np.ndarray]:
    """Move the named initializers to graph inputs (in place); returns their values, to be fed on every run."""
    values, kept = {}, []
    for tensor in graph.initializer:
        if tensor.name in names:
            values[tensor.name] = numpy_helper.to_array(tensor).copy()
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        else:
            kept.append(tensor)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return values


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
        text = str(exc)
        match = _GRADIENT_ERROR.search(text)
        if match:
            raise GradSignError(
                f"{source}: onnxruntime-training cannot differentiate op {match.group(1)} (node {match.group(2)!r}); "
                "replace it or export the model without it"
            ) from exc
        raise GradSignError(f"{source}: building the gradient graph failed: {text.strip().splitlines()[-1]}") from exc


def gradient_graph(loss_model: bytes, requires_grad: set[str], source: str) -> bytes:
    """The gradient graph of a serialized model whose scalar output is `LOSS`, with `<name>_grad` outputs for the
    named graph inputs. Uncached; the same builder and error messages as `prepare` (used by `gradsign_rs.proxies`)."""
    return _build_gradient_graph(loss_model, requires_grad, source)


def _pruned(proto: onnx.ModelProto, weights: list[gm.ScoredWeight], logits: str) -> onnx.ModelProto:
    """`proto` without structural zeros and unread nodes (`gradsign_rs.prune`), after K is fixed: weights of
    pruned ops stay in K with gradient 0, exactly what they would have had. Unpruned if no weight would stay live
    (every weight then has gradient 0, and the unpruned graph still gives onnxruntime something to differentiate)."""
    pruned = onnx.ModelProto.FromString(proto.SerializeToString())
    prune_structural_zeros(pruned)
    return pruned if gm.reachable_weights(pruned, weights, logits) else proto


def prepare(
    model: object,
    *,
    weights: str | list[str] = "conv_linear",
    batchnorm: str = "train",
    output: str | None = None,
) -> GradientProgram:
    """Validate `model` and build its gradient program (cached by the content hash of the loss graph).

    batchnorm: "train" runs every BatchNormalization in training mode with per-sample statistics (the paper's
    setting); "as_exported" keeps inference-mode BatchNorm nodes on their running statistics.
    """
    if batchnorm not in ("train", "as_exported"):
        raise GradSignError(f"batchnorm must be 'train' or 'as_exported', got {batchnorm!r}")
    proto, source = gm.load_model(model)
    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # never mutate the caller's model
    proto = gm.normalize_versions(proto, source)
    gm.constants_to_initializers(proto)
    gm.unshare_batchnorm_parameters(proto)
    if batchnorm == "as_exported":
        gm.batchnorm_as_exported(proto)
    data = gm.data_input(proto, source)
    elem = data.type.tensor_type.elem_type
    if elem not in _NUMPY_OF_ONNX:
        raise GradSignError(
            f"{source}: data input {data.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; "
            "gradients need a floating-point input"
        )
    logits = gm.logits_output(proto, source, output)
    gm.check_logits_shape(proto, source, logits)
    weights_k = gm.scored_weights(proto, weights)
    if not weights_k:
        raise GradSignError(
            f"{source}: no scored weights: the model has no Conv, Gemm or MatMul whose weight is a float32 initializer"
        )
    input_dims = _dims(data)  # as declared, for input validation, before the batch is pinned
    gm.pin_batch_to_one(proto, data.name, logits)
    proto = _pruned(proto, weights_k, logits)
    live = gm.reachable_weights(proto, weights_k, logits)
    if not live:
        raise GradSignError(f"{source}: none of the {len(weights_k)} scored weights reaches the output {logits!r}")
    loss_model, values = _loss_graph(proto, logits, live)
    loss_bytes = loss_model.SerializeToString()
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
        data_input=data.name,
        input_dims=input_dims,
        input_dtype=_NUMPY_OF_ONNX[elem],
        logits=logits,
        weights=tuple(weights_k),
        live=frozenset(live),
        weight_values=values,
    )


def check_inputs(program: GradientProgram, inputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate samples against the model's data input; returns C-contiguous arrays of the model's dtypes."""
    dims = program.input_dims
    if dims and isinstance(dims[0], int) and dims[0] > 1:
        raise GradSignError(
            f"the model's input {program.data_input!r} has a fixed batch size {dims[0]}; per-sample gradients need "
            "batch 1: export it with a dynamic (or size-1) batch dimension"
        )
    return check_samples(inputs, labels, data_input=program.data_input, dims=dims, dtype=program.input_dtype)


def check_samples(
    inputs: np.ndarray, labels: np.ndarray, *, data_input: str, dims: tuple[int | str | None, ...], dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """Samples and labels checked against a data input of declared `dims` (batch first) and element `dtype`:
    at least one sample, float inputs of matching shape without NaN/inf, one integer label >= 0 per sample.
    Returns C-contiguous arrays of `dtype` and int64."""
    inputs = np.asarray(inputs)
    labels = np.asarray(labels)
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise GradSignError(f"no samples: inputs have shape {inputs.shape}; at least one sample is needed")
    if not np.issubdtype(inputs.dtype, np.floating):
        raise GradSignError(
            f"inputs have dtype {inputs.dtype}; the model's input {data_input!r} takes "
            f"{np.dtype(dtype).name} (normalise images first, e.g. with gradsign_rs.load_images)"
        )
    if dims and (len(dims) != inputs.ndim or any(
        isinstance(d, int) and d > 0 and d != s for d, s in zip(dims[1:], inputs.shape[1:])
    )):
        shown = tuple(d if isinstance(d, int) and d > 0 else "?" for d in dims)
        raise GradSignError(f"inputs of shape {inputs.shape} do not match the model's input {data_input!r} of shape {shown}")
    if labels.shape != (inputs.shape[0],):
        raise GradSignError(f"labels have shape {labels.shape}, expected ({inputs.shape[0]},) to match the inputs")
    if not np.issubdtype(labels.dtype, np.integer):
        raise GradSignError(f"labels must be integer class indices, got dtype {labels.dtype}")
    finite = np.isfinite(inputs.reshape(inputs.shape[0], -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise GradSignError(f"inputs contain NaN or inf in {bad.size} sample(s), first at index {bad[0]}")
    if labels.min() < 0:
        raise GradSignError(f"labels must be >= 0, found {labels.min()} at index {int(np.argmin(labels))}")
    return np.ascontiguousarray(inputs, dtype=dtype), np.ascontiguousarray(labels, dtype=np.int64)


def deterministic_session(graph: bytes, provider: str, what: str) -> object:
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
        raise GradSignError(f"{what}: onnxruntime cannot load it: {exc}") from exc


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
            raise GradSignError(f"{self.program.source}: the forward pass failed on one sample: {exc}") from exc
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

    def __init__(self, session: object, program: GradientProgram):
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
            raise GradSignError(f"{self.program.source}: the gradient step failed on sample {index}: {exc}") from exc
        return self.buffer

    def stream(self, inputs: np.ndarray, labels: np.ndarray, indices: range | None = None) -> Iterator[np.ndarray]:
        """Yield each sample's flat gradient (the same buffer each time: consume it before the next)."""
        for i in indices if indices is not None else range(inputs.shape[0]):
            yield self.step(inputs, labels, i)
