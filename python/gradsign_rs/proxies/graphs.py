"""Batched ONNX programs for the baseline proxies: graph surgery plus onnxruntime-training's gradient builder.

GradSign's engine runs one sample at a time; the baseline proxies (as defined in zero-cost-nas / NASLib) run one
mini-batch of B samples at once, BatchNorm in training mode normalising with that batch's statistics. A
`BatchProgram` is the model with its batch pinned to B (onnxruntime needs concrete shapes for pooling gradients),
a scalar loss, optional extra outputs and inputs, and the gradients of the loss with respect to chosen inputs.

Extras used by the proxies:
- channel probes (fisher): a graph input `s` of ones, shape (B, C, 1, ..., 1), multiplied onto the output Y of every
  scored Conv/Gemm/MatMul. The forward pass is unchanged, and dL/ds[n, c] = Σ_spatial Y[n, c] * dL/dY[n, c]: the
  per-sample, per-channel activation-times-gradient that fisher squares (what NASLib reads with an identity hook).
- ReLU inputs as graph outputs (nwot), one per Relu node (a tensor rectified by two nodes counts twice, as the
  reference's module hooks fire once per call).
- ReLU masks (grasp): every Relu(x) becomes x * m with m a fed input, so a run can keep the rectification pattern of
  another run (finite differences without crossing ReLU kinks).
- loss "sum_logits": LOSS_SCALE · Σ over the whole logits tensor (jacob_cov, synflow) instead of mean
  cross-entropy; LOSS_SCALE is a fed scalar (1 by default) that scales every gradient (synflow's overflow guard).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs import engine
from gradsign_rs import model as gm
from gradsign_rs._core import GradSignError
from gradsign_rs.prune import prune_structural_zeros

PROBE_SUFFIX = ".proxy_probe"
MASK_SUFFIX = ".proxy_relu_mask"
LOSS_SCALE = "proxy.loss_scale"
_GRAPH_CACHE_SIZE = 16
_graph_cache: OrderedDict[str, bytes] = OrderedDict()
_graph_cache_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Network:
    """A loaded, validated classifier: the normalised graph and the names the proxies need."""

    proto: onnx.ModelProto
    source: str
    data_input: str
    input_dims: tuple[int | str | None, ...]
    logits: str
    weights: tuple[gm.ScoredWeight, ...]
    # Initializers that were Constant nodes in the model: values, not parameters.
    constants: frozenset[str] = frozenset()


def load_network(model: object, *, output: str | None = None) -> Network:
    """Load `model` (path, ModelProto or bytes) and fix what onnxruntime-training needs, as `engine.prepare` does."""
    proto, source = gm.load_model(model)
    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # never mutate the caller's model
    proto = gm.normalize_versions(proto, source)
    constants = gm.constants_to_initializers(proto)
    gm.unshare_batchnorm_parameters(proto)
    data = gm.data_input(proto, source)
    if data.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise GradSignError(f"{source}: the proxies run float32 models; input {data.name!r} is not float32")
    logits = gm.logits_output(proto, source, output)
    gm.check_logits_shape(proto, source, logits)
    weights = gm.scored_weights(proto, "conv_linear")
    if not weights:
        raise GradSignError(f"{source}: no Conv, Gemm or MatMul weight to score")
    shape = data.type.tensor_type.shape
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)
    return Network(proto, source, data.name, dims, logits, tuple(weights), frozenset(constants))


@dataclasses.dataclass(frozen=True)
class BatchProgram:
    """A gradient graph over a batch of `batch` samples and what to feed it."""

    source: str
    graph: bytes
    batch: int
    data_input: str
    logits: str
    labels: str | None
    weights: tuple[gm.ScoredWeight, ...]
    live: frozenset[str]
    # Fed by name on every run: the live scored weights and the BatchNorm parameters (see engine._loss_graph).
    fed: dict[str, np.ndarray]
    # Scored weight name -> [(probe input name, probe shape)], one probe per node that reads the weight.
    probes: dict[str, list[tuple[str, tuple[int, ...]]]]
    # The input of every Relu node, in node order (a name repeats when two nodes rectify one tensor).
    relu_inputs: tuple[str, ...]
    gradients_of: tuple[str, ...]
    # Relu input name -> mask input name, when the program was built with relu_masks.
    relu_masks: dict[str, str] = dataclasses.field(default_factory=dict)


def pin_batch(model: onnx.ModelProto, data: str, logits: str, batch: int) -> None:
    """Declare batch size `batch` on the data input and the logits (in place) and drop stale intermediate shapes:
    onnxruntime's pooling gradients need a concrete batch (see `model.pin_batch_to_one`)."""
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in (data, logits) and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if len(dims) > 0:
                dims[0].Clear()
                dims[0].dim_value = batch
    del model.graph.value_info[:]


def _batchnorm_to_identity(model: onnx.ModelProto) -> None:
    """Replace every BatchNormalization by Identity on its data input (NASLib's `bn=False` copy for synflow)."""
    nodes = []
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _absolute_initializers(model: onnx.ModelProto) -> None:
    """Every float initializer replaced by its absolute value (synflow's linearisation)."""
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.data_type == onnx.TensorProto.FLOAT:
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(np.abs(numpy_helper.to_array(tensor)), tensor.name)
            )


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Every tensor whose shape onnx shape inference resolves to integers."""
    # data_prop carries Shape values into ConstantOfShape (NAS-Bench-201 cells whose nodes are all-`none` zeros).
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        tensor_type = vi.type.tensor_type
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in tensor_type.shape.dim)
    return shapes


def _insert_probes(model: onnx.ModelProto, weights: list[gm.ScoredWeight], batch: int) -> dict:
    """Multiply the output of every node that reads a scored weight (as its weight operand) by a ones input of
    shape (B, C, 1...); returns weight -> [(probe, shape)], one entry per such node (a shared weight has several)."""
    shapes = static_shapes(model)
    by_name = {w.name: w for w in weights}
    inits = {t.name: t for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    probes: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    nodes = []
    for node in model.graph.node:
        nodes.append(node)
        weight = by_name.get(gm.node_weight(node, producers, inits) or "")
        if weight is None:
            continue
        output = node.output[0]
        shape = shapes.get(output)
        if shape is None or len(shape) < 2 or shape[0] != batch:
            label = node.name or output
            raise GradSignError(f"fisher: cannot infer the output shape of node {label!r} (got {shape})")
        probe = f"{weight.name}{PROBE_SUFFIX}.{len(probes.get(weight.name, []))}"
        probe_shape = (batch, shape[1]) + (1,) * (len(shape) - 2)
        unprobed = output + ".unprobed"
        node.output[0] = unprobed
        nodes.append(helper.make_node("Mul", [unprobed, probe], [output], name=probe + "/Mul"))
        model.graph.input.append(helper.make_tensor_value_info(probe, onnx.TensorProto.FLOAT, list(probe_shape)))
        probes.setdefault(weight.name, []).append((probe, probe_shape))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return probes


def _relus_to_masks(model: onnx.ModelProto) -> dict[str, str]:
    """Replace every Relu(x) by x * mask (a fed float input shaped like x); returns x -> mask name."""
    # Concrete shapes: onnxruntime's pooling gradients corrupt memory when an input's shape is unknown.
    shapes = static_shapes(model)
    masks: dict[str, str] = {}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Relu":
            nodes.append(node)
            continue
        x = node.input[0]
        mask = masks.setdefault(x, x + MASK_SUFFIX)
        nodes.append(helper.make_node("Mul", [x, mask], [node.output[0]], name=(node.name or x) + "/masked"))
    for x, mask in masks.items():
        if x not in shapes:
            raise GradSignError(f"grasp: cannot infer the shape of ReLU input {x!r} to freeze its pattern")
        model.graph.input.append(helper.make_tensor_value_info(mask, onnx.TensorProto.FLOAT, list(shapes[x])))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return masks


def input_reaches_logits(proto: onnx.ModelProto, network: Network) -> bool:
    """Whether the logits depend on the data input differentiably (not only through its shape)."""
    return any(network.data_input in proto.graph.node[i].input for i in gm.live_nodes(proto, network.logits))


def _pruned_if_input_stays_live(proto: onnx.ModelProto, network: Network) -> onnx.ModelProto:
    """`proto` pruned, unless pruning cuts every differentiable path from the data input to the logits."""
    pruned = onnx.ModelProto.FromString(proto.SerializeToString())
    prune_structural_zeros(pruned)
    return pruned if input_reaches_logits(pruned, network) else proto


def build_batch_program(
    network: Network,
    batch: int,
    *,
    loss: str = "cross_entropy",
    batchnorm: str = "train",
    absolute: bool = False,
    probes: bool = False,
    relu_outputs: bool = False,
    relu_masks: bool = False,
    gradients_of: str = "weights",
    feed_also: frozenset[str] = frozenset(),
    prune: bool = False,
) -> BatchProgram:
    """The model over `batch` samples with a scalar loss and the gradients of that loss.

    loss: "cross_entropy" (softmax cross-entropy on integer labels, mean over the batch, as torch's default) or
        "sum_logits" (Σ of all logits). batchnorm: "train" (batch statistics) or "identity" (BatchNorm removed).
    absolute: every float initializer replaced by its absolute value. gradients_of: "weights" (the scored weights
    that reach the logits, plus the probes) or "input" (the data input). feed_also: initializers to turn into fed
    inputs as well, so that a run may override them. relu_masks: every Relu multiplies by a fed mask instead (a
    run must feed `masks`, e.g. from another run's `relu_inputs`). prune: drop structural zeros and unread nodes
    first (`gradsign_rs.prune`): exact for gradients, but not for proxies that count units or weights of the
    whole graph, so each proxy opts in.
    """
    if batch < 1:
        raise GradSignError(f"batch size must be >= 1, got {batch}")
    proto = onnx.ModelProto.FromString(network.proto.SerializeToString())
    if batchnorm == "identity":
        _batchnorm_to_identity(proto)
    elif batchnorm != "train":
        raise GradSignError(f"batchnorm must be 'train' or 'identity', got {batchnorm!r}")
    if absolute:
        _absolute_initializers(proto)
    pin_batch(proto, network.data_input, network.logits, batch)
    if prune:
        proto = _pruned_if_input_stays_live(proto, network)
    weights = list(network.weights)
    live = gm.reachable_weights(proto, weights, network.logits)
    probe_map = _insert_probes(proto, [w for w in weights if w.name in live], batch) if probes else {}
    graph = proto.graph
    relus = tuple(n.input[0] for n in graph.node if n.op_type == "Relu") if relu_outputs else ()
    mask_map = _relus_to_masks(proto) if relu_masks else {}
    logits_info = next(o for o in graph.output if o.name == network.logits)
    del graph.output[:]
    labels = None
    if loss == "cross_entropy":
        labels = engine.LABELS
        graph.input.append(helper.make_tensor_value_info(labels, onnx.TensorProto.INT64, [batch]))
        graph.node.append(
            helper.make_node(
                "SoftmaxCrossEntropyLoss", [network.logits, labels], [engine.LOSS, engine.LOG_PROB], name="proxy/loss"
            )
        )
    elif loss == "sum_logits":
        total = engine.LOSS + ".unscaled"
        graph.node.append(helper.make_node("ReduceSum", [network.logits], [total], keepdims=0, name="proxy/sum"))
        graph.node.append(helper.make_node("Mul", [total, LOSS_SCALE], [engine.LOSS], name="proxy/loss"))
        graph.input.append(helper.make_tensor_value_info(LOSS_SCALE, onnx.TensorProto.FLOAT, []))
    else:
        raise GradSignError(f"loss must be 'cross_entropy' or 'sum_logits', got {loss!r}")
    graph.output.extend([helper.make_tensor_value_info(engine.LOSS, onnx.TensorProto.FLOAT, []), logits_info])
    graph.output.extend(helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None) for x in dict.fromkeys(relus))
    # As in the engine: differentiated weights and BatchNorm parameters become inputs (ORT merges equal initializers).
    fed = engine.feed_as_inputs(graph, set(live) | set(feed_also) | engine.batchnorm_parameters(graph))
    if gradients_of == "weights":
        targets = tuple(sorted(live)) + tuple(p for node_probes in probe_map.values() for p, _ in node_probes)
    elif gradients_of == "input":
        targets = (network.data_input,)
    else:
        raise GradSignError(f"gradients_of must be 'weights' or 'input', got {gradients_of!r}")
    if not targets:
        raise GradSignError(f"{network.source}: no scored weight reaches the output {network.logits!r}")
    loss_bytes = proto.SerializeToString()
    key = hashlib.sha256(loss_bytes + "\0".join(targets).encode()).hexdigest()
    with _graph_cache_lock:
        built = _graph_cache.get(key)
    if built is None:
        built = engine.gradient_graph(loss_bytes, set(targets), network.source)
        with _graph_cache_lock:
            _graph_cache[key] = built
            while len(_graph_cache) > _GRAPH_CACHE_SIZE:
                _graph_cache.popitem(last=False)
    return BatchProgram(
        source=network.source,
        graph=built,
        batch=batch,
        data_input=network.data_input,
        logits=network.logits,
        labels=labels,
        weights=network.weights,
        live=frozenset(live),
        fed=fed,
        probes=probe_map,
        relu_inputs=relus,
        gradients_of=targets,
        relu_masks=mask_map,
    )


def _batchnorm_in_training_mode(model: onnx.ModelProto) -> bool:
    """Set training_mode=1 on every BatchNormalization (in place), as the gradient programs' training rewrite does;
    False when the opset predates the attribute (13) and a BatchNorm needs it."""
    batchnorms = [node for node in model.graph.node if node.op_type == "BatchNormalization"]
    if batchnorms and gm.default_opset(model) < 14:
        return False
    for node in batchnorms:
        kept = [a for a in node.attribute if a.name != "training_mode"]  # epsilon and momentum stay
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("training_mode", 1)])
        # Training mode requires the updated running statistics as outputs; nothing reads them.
        while len(node.output) < 3:
            node.output.append(f"{node.output[0]}.unused_statistic{len(node.output)}")
    return True


def forward_relu_codes(network: Network, inputs: np.ndarray, *, provider: str = "cpu") -> tuple[np.ndarray, ...] | None:
    """Which units of every Relu node are active (input > 0), as bool arrays in node order (as
    `BatchProgram.relu_inputs`), from one forward pass over `inputs` with BatchNorm on batch statistics. The
    comparison runs in the graph, so a quarter of the bytes come back; no gradient graph is built. None when an
    opset-13 BatchNorm cannot be put in training mode without one (use a training pass instead)."""
    proto = onnx.ModelProto.FromString(network.proto.SerializeToString())
    if not _batchnorm_in_training_mode(proto):
        return None
    pin_batch(proto, network.data_input, network.logits, inputs.shape[0])
    relus = [n.input[0] for n in proto.graph.node if n.op_type == "Relu"]
    unique = list(dict.fromkeys(relus))
    if not unique:
        return ()
    zero = "gradsign.zero"
    proto.graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero))
    for x in unique:
        proto.graph.node.append(helper.make_node("Greater", [x, zero], [f"{x}.active"], name=f"gradsign/{x}.active"))
        proto.graph.output.append(helper.make_tensor_value_info(f"{x}.active", onnx.TensorProto.BOOL, None))
    names = [f"{x}.active" for x in unique]
    session = engine.deterministic_session(proto.SerializeToString(), provider, f"{network.source}: the forward graph")
    try:
        values = dict(zip(unique, session.run(names, {network.data_input: np.ascontiguousarray(inputs, np.float32)})))
    except Exception as exc:
        raise GradSignError(f"{network.source}: the forward pass failed: {exc}") from exc
    return tuple(values[x] for x in relus)


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """One run of a BatchProgram: the loss, the logits (B, classes), gradients by input name, ReLU inputs."""

    loss: float
    logits: np.ndarray
    gradients: dict[str, np.ndarray]
    relu_inputs: tuple[np.ndarray, ...]


class BatchSession:
    """An onnxruntime session over a BatchProgram: single-threaded and deterministic, as the GradSign engine."""

    def __init__(self, program: BatchProgram, *, provider: str = "cpu"):
        self._session = engine.deterministic_session(program.graph, provider, f"{program.source}: the batch gradient graph")
        self.program = program
        self._relu_outputs = list(dict.fromkeys(program.relu_inputs))
        self._outputs = [engine.LOSS, program.logits, *self._relu_outputs, *(f"{t}_grad" for t in program.gradients_of)]
        self._takes_loss_scale = LOSS_SCALE in {i.name for i in self._session.get_inputs()}

    def run(
        self,
        inputs: np.ndarray,
        labels: np.ndarray | None = None,
        *,
        weights: dict[str, np.ndarray] | None = None,
        masks: dict[str, np.ndarray] | None = None,
        loss_scale: float = 1.0,
    ) -> BatchResult:
        """Run on exactly `batch` samples; `weights` overrides fed tensors by name (e.g. perturbed weights);
        `masks` gives the ReLU masks by Relu input name (relu_masks programs); `loss_scale` multiplies a
        sum_logits loss and so every gradient."""
        program = self.program
        if inputs.shape[0] != program.batch:
            raise GradSignError(f"{program.source}: the program takes {program.batch} samples, got {inputs.shape[0]}")
        feeds = dict(program.fed)
        if weights:
            feeds.update(weights)
        feeds[program.data_input] = np.ascontiguousarray(inputs, dtype=np.float32)
        if program.labels is not None:
            feeds[program.labels] = np.ascontiguousarray(labels, dtype=np.int64)
        for node_probes in program.probes.values():
            for probe, shape in node_probes:
                feeds[probe] = np.ones(shape, np.float32)
        if program.relu_masks:
            missing = set(program.relu_masks) - set(masks or {})
            if missing:
                raise GradSignError(f"{program.source}: no ReLU mask given for {sorted(missing)[:3]}")
            for x, mask in program.relu_masks.items():
                feeds[mask] = np.ascontiguousarray(masks[x], dtype=np.float32)
        if self._takes_loss_scale:
            feeds[LOSS_SCALE] = np.array(loss_scale, np.float32)
        try:
            values = self._session.run(self._outputs, feeds)
        except Exception as exc:
            raise GradSignError(f"{program.source}: the batch gradient run failed: {exc}") from exc
        n_relu = len(self._relu_outputs)
        by_name = dict(zip(self._relu_outputs, values[2 : 2 + n_relu]))
        gradients = dict(zip(program.gradients_of, values[2 + n_relu :]))
        return BatchResult(float(values[0]), values[1], gradients, tuple(by_name[x] for x in program.relu_inputs))
