"""Lower the reductions onnxruntime-training 1.19 has no gradient builder for into ops it differentiates.

  - Sum(x1, ..., xn) = ((x1 + x2) + x3) + ... and Mean = Sum * (1/n): Add chains in input order (broadcasting as
    the variadic op does), the mean scaled by the reciprocal of n, as onnxruntime computes both;
  - ReduceSumSquare(x) = ReduceSum(x^2) with the same axes, keepdims and noop_with_empty_axes;
  - ReduceMax(x) over axes A = MaxPool: Transpose A to the end, Reshape to (1, 1, M, R) with R = prod(dims A)
    (static), MaxPool with kernel (1, R) takes the max of each row, Reshape to the output shape (taken from
    Shape(x), so symbolic dims outside A keep working); ReduceMin(x) = -ReduceMax(-x); GlobalMaxPool =
    ReduceMax over the spatial axes 2.. with keepdims. MaxPool's gradient routes to the first maximum of a row.
    Edge values differ from onnxruntime's ReduceMax/ReduceMin: a row of only -inf may give -3.4e38 (MaxPool starts
    from the lowest finite float when it writes one output row; for ReduceMin, a row of only +inf, +3.4e38) and NaN
    is skipped, where onnxruntime's own reductions propagate it or not depending on its position.
Axes are an attribute before opset 18 (13 for ReduceSum) and a constant second input from it.
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto

from gradsign_rs.frontend._graph import (
    Emitter,
    attribute,
    constant_value,
    elem_types,
    known_dims,
    numpy_dtype,
    refusal,
    rewrite_op,
)

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16})  # MaxPool's (CPU) types


def _add_chain(emit: Emitter, inputs: list[str], output: str | None = None) -> str:
    """inputs[0] + inputs[1] + ... left to right (Identity of a single input)."""
    if len(inputs) == 1:
        return emit.op("Identity", inputs, output=output)
    total = inputs[0]
    for k, term in enumerate(inputs[1:], start=2):
        total = emit.op("Add", [total, term], f"sum{k}", output=output if k == len(inputs) else None)
    return total


def lower_sum(model: onnx.ModelProto) -> onnx.ModelProto:
    """Sum(x1, ..., xn) -> ((x1 + x2) + x3) + ..., in input order (onnxruntime's order: the same rounding)."""

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        _add_chain(emit, list(node.input), node.output[0])

    return rewrite_op(model, "Sum", lower)


def lower_mean(model: onnx.ModelProto) -> onnx.ModelProto:
    """Mean(x1, ..., xn) -> (((x1 + x2) + x3) + ...) * (1/n): onnxruntime multiplies by the float reciprocal, which
    rounds differently from a division by n (n = 3, 5, 7...)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        if len(node.input) == 1:
            emit.op("Identity", list(node.input), output=node.output[0])
            return
        dtype = numpy_dtype(types, node.input[0])
        reciprocal = emit.const(dtype.type(1) / dtype.type(len(node.input)), "reciprocal_count", dtype)
        emit.op("Mul", [_add_chain(emit, list(node.input)), reciprocal], output=node.output[0])

    return rewrite_op(model, "Mean", lower)


def _axes(model: onnx.ModelProto, node: onnx.NodeProto, opset: int) -> list[int] | None:
    """The axes of a reduction (the attribute before opset 18, the second input from it); None when absent."""
    if opset < 18:
        axes = attribute(node, "axes")
        return None if axes is None else list(axes)
    if len(node.input) < 2 or not node.input[1]:
        return None
    axes = constant_value(model, node.input[1])
    if axes is None:
        raise refusal(
            node,
            f"axes {node.input[1]!r} are computed in the graph, not constant",
            "fold them into an initializer (onnxsim, or export with constant folding)",
        )
    return [int(a) for a in axes.reshape(-1)]


def _is_noop(node: onnx.NodeProto, axes: list[int] | None) -> bool:
    """Whether empty axes mean no reduction (noop_with_empty_axes, opset 18) rather than all axes."""
    return not axes and bool(attribute(node, "noop_with_empty_axes", 0))


def lower_reduce_sum_square(model: onnx.ModelProto) -> onnx.ModelProto:
    """ReduceSumSquare(x; axes, keepdims=1, noop_with_empty_axes=0) -> ReduceSum(x * x; same).

    With noop_with_empty_axes and empty axes the result is x * x, as the ONNX reference computes (onnxruntime
    1.19 returns x itself, or fails when the axes input is omitted)."""
    types = elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        axes = _axes(model, node, emit.opset)
        keepdims = bool(attribute(node, "keepdims", 1))
        # Pow(x, 2), not Mul(x, x): onnxruntime computes it as x * x, and a weight read twice by one node gets
        # its gradient defined twice by the gradient builder ("Duplicate definition").
        two = emit.const(2, "two", numpy_dtype(types, x))
        if _is_noop(node, axes):
            emit.op("Pow", [x, two], output=y)
            return
        squared = emit.op("Pow", [x, two], "squared")
        if axes:
            emit.reduce("ReduceSum", squared, axes, keepdims=keepdims, output=y)
        else:  # no axes: every axis, at every opset
            emit.op("ReduceSum", [squared], output=y, keepdims=int(keepdims))

    return rewrite_op(model, "ReduceSumSquare", lower)


def _input_dims(node: onnx.NodeProto, dims: dict[str, tuple[int | None, ...]]) -> tuple[int | None, ...]:
    """The dims of the node's first input (None where symbolic); refused when even its rank is unknown."""
    shape = dims.get(node.input[0])
    if shape is None:
        raise refusal(node, f"the rank of input {node.input[0]!r} is unknown", "export the model with input shapes")
    return shape


def _reduce_max(
    emit: Emitter,
    node: onnx.NodeProto,
    dims: tuple[int | None, ...],
    axes: list[int],
    keepdims: bool,
    *,
    negate: bool = False,
) -> None:
    """The node's output = max of its input x over `axes` (normalised, sorted) by one MaxPool over rows of length
    R = prod(dims[axes]); with `negate`, -max(-x) = min(x)."""
    x, output = node.input[0], node.output[0]
    reduced = [d for d in (dims[a] for a in axes) if d is not None]
    if len(reduced) < len(axes):
        raise refusal(
            node,
            f"reduced axes {axes} of {x!r} (shape {dims}) are not all static",
            "export the model with static sizes on the reduced axes",
        )
    row = math.prod(reduced)
    if row == 0:
        raise refusal(node, f"reduces over an empty axis of {x!r} (shape {dims})", "remove the empty reduction")
    source = emit.op("Neg", [x], "negated") if negate else x
    kept = [a for a in range(len(dims)) if a not in axes]
    perm = kept + axes
    moved = source if perm == sorted(perm) else emit.op("Transpose", [source], "transposed", perm=perm)
    rows = emit.op("Reshape", [moved, emit.ints([1, 1, -1, row], "rows_shape")], "rows")
    pooled = emit.op("MaxPool", [rows], "row_max", kernel_shape=[1, row])
    # The output shape from x's (symbolic dims included): kept dims, and 1 (the appended entry) for reduced ones.
    shape = emit.op("Shape", [x], "x_shape")
    if keepdims:
        shape = emit.op("Concat", [shape, emit.ints([1], "one")], "x_shape_and_one", axis=0)
    index = [a if a in kept else len(dims) for a in range(len(dims))] if keepdims else kept
    out_shape = emit.op("Gather", [shape, emit.ints(index, "out_dims")], "out_shape", axis=0)
    reduced_max = emit.op("Reshape", [pooled, out_shape], "reduced", output=None if negate else output)
    if negate:
        emit.op("Neg", [reduced_max], output=output)


def _lower_max_or_min(model: onnx.ModelProto, op_type: str) -> onnx.ModelProto:
    """ReduceMax, or ReduceMin = -ReduceMax(-x), by _reduce_max (axes, keepdims=1, noop_with_empty_axes=0)."""
    dims, types = known_dims(model), elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        if types.get(node.input[0], TensorProto.FLOAT) not in FLOAT_TYPES:
            # Integer and bool reductions carry no gradient and MaxPool has no kernel for them: keep the node.
            emit.nodes.append(node)
            return
        axes = _axes(model, node, emit.opset)
        if _is_noop(node, axes):
            emit.op("Identity", [node.input[0]], output=node.output[0])
            return
        shape = _input_dims(node, dims)
        rank = len(shape)
        if axes and not all(-rank <= a < rank for a in axes):
            raise refusal(node, f"axes {axes} out of range for rank {rank}", "fix the axes")
        axes = sorted({a % rank for a in axes}) if axes else list(range(rank))
        keepdims = bool(attribute(node, "keepdims", 1))
        _reduce_max(emit, node, shape, axes, keepdims, negate=op_type == "ReduceMin")

    return rewrite_op(model, op_type, lower)


def lower_reduce_max(model: onnx.ModelProto) -> onnx.ModelProto:
    """ReduceMax(x; axes, keepdims=1, noop_with_empty_axes=0) -> Transpose/Reshape/MaxPool/Reshape (module doc)."""
    return _lower_max_or_min(model, "ReduceMax")


def lower_reduce_min(model: onnx.ModelProto) -> onnx.ModelProto:
    """ReduceMin(x; axes, keepdims=1, noop_with_empty_axes=0) -> -ReduceMax(-x), lowered the same way."""
    return _lower_max_or_min(model, "ReduceMin")


def lower_global_max_pool(model: onnx.ModelProto) -> onnx.ModelProto:
    """GlobalMaxPool(x) of shape (N, C, d1, ...) -> ReduceMax over axes 2.. with keepdims (static d1, ...)."""
    dims = known_dims(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        shape = _input_dims(node, dims)
        if len(shape) < 3:
            raise refusal(
                node,
                f"input {node.input[0]!r} of rank {len(shape)} has no spatial axis (onnxruntime needs rank >= 3)",
                "use ReduceMax, or give the input its spatial axes",
            )
        _reduce_max(emit, node, shape, list(range(2, len(shape))), True)

    return rewrite_op(model, "GlobalMaxPool", lower)
