"""Remove the parts of a graph that cannot change a per-sample gradient: structural zeros and unread results.

A NAS-Bench-201 cell whose node has only `none` inputs is a ConstantOfShape of zeros; every op fed by it computes
zeros again (ReLU, pooling, a bias-free Conv, a training-mode BatchNorm with zero bias), and an Add of a zero is
its other operand. Those ops change no output and give their weights a gradient of exactly 0 (dW = dY ⊗ X with
X = 0), so dropping them leaves every score and count unchanged while skipping their forward and backward work.
Ops whose result nothing reads (a cell node that feeds only `none` edges) are dropped too.

Only exact identities are used: zeros come from ConstantOfShape(value 0) alone (never from a zero initializer,
since 0·inf is NaN); a Conv or BatchNorm passes a zero on only when its parameters are finite (for BatchNorm,
scale / sqrt(epsilon) too) and its bias zero; an Add/Sum drops its zero operands only when a remaining operand
has the output's static shape (so broadcasting changes nothing). Results are identical up to the sign of a zero
(x + (-0) is x, where the graph computed +0 only for x = -0), which no sign count or comparison sees.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs.frontend._graph import attribute, copy_model, static_shapes

# Ops whose (first) output is exactly 0 wherever their data input (input 0) is.
_ZERO_IN_ZERO_OUT = {
    "Relu",
    "AveragePool",
    "MaxPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Identity",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
}


def _array(inits: dict[str, onnx.TensorProto], name: str) -> np.ndarray | None:
    return numpy_helper.to_array(inits[name]) if name in inits else None


def _zero_source(node: onnx.NodeProto) -> bool:
    if node.op_type != "ConstantOfShape":
        return False
    value = attribute(node, "value", None)
    return value is None or not np.any(numpy_helper.to_array(value))


def _passes_zero(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """True when `node` outputs exact zeros given an all-zero data input."""
    if node.op_type in _ZERO_IN_ZERO_OUT:
        return len(node.output) == 1  # MaxPool's optional indices are not zeros
    if node.op_type == "Conv":
        weight = _array(inits, node.input[1])
        bias = _array(inits, node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
        return weight is not None and bias is not None and bool(np.isfinite(weight).all()) and not np.any(bias)
    if node.op_type == "BatchNormalization":
        # Training mode normalises with the batch's own statistics: (0 - 0) / sqrt(0 + eps) * scale + bias = bias.
        scale, bias = _array(inits, node.input[1]), _array(inits, node.input[2])
        epsilon = float(attribute(node, "epsilon", 1e-5))
        if attribute(node, "training_mode", 0) != 1 or scale is None or bias is None or not epsilon > 0:
            return False
        # 0 / sqrt(eps) * scale must stay 0: no 0 * inf.
        return bool(np.isfinite(scale.astype(np.float64) / np.sqrt(epsilon)).all()) and not np.any(bias)
    return False


# Ops with subgraphs read tensors of the outer graph implicitly: a graph that has them is left as it is.
_CONTROL_FLOW = {"If", "Loop", "Scan"}


def _structural_zeros(nodes: list[onnx.NodeProto], inits: dict[str, onnx.TensorProto]) -> set[str]:
    """Tensors that are exact zeros whatever the input, found to a fixpoint (node order does not matter)."""
    zeros: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if not node.output or node.output[0] in zeros:
                continue
            from_zero = node.input and node.input[0] in zeros and _passes_zero(node, inits)
            all_zero = node.op_type in ("Add", "Sum") and node.input and all(x in zeros for x in node.input)
            if _zero_source(node) or from_zero or all_zero:
                zeros.add(node.output[0])
                changed = True
    return zeros


def _without_zero_terms(node: onnx.NodeProto, zeros: set[str], shapes: dict[str, tuple]) -> onnx.NodeProto:
    """An Add/Sum with its zero operands dropped, when a kept operand has the output's static shape (so dropping
    changes neither the value nor, through broadcasting, the shape); otherwise the node itself."""
    if node.op_type not in ("Add", "Sum") or node.output[0] in zeros:
        return node
    out_shape = shapes.get(node.output[0])
    kept = [x for x in node.input if x not in zeros]
    if len(kept) == len(node.input) or out_shape is None or not any(shapes.get(x) == out_shape for x in kept):
        return node
    if len(kept) == 1:
        return helper.make_node("Identity", kept, list(node.output), name=node.name)
    return helper.make_node("Sum", kept, list(node.output), name=node.name)


def _read_nodes(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes that the graph outputs depend on, in their original order."""
    keep = _read_indices(nodes, outputs)
    return [node for i, node in enumerate(nodes) if i in keep]


def _read_indices(nodes: list[onnx.NodeProto], outputs: set[str]) -> set[int]:
    """Positions of the nodes that `outputs` depend on."""
    producers = {out: i for i, node in enumerate(nodes) for out in node.output}
    keep: set[int] = set()
    stack = list(outputs)
    while stack:
        index = producers.get(stack.pop())
        if index is None or index in keep:
            continue
        keep.add(index)
        stack.extend(x for x in nodes[index].input if x)
    return keep


def keep_outputs(model: onnx.ModelProto, outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    """A copy whose graph outputs are `outputs`, without the nodes that only the dropped outputs read (nodes that
    no output read before stay: they are part of the model as exported, which flops and params count)."""
    if [o.name for o in outputs] == [o.name for o in model.graph.output]:
        return model
    out = copy_model(model)
    nodes = list(out.graph.node)
    before = _read_indices(nodes, {o.name for o in out.graph.output})
    after = _read_indices(nodes, {o.name for o in outputs})
    kept = [n for i, n in enumerate(nodes) if i in after or i not in before]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    del out.graph.output[:]
    out.graph.output.extend(outputs)
    return out


def prune(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` without structural zeros and unread nodes (the pass form of `prune_structural_zeros`)."""
    out = copy_model(model)
    prune_structural_zeros(out)
    return out


def prune_structural_zeros(model: onnx.ModelProto) -> int:
    """Drop structural zeros and unread nodes from `model` (in place; see the module docstring); returns how many
    nodes were removed. Graph outputs are always kept, and so is every tensor a remaining node reads. Graphs with
    control flow (If, Loop, Scan) are left unchanged."""
    graph = model.graph
    if any(node.op_type in _CONTROL_FLOW for node in graph.node):
        return 0
    nodes = list(graph.node)
    zeros = _structural_zeros(nodes, {t.name: t for t in graph.initializer})
    if zeros:
        shapes = static_shapes(model, symbolic=True)
        nodes = [_without_zero_terms(node, zeros, shapes) for node in nodes]
    alive = _read_nodes(nodes, {o.name for o in graph.output})
    removed = len(graph.node) - len(alive)
    del graph.node[:]
    graph.node.extend(alive)
    return removed
