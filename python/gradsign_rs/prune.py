"""Remove the parts of a graph that cannot change a per-sample gradient: structural zeros and unread results.

A NAS-Bench-201 cell whose node has only `none` inputs is a ConstantOfShape of zeros; every op fed by it computes
zeros again (ReLU, pooling, a bias-free Conv, a training-mode BatchNorm with zero bias), and an Add of a zero is
its other operand. Those ops change no output and give their weights a gradient of exactly 0 (dW = dY ⊗ X with
X = 0), so dropping them leaves every score and count unchanged while skipping their forward and backward work.
Ops whose result nothing reads (a cell node that feeds only `none` edges) are dropped too.

Only exact identities are used: zeros come from ConstantOfShape(value 0) alone (never from a zero initializer,
since 0·inf is NaN); a Conv or BatchNorm passes a zero on only when its parameters are finite and its bias zero;
an Add/Sum drops a zero operand only when that operand has the output's static shape (no broadcasting).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Ops whose (first) output is exactly 0 wherever their data input (input 0) is.
_ZERO_IN_ZERO_OUT = {
    "Relu", "AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool", "Identity", "Flatten", "Reshape",
    "Squeeze", "Unsqueeze", "Transpose",
}


def _attribute(node: onnx.NodeProto, name: str, default: object) -> object:
    found = next((a for a in node.attribute if a.name == name), None)
    return helper.get_attribute_value(found) if found is not None else default


def _array(inits: dict[str, onnx.TensorProto], name: str) -> np.ndarray | None:
    return numpy_helper.to_array(inits[name]) if name in inits else None


def _zero_source(node: onnx.NodeProto) -> bool:
    if node.op_type != "ConstantOfShape":
        return False
    value = _attribute(node, "value", None)
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
        return (
            _attribute(node, "training_mode", 0) == 1 and scale is not None and bias is not None
            and bool(np.isfinite(scale).all()) and not np.any(bias)
        )
    return False


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
            if None not in dims:
                shapes[value.name] = dims
    return shapes


def prune_structural_zeros(model: onnx.ModelProto) -> int:
    """Drop structural zeros and unread nodes from `model` (in place; see the module docstring); returns how many
    nodes were removed. Graph outputs are always kept, and so is every tensor a remaining node reads."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    zeros: set[str] = set()
    for node in graph.node:  # ONNX graphs are topologically sorted
        if _zero_source(node) or (node.input and node.input[0] in zeros and _passes_zero(node, inits)):
            zeros.add(node.output[0])
        elif node.op_type in ("Add", "Sum") and node.input and all(x in zeros for x in node.input):
            zeros.add(node.output[0])
    shapes = _static_shapes(model) if zeros else {}
    rewritten = []
    for node in graph.node:
        out_shape = shapes.get(node.output[0])
        # A zero operand is dropped only where it has the output's shape: then Add(x, 0) is x, with no broadcast.
        kept = [x for x in node.input if not (x in zeros and out_shape is not None and shapes.get(x) == out_shape)]
        if node.op_type in ("Add", "Sum") and node.output[0] not in zeros and len(kept) < len(node.input):
            if len(kept) == 1:
                node = helper.make_node("Identity", kept, list(node.output), name=node.name)
            else:
                node = helper.make_node("Sum", kept, list(node.output), name=node.name)
        rewritten.append(node)
    needed = {o.name for o in graph.output}
    alive = []
    for node in reversed(rewritten):
        if any(out in needed for out in node.output):
            alive.append(node)
            needed.update(x for x in node.input if x)
    alive.reverse()
    removed = len(graph.node) - len(alive)
    del graph.node[:]
    graph.node.extend(alive)
    return removed
