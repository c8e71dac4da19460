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
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend import loss as loss_pass
from gradsign_rs.frontend._graph import copy_model, serialize
from gradsign_rs.frontend.loss import LOSS_SCALE
from gradsign_rs.frontend.pin import pin_batch
from gradsign_rs.frontend.pipeline import Network, prepare_network
from gradsign_rs.frontend.probes import insert_probes, relus_to_masks
from gradsign_rs.frontend.protocol import batchnorm_training_mode
from gradsign_rs.frontend.prune import prune as prune_pass
from gradsign_rs.frontend.unshare import normalization_parameters
from gradsign_rs.frontend.weights import ScoredWeight, live_nodes, reachable_weights

_GRAPH_CACHE_SIZE = 16
_graph_cache: OrderedDict[str, bytes] = OrderedDict()
_graph_cache_lock = threading.Lock()


def load_network(
    model: object,
    *,
    output: str | None = None,
    input: str | None = None,
    constant_inputs: dict[str, np.ndarray] | None = None,
) -> Network:
    """`model` prepared by the front end (`gradsign_rs.frontend.pipeline.prepare_network`), float32 input only."""
    network = prepare_network(model, output=output, input=input, constant_inputs=constant_inputs)
    if network.input_dtype is not np.float32:
        raise GradSignError(
            f"{network.source}: the proxies run float32 models; input {network.data_input!r} is not float32"
        )
    return network


@dataclasses.dataclass(frozen=True)
class BatchProgram:
    """A gradient graph over a batch of `batch` samples and what to feed it."""

    source: str
    graph: bytes
    batch: int
    data_input: str
    logits: str
    labels: str | None
    weights: tuple[ScoredWeight, ...]
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


def input_reaches_logits(proto: onnx.ModelProto, network: Network) -> bool:
    """Whether the logits depend on the data input differentiably (not only through its shape)."""
    return any(network.data_input in proto.graph.node[i].input for i in live_nodes(proto, network.logits))


def _pruned_if_input_stays_live(proto: onnx.ModelProto, network: Network) -> onnx.ModelProto:
    """`proto` pruned, unless pruning cuts every differentiable path from the data input to the logits."""
    pruned = prune_pass(proto)
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
    proto = copy_model(network.proto)
    if batchnorm == "identity":
        _batchnorm_to_identity(proto)
    elif batchnorm != "train":
        raise GradSignError(f"batchnorm must be 'train' or 'identity', got {batchnorm!r}")
    if absolute:
        _absolute_initializers(proto)
    proto = pin_batch(proto, network.data_input, network.logits, batch)
    if prune:
        proto = _pruned_if_input_stays_live(proto, network)
    weights = list(network.weights)
    live = reachable_weights(proto, weights, network.logits)
    probe_map: dict = {}
    if probes:
        proto, probe_map = insert_probes(proto, [w for w in weights if w.name in live], batch)
    relus = tuple(n.input[0] for n in proto.graph.node if n.op_type == "Relu") if relu_outputs else ()
    mask_map: dict[str, str] = {}
    if relu_masks:
        proto, mask_map = relus_to_masks(proto)
    labels = None
    if loss == "cross_entropy":
        labels = loss_pass.LABELS
        proto = loss_pass.add_cross_entropy(proto, network.logits, batch, name="proxy/loss")
    elif loss == "sum_logits":
        proto = loss_pass.add_sum_logits(proto, network.logits)
    else:
        raise GradSignError(f"loss must be 'cross_entropy' or 'sum_logits', got {loss!r}")
    proto.graph.output.extend(
        helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None) for x in dict.fromkeys(relus)
    )
    # As in the engine: differentiated weights and normalisation parameters are fed (ORT merges equal initializers).
    proto, fed = loss_pass.feed_as_inputs(proto, set(live) | set(feed_also) | normalization_parameters(proto.graph))
    if gradients_of == "weights":
        targets = tuple(sorted(live)) + tuple(p for node_probes in probe_map.values() for p, _ in node_probes)
    elif gradients_of == "input":
        targets = (network.data_input,)
    else:
        raise GradSignError(f"gradients_of must be 'weights' or 'input', got {gradients_of!r}")
    if not targets:
        raise GradSignError(f"{network.source}: no scored weight reaches the output {network.logits!r}")
    loss_bytes = serialize(proto, network.source)
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


def forward_relu_codes(network: Network, inputs: np.ndarray, *, provider: str = "cpu") -> tuple[np.ndarray, ...] | None:
    """Which units of every Relu node are active (input > 0), as bool arrays in node order (as
    `BatchProgram.relu_inputs`), from one forward pass over `inputs` with BatchNorm on batch statistics. The
    comparison runs in the graph, so a quarter of the bytes come back; no gradient graph is built. None when an
    opset-13 BatchNorm cannot be put in training mode without one (use a training pass instead)."""
    proto = batchnorm_training_mode(network.proto)
    if proto is None:
        return None
    proto = pin_batch(proto, network.data_input, network.logits, inputs.shape[0])
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
        self._session = engine.deterministic_session(
            program.graph, provider, f"{program.source}: the batch gradient graph"
        )
        self.program = program
        self._relu_outputs = list(dict.fromkeys(program.relu_inputs))
        self._outputs = [
            loss_pass.LOSS,
            program.logits,
            *self._relu_outputs,
            *(f"{t}_grad" for t in program.gradients_of),
        ]
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
            given = masks or {}
            for x, mask in program.relu_masks.items():
                feeds[mask] = np.ascontiguousarray(given[x], dtype=np.float32)
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
