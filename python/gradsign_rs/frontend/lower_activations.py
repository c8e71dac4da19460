"""Lower the activations onnxruntime-training 1.19 has no gradient builder for into ops it differentiates.

Each pass rewrites every node of one op into elementwise Mul/Add/Clip/Relu/Sub/Neg/Div/Exp/Log/Tanh/Where nodes
(and the Greater that Where selects with) that compute the same function (see gradient_ops.DIFFERENTIABLE_OPS), in
onnxruntime's order of operations, writing the node's output under its name.
"""

from __future__ import annotations

import numpy as np
import onnx

from gradsign_rs.frontend._graph import Emitter, attribute, elem_types, numpy_dtype, refusal, rewrite_op

SELU_ALPHA = 1.67326319217681884765625  # the ONNX defaults (float32 values of the SELU paper's constants)
SELU_GAMMA = 1.05070102214813232421875


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


def _needs_where(emit: Emitter, node: onnx.NodeProto) -> None:
    """Refuse a model older than Where (opset 9); the pipeline converts models to opset 13 or later first."""
    if emit.opset < 9:
        raise refusal(
            node,
            f"the lowering selects with Where, which opset {emit.opset} lacks (it arrived at 9)",
            "convert the model to opset 9 or later (onnx.version_converter)",
        )


def _exponential_linear(
    emit: Emitter, x: str, alpha: float, dtype: np.dtype, *, divide: bool = False, output: str | None = None
) -> str:
    """x if x > 0 else alpha * (exp(m) - 1), m = Where(x > 0, 0, x) = min(x, 0) (divided by alpha when `divide`:
    Celu's exp(x / alpha)).

    m instead of x: the select discards the exponential where x > 0, but exp(x) would overflow to inf there and the
    chain rule would make 0 * inf = NaN. m by Where, not Min: at x = 0 the gradient goes to x whole, so the
    derivative there is the x <= 0 side's (alpha; 1 for Celu), as torch's.
    """
    zero = emit.const(0, "zero", dtype)
    positive = emit.op("Greater", [x, zero], "positive")
    negative = emit.op("Where", [positive, zero, x], "min0")
    if divide:
        negative = emit.op("Div", [negative, emit.const(alpha, "alpha", dtype)], "min0_over_alpha")
    decay = emit.op("Sub", [emit.op("Exp", [negative], "exp_min0"), emit.const(1, "one", dtype)], "exp_min0_minus_1")
    scaled = emit.op("Mul", [emit.const(alpha, "alpha", dtype), decay], "negative_part")
    return emit.op("Where", [positive, x, scaled], "exponential_linear", output=output)


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


def lower_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """PRelu(x, slope) = x if x > 0 else slope * x -> Where(x > 0, x, x * slope), as onnxruntime selects; slope
    broadcasts unidirectionally to x (opset 7 on), which Mul's multidirectional broadcasting then reproduces."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        _needs_where(emit, node)
        x, slope = node.input[:2]
        positive = emit.op("Greater", [x, emit.const(0, "zero", numpy_dtype(types, x))], "positive")
        emit.op("Where", [positive, x, emit.op("Mul", [x, slope], "sloped")], output=node.output[0])

    return rewrite_op(model, "PRelu", lower)


def lower_elu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Elu(x; alpha=1) = x if x >= 0 else alpha * (exp(x) - 1) -> Where(x > 0, x, alpha * (exp(min(x, 0)) - 1))
    (at x = 0 both give 0; see _exponential_linear)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        _needs_where(emit, node)
        x = node.input[0]
        _exponential_linear(emit, x, float(attribute(node, "alpha", 1.0)), numpy_dtype(types, x), output=node.output[0])

    return rewrite_op(model, "Elu", lower)


def lower_selu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Selu(x; alpha, gamma) = gamma * (max(x, 0) + min(alpha * (exp(x) - 1), 0)) (onnxruntime's form) ->
    gamma * Where(x > 0, x, alpha * (exp(min(x, 0)) - 1)): for alpha >= 0 the exponential term has the sign of x,
    so the clamp keeps it exactly where x <= 0 (and adds 0 to x elsewhere)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        _needs_where(emit, node)
        x, dtype = node.input[0], numpy_dtype(types, node.input[0])
        alpha, gamma = float(attribute(node, "alpha", SELU_ALPHA)), float(attribute(node, "gamma", SELU_GAMMA))
        if alpha < 0:
            raise refusal(
                node,
                f"alpha = {alpha} < 0 makes onnxruntime's clamp keep the exponential term where x > 0",
                "use alpha >= 0 (the SELU default is 1.6733)",
            )
        inner = _exponential_linear(emit, x, alpha, dtype)
        emit.op("Mul", [emit.const(gamma, "gamma", dtype), inner], output=node.output[0])

    return rewrite_op(model, "Selu", lower)


def lower_celu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Celu(x; alpha=1) = max(x, 0) + min(alpha * (exp(x / alpha) - 1), 0) -> Where(x > 0, x, alpha *
    (exp(min(x, 0) / alpha) - 1)): for any alpha != 0 the exponential term has the sign of x, so the clamp keeps it
    exactly where x <= 0."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        _needs_where(emit, node)
        x = node.input[0]
        alpha = float(attribute(node, "alpha", 1.0))
        if alpha == 0:
            raise refusal(node, "alpha = 0 divides by zero", "use a nonzero alpha")
        _exponential_linear(emit, x, alpha, numpy_dtype(types, x), divide=True, output=node.output[0])

    return rewrite_op(model, "Celu", lower)


def lower_thresholded_relu(model: onnx.ModelProto) -> onnx.ModelProto:
    """ThresholdedRelu(x; alpha=1) = x if x > alpha else 0 -> Where(x > alpha, x, 0), onnxruntime's select."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x, dtype = node.input[0], numpy_dtype(types, node.input[0])
        above = emit.op("Greater", [x, emit.const(float(attribute(node, "alpha", 1.0)), "alpha", dtype)], "above")
        emit.op("Where", [above, x, emit.const(0, "zero", dtype)], output=node.output[0])

    return rewrite_op(model, "ThresholdedRelu", lower)
