"""Constant nodes become initializers: one representation of fixed tensors for every later pass."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import copy_model, is_default_domain, node_label

# The Constant attributes other than `value` (opset 12+), as numpy-convertible values.
_SCALAR_ATTRIBUTES = {"value_float", "value_floats", "value_int", "value_ints"}


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every tensor-valued Constant node is an initializer of the same name.

    BatchNorm with affine=False exports Constant scale/bias, which makes the gradient builder fail with
    "Duplicate definition"; as initializers they are fed like any other parameter.
    """
    if not any(node.op_type == "Constant" and is_default_domain(node) for node in model.graph.node):
        return model
    out = copy_model(model)
    graph = out.graph
    kept = []
    for node in graph.node:
        if node.op_type != "Constant" or not is_default_domain(node):
            kept.append(node)
            continue
        attr = node.attribute[0] if len(node.attribute) == 1 else None
        if attr is not None and attr.name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attr.t)
        elif attr is not None and attr.name in _SCALAR_ATTRIBUTES:
            value = helper.get_attribute_value(attr)
            dtype = np.float32 if "float" in attr.name else np.int64
            tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype))
        else:
            raise GradSignError(
                f"Constant node {node_label(node)!r}: unsupported value attribute {[a.name for a in node.attribute]}"
            )
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
    del graph.node[:]
    graph.node.extend(kept)
    return out
