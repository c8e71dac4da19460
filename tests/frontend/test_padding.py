"""auto_pad written out as pads: the same function as onnxruntime's own auto_pad, and a gradient that matches torch
(onnxruntime's ConvGrad ignores auto_pad, which gave jax2onnx's "SAME" convolutions wrong gradients)."""

from __future__ import annotations

import numpy as np
import pytest
from gradsign_rs import engine
from gradsign_rs._ort import ort
from gradsign_rs.frontend.padding import explicit_padding, same_pads
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch")

CASES = [
    (mode, size, stride, kernel)
    for mode in ("SAME_UPPER", "SAME_LOWER", "VALID")
    for size in (7, 8)
    for stride in (1, 2)
    for kernel in (2, 3)
]


def _conv_model(mode: str, size: int, stride: int, kernel: int, weight: np.ndarray, *, loss: bool = False):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=mode, strides=[stride, stride], name="conv")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if loss:
        nodes += [
            helper.make_node("Mul", ["y", "y"], ["y2"]),
            helper.make_node("ReduceSum", ["y2"], ["gradsign.loss"], keepdims=0),
        ]
        outputs = [helper.make_tensor_value_info("gradsign.loss", TensorProto.FLOAT, [])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, size, size])]
    inits = [numpy_helper.from_array(weight, "w")]
    if loss:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(weight.shape)))
        inits = []
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    return model


@pytest.mark.parametrize(("mode", "size", "stride", "kernel"), CASES)
def test_explicit_pads_compute_what_auto_pad_computes(mode, size, stride, kernel):
    rng = np.random.default_rng(size * 10 + stride + kernel)
    weight = rng.standard_normal((3, 2, kernel, kernel)).astype(np.float32)
    x = rng.standard_normal((1, 2, size, size)).astype(np.float32)
    model = _conv_model(mode, size, stride, kernel, weight)
    lowered = explicit_padding(model, "test")
    assert all(a.name != "auto_pad" for a in lowered.graph.node[0].attribute)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    np.testing.assert_array_equal(run(lowered), run(model))


@pytest.mark.parametrize(("mode", "size", "stride", "kernel"), CASES[:8])
def test_the_gradient_of_the_explicit_form_matches_torch(mode, size, stride, kernel):
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((3, 2, kernel, kernel)).astype(np.float32)
    x = rng.standard_normal((1, 2, size, size)).astype(np.float32)
    lowered = explicit_padding(_conv_model(mode, size, stride, kernel, weight, loss=True), "test")
    graph = engine.gradient_graph(lowered.SerializeToString(), {"w"}, "test")
    ours = ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(["w_grad"], {"x": x, "w": weight})[0]
    pads = [0] * 4 if mode == "VALID" else same_pads([size] * 2, [kernel] * 2, [stride] * 2, [1, 1], mode)
    w = torch.tensor(weight, requires_grad=True)
    padded = torch.nn.functional.pad(torch.tensor(x), (pads[1], pads[3], pads[0], pads[2]))
    (torch.nn.functional.conv2d(padded, w, stride=stride) ** 2).sum().backward()
    np.testing.assert_allclose(ours, w.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_unknown_spatial_size_is_refused_by_node():
    from gradsign_rs import GradSignError

    model = _conv_model("SAME_UPPER", 8, 1, 3, np.ones((3, 2, 3, 3), np.float32))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].Clear()
    dims[2].dim_param = "H"
    with pytest.raises(GradSignError, match=r"node 'conv' \(Conv\) pads with auto_pad=SAME_UPPER"):
        explicit_padding(model, "test")
