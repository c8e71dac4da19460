"""What the lowering tests share: small models, onnxruntime runs, gradients through gradsign_rs.engine, tolerances."""

from __future__ import annotations

import numpy as np
import onnx
from gradsign_rs._ort import ort
from gradsign_rs.engine import LOSS, gradient_graph
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10  # the newest onnxruntime 1.19 reads


def model_of(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple],
    outputs: list[str] | dict[str, tuple],
    initializers: dict[str, np.ndarray] | None = None,
    *,
    opset: int = 17,
) -> onnx.ModelProto:
    """A float32 model: graph inputs by name and shape (a dim may be a string); outputs by name and shape, or by
    name only (typed by shape inference)."""
    shapes = outputs if isinstance(outputs, dict) else dict.fromkeys(outputs)
    graph = helper.make_graph(
        nodes,
        "lowering_case",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in shapes.items()],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    if isinstance(outputs, dict):
        return model
    inferred = onnx.shape_inference.infer_shapes(model)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def single_node(
    op: str,
    inputs: dict[str, tuple],
    initializers: dict[str, np.ndarray] | None = None,
    *,
    input_order: list[str] | None = None,
    opset: int = 17,
    name: str = "node",
    **attrs: object,
) -> onnx.ModelProto:
    """One `op` node named `name` reading `input_order` (default: the graph inputs, then the initializers) into y."""
    order = input_order if input_order is not None else [*inputs, *(initializers or {})]
    node = helper.make_node(op, order, ["y"], name=name, **attrs)
    return model_of([node], inputs, ["y"], initializers, opset=opset)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of `model` on CPU, without graph optimisations (nothing fused back into the original op)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def exact_diff(expected: np.ndarray, actual: np.ndarray, rel: float = 1e-6) -> float:
    """max |expected - actual| over the finite entries of expected, asserted <= rel * (1 + their max |expected|);
    the shapes equal, and the infinities and NaNs of expected matched exactly."""
    assert expected.shape == actual.shape, (expected.shape, actual.shape)
    finite = np.isfinite(expected)
    assert np.array_equal(expected[~finite], actual[~finite], equal_nan=True), "the infinities or NaNs differ"
    finite_expected = expected[finite].astype(np.float64)
    diff = float(np.max(np.abs(finite_expected - actual[finite]), initial=0.0))
    bound = rel * (1.0 + float(np.max(np.abs(finite_expected), initial=0.0)))
    assert diff <= bound, f"max abs diff {diff:.3g} > {bound:.3g}"
    return diff


def assert_relative(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-4) -> None:
    """max |actual - expected| <= rel * max |expected| (gradients against torch autograd)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-12)
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    assert diff <= rel * scale, f"max abs diff {diff:.3g} > {rel} * {scale:.3g}"


def weighted_sum_loss(model: onnx.ModelProto, weights: np.ndarray) -> onnx.ModelProto:
    """`model` (one output y) with the scalar output LOSS = sum(y * weights) instead of y."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    y = out.graph.output[0].name
    out.graph.initializer.append(numpy_helper.from_array(weights.astype(np.float32), "loss.weights"))
    out.graph.node.extend(
        [
            helper.make_node("Mul", [y, "loss.weights"], ["loss.weighted"], name="loss/mul"),
            helper.make_node("ReduceSum", ["loss.weighted"], [LOSS], name="loss/sum", keepdims=0),
        ]
    )
    del out.graph.output[:]
    out.graph.output.append(helper.make_tensor_value_info(LOSS, TensorProto.FLOAT, []))
    return out


def gradients(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], weights: np.ndarray, wrt: list[str]
) -> dict[str, np.ndarray]:
    """d sum(y * weights) / d input for each graph input in `wrt`, by onnxruntime-training via engine.gradient_graph."""
    graph = gradient_graph(weighted_sum_loss(model, weights).SerializeToString(), set(wrt), "lowering test")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    values = session.run([f"{name}_grad" for name in wrt], feeds)
    return dict(zip(wrt, values))


def torch_gradients(fn, feeds: dict[str, np.ndarray], weights: np.ndarray, wrt: list[str]) -> dict[str, np.ndarray]:
    """The same derivatives by torch autograd of `fn(**tensors)` in float64."""
    import torch

    tensors = {
        name: torch.tensor(value, dtype=torch.float64, requires_grad=name in wrt) for name, value in feeds.items()
    }
    loss = (fn(**tensors) * torch.tensor(weights, dtype=torch.float64)).sum()
    loss.backward()
    return {name: tensors[name].grad.numpy() for name in wrt}


def op_types(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]
