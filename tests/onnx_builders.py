"""ONNX graphs written directly with onnx.helper (no torch exporter), for tests of models not made by torch."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def nhwc_matmul_classifier(
    seed: int = 0, *, opset: int = 13, classes: int = 10, size: int = 8
) -> tuple[onnx.ModelProto, dict]:
    """NHWC input -> Transpose -> Conv(3->4, 3x3) -> Relu -> Flatten -> MatMul(W) + Add(b) -> logits.

    Returns the model and its weights by name (for a torch twin).
    """
    rng = np.random.default_rng(seed)
    conv_w = rng.uniform(-0.3, 0.3, (4, 3, 3, 3)).astype(np.float32)
    conv_b = rng.uniform(-0.1, 0.1, (4,)).astype(np.float32)
    feat = 4 * (size - 2) * (size - 2)
    head_w = rng.uniform(-0.1, 0.1, (feat, classes)).astype(np.float32)
    head_b = rng.uniform(-0.1, 0.1, (classes,)).astype(np.float32)
    weights = {"conv.w": conv_w, "conv.b": conv_b, "head.w": head_w, "head.b": head_b}
    nodes = [
        helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "conv.w", "conv.b"], ["conv"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Relu", ["conv"], ["act"], name="act"),
        helper.make_node("Flatten", ["act"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "head.w"], ["mm"], name="head_matmul"),
        helper.make_node("Add", ["mm", "head.b"], ["scores"], name="head_add"),
    ]
    graph = helper.make_graph(
        nodes,
        "nhwc_matmul_classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx.helper")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model, weights


def graph_with(nodes, inputs, outputs, initializers, *, opset: int = 17, ir_version: int = 8) -> onnx.ModelProto:
    """A one-off model for error tests."""
    graph = helper.make_graph(nodes, "case", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def conv_head(*, extra_nodes=(), after: str = "pooled", classes: int = 10, opset: int = 17, ir_version: int = 8):
    """Conv -> GlobalAveragePool -> Flatten -> Gemm; `extra_nodes` sit between pooling and Flatten, ending in `after`."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((classes, 4)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["pooled"], name="gap"),
        *extra_nodes,
        helper.make_node("Flatten", [after], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w2"], ["logits"], transB=1, name="fc"),
    ]
    return graph_with(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        inits,
        opset=opset,
        ir_version=ir_version,
    )
