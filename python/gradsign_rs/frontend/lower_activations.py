"""Lower the activations onnxruntime-training 1.19 has no gradient builder for into ops it differentiates.

Each pass rewrites every node of one op into elementwise Mul/Add/Clip/Relu/Sub/Neg/Exp/Log/Tanh nodes that compute
the same function (see gradient_ops.DIFFERENTIABLE_OPS), writing the node's output under its name.
"""

from __future__ import annotations

import numpy as np
import onnx

from gradsign_rs.frontend._graph import Emitter, attribute, elem_types, numpy_dtype, rewrite_op


def _hard_sigmoid(emit: Emitter, x: str, alpha: float, beta: float, dtype: np.dtype, output: str | None = None) -> str:
    """max(0, min(1, alpha * x + beta)) in onnxruntime's order: the product, the sum, then the clamp."""
    scaled = emit.op("Mul", [x, emit.const(alpha, "alpha", dtype)], "scaled")
    shifted = emit.op("Add", [scaled, emit.const(beta, "beta", dtype)], "shifted")
    if emit.opset >= 11:
        bounds = [emit.const(0, "zero", dtype), emit.const(1, "one", dtype)]
        return emit.op("Clip", [shifted, *bounds], "hard_sigmoid", output=output)
    return emit.op("Clip", [shifted], "hard_sigmoid", output=output, min=0.0, max=1.0)  # Clip-6: bounds as attributes


def _softplus(emit: Emitter, x: str, dtype: np.dtype, output: str | None = None) -> str:
    """log(1 + exp(x)) = m + log(exp(x - m) + exp(-m)) with m = max(x, 0).

    Neither exponent is positive, so nothing overflows (|x| up to float max gives x or 0, never inf or NaN), and
    the derivative the chain rule builds is exactly sigmoid(x) whatever derivative Relu is given at 0 (m's terms
    cancel), so x = 0 gets 1/2 rather than the 0 of the Relu(x) + log(1 + exp(-|x|)) form.
    """
    m = emit.op("Relu", [x], "max0")
    below = emit.op("Exp", [emit.op("Sub", [x, m], "x_minus_max0")], "exp_x_minus_max0")
    floor = emit.op("Exp", [emit.op("Neg", [m], "minus_max0")], "exp_minus_max0")
    log = emit.op("Log", [emit.op("Add", [below, floor], "sum_exp")], "log_sum_exp")
    return emit.op("Add", [m, log], "softplus", output=output)


def lower_hard_sigmoid(model: onnx.ModelProto) -> onnx.ModelProto:
    """HardSigmoid(x; alpha=0.2, beta=0.5) -> Clip(alpha * x + beta, 0, 1)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        alpha, beta = float(attribute(node, "alpha", 0.2)), float(attribute(node, "beta", 0.5))
        _hard_sigmoid(emit, node.input[0], alpha, beta, numpy_dtype(types, node.input[0]), output=node.output[0])

    return rewrite_op(model, "HardSigmoid", lower)


def lower_hard_swish(model: onnx.ModelProto) -> onnx.ModelProto:
    """HardSwish(x) = x * HardSigmoid(x; alpha=1/6, beta=1/2), the ONNX definition (not torch's relu6(x+3)/6)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x = node.input[0]
        gate = _hard_sigmoid(emit, x, 1.0 / 6.0, 0.5, numpy_dtype(types, x))
        emit.op("Mul", [x, gate], output=node.output[0])

    return rewrite_op(model, "HardSwish", lower)


def lower_softplus(model: onnx.ModelProto) -> onnx.ModelProto:
    """Softplus(x) = log(1 + exp(x)), computed without overflow (see _softplus)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        _softplus(emit, node.input[0], numpy_dtype(types, node.input[0]), output=node.output[0])

    return rewrite_op(model, "Softplus", lower)


def lower_mish(model: onnx.ModelProto) -> onnx.ModelProto:
    """Mish(x) = x * tanh(softplus(x)); the softplus is lowered inline (no Softplus node is left behind)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x = node.input[0]
        gate = emit.op("Tanh", [_softplus(emit, x, numpy_dtype(types, x))], "tanh_softplus")
        emit.op("Mul", [x, gate], output=node.output[0])

    return rewrite_op(model, "Mish", lower)
