"""params: the number of trainable parameters, read from the ONNX graph."""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from gradsign_rs.proxies.workspace import Workspace


def count_parameters(model: onnx.ModelProto, constants: frozenset[str] = frozenset()) -> int:
    """Elements of the floating-point initializers that nodes read, except BatchNorm running mean and variance and
    the `constants` (initializers that were Constant nodes: e.g. the scale and bias that an exporter writes for an
    affine-free BatchNorm). A tensor read by several nodes counts once.
    """
    running = {name for node in model.graph.node if node.op_type == "BatchNormalization" for name in node.input[3:5]}
    read = {name for node in model.graph.node for name in node.input}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    return sum(
        int(numpy_helper.to_array(t).size)
        for t in model.graph.initializer
        if t.data_type in floats and t.name in read and t.name not in running and t.name not in constants
    )


def params(workspace: Workspace) -> float:
    """Number of parameters (a count, not millions; see `count_parameters`)."""
    return float(count_parameters(workspace.network.proto, workspace.network.constants))
