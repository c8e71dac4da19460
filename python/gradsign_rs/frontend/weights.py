"""The scored weight set K and which weights the logits depend on (analysis only: nothing here rewrites a graph).

K (DESIGN.md): the weight tensor of every Conv, every fully connected layer (Gemm, or MatMul with an initializer
operand) and every Einsum with an initializer operand (JAX's dense layers), in graph order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx

from gradsign_rs._core import GradSignError

# Ops a weight may pass through on its way to a Conv/Gemm/MatMul (exporters insert them, e.g. a pre-transposed Linear).
_PASS_THROUGH = {"Identity", "Transpose"}


@dataclasses.dataclass(frozen=True)
class ScoredWeight:
    """One weight tensor in K: the initializer, the node that consumes it as a weight, and its size."""

    name: str
    node: str
    op_type: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _weight_source(name: str, producers: dict[str, onnx.NodeProto], inits: set[str]) -> str | None:
    """Follow Identity/Transpose back to an initializer, or None."""
    seen = 0
    while name not in inits:
        node = producers.get(name)
        if node is None or node.op_type not in _PASS_THROUGH or seen > 8:
            return None
        name, seen = node.input[0], seen + 1
    return name


def node_weight(
    node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], inits: dict[str, onnx.TensorProto]
) -> str | None:
    """The float32 initializer that a Conv, Gemm, MatMul or Einsum node uses as its weight (possibly through a
    Transpose or similar), or None: Conv/Gemm read it as input 1; MatMul/Einsum as their first initializer operand."""
    if node.op_type in ("Conv", "Gemm"):
        candidates = [node.input[1]] if len(node.input) > 1 else []
    elif node.op_type in ("MatMul", "Einsum"):
        candidates = list(node.input[:2])
    else:
        return None
    for operand in candidates:
        source = _weight_source(operand, producers, set(inits))
        if source is not None and inits[source].data_type == onnx.TensorProto.FLOAT:
            return source
    return None


def scored_weights(model: onnx.ModelProto, weights: str | list[str] = "conv_linear") -> list[ScoredWeight]:
    """K: the weight tensor of every Conv, Gemm, and MatMul with an initializer operand, in graph order.

    `weights` may also be an explicit list of initializer names.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    found: dict[str, ScoredWeight] = {}
    for node in graph.node:
        source = node_weight(node, producers, inits)
        if source is not None and source not in found:
            found[source] = ScoredWeight(source, node.name or node.output[0], node.op_type, tuple(inits[source].dims))
    if weights == "conv_linear":
        return list(found.values())
    if isinstance(weights, str):
        raise GradSignError(f"weights must be 'conv_linear' or a list of initializer names, got {weights!r}")
    if isinstance(weights, (bytes, bytearray)) or not all(isinstance(name, str) for name in weights):
        raise GradSignError(f"weights must be 'conv_linear' or a list of initializer names, got {weights!r}")
    repeated = sorted({name for name in weights if list(weights).count(name) > 1})
    if repeated:
        raise GradSignError(f"scored weight {repeated[0]!r} is listed more than once in weights=[...]")
    chosen = []
    for name in weights:
        if name not in inits:
            raise GradSignError(f"scored weight {name!r} is not an initializer of the model")
        if inits[name].data_type != onnx.TensorProto.FLOAT:
            raise GradSignError(f"scored weight {name!r} is not float32")
        chosen.append(found.get(name) or ScoredWeight(name, "", "", tuple(inits[name].dims)))
    return chosen


# Inputs through which no gradient flows: shapes, indices, masks. Ops not listed pass gradient through every input.
# (Floor, Ceil, Round and Sign have zero gradients mathematically, but onnxruntime's builder refuses them on a float
# path, so they are not listed: the differentiability check names them instead of the builder failing later.)
_NO_GRADIENT_OPS = {
    "Shape",
    "Size",
    "ConstantOfShape",
    "EyeLike",
    "NonZero",
    "ArgMax",
    "ArgMin",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "IsNaN",
    "IsInf",
    "RandomNormalLike",
    "RandomUniformLike",
    "Range",
    "OneHot",
}
_DATA_INPUTS_ONLY = {
    "Reshape": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "Slice": (0,),
    "Pad": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Gather": (0,),
    "GatherElements": (0,),
    "GatherND": (0,),
    "Resize": (0,),
    "Upsample": (0,),
    "TopK": (0,),
    "ReduceSum": (0,),
    "ReduceMean": (0,),
    "ReduceMax": (0,),
    "ReduceMin": (0,),
    "Split": (0,),
    "Where": (1, 2),
    "Dropout": (0,),
    "CumSum": (0,),
}


def _subgraph_reads(node: onnx.NodeProto) -> list[str]:
    """Tensors a control-flow node's subgraphs read from the outer graph (If, Loop, Scan capture them implicitly)."""
    reads: list[str] = []
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
            produced |= {t.name for t in graph.initializer}
            for inner in graph.node:
                reads.extend(x for x in [*inner.input, *_subgraph_reads(inner)] if x and x not in produced)
    return reads


def _differentiable_inputs(node: onnx.NodeProto) -> list[str]:
    if node.op_type in _NO_GRADIENT_OPS:
        return []
    if node.op_type in ("If", "Loop", "Scan"):  # the captured tensors are inputs too: a weight may flow through them
        return [*[x for x in node.input if x], *_subgraph_reads(node)]
    positions = _DATA_INPUTS_ONLY.get(node.op_type)
    inputs = list(node.input) if positions is None else [node.input[i] for i in positions if i < len(node.input)]
    return [name for name in inputs if name]


def live_nodes(model: onnx.ModelProto, target: str) -> set[int]:
    """Indices of the nodes that `target` depends on differentiably (not only through shapes or indices)."""
    producers = {out: i for i, node in enumerate(model.graph.node) for out in node.output}
    live: set[int] = set()
    stack = [target]
    while stack:
        index = producers.get(stack.pop())
        if index is None or index in live:
            continue
        live.add(index)
        stack.extend(_differentiable_inputs(model.graph.node[index]))
    return live


def reachable_weights(model: onnx.ModelProto, weights: list[ScoredWeight], logits: str) -> set[str]:
    """The scored weights that the logits depend on; the rest have gradient 0 (a dead branch)."""
    used: set[str] = set()
    for index in live_nodes(model, logits):
        used.update(_differentiable_inputs(model.graph.node[index]))
    # A weight may reach its consumer through Identity/Transpose: those nodes are live too, so their inputs count.
    return {w.name for w in weights if w.name in used}
