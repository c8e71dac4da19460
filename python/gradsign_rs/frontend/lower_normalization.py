"""Lower InstanceNormalization and GroupNormalization (no gradient builder in onnxruntime-training 1.19) into
ReduceMean/Sub/Mul/Add/Sqrt/Div (and Reshape/Shape for groups), which it differentiates.

Both normalise with the population statistics of each (sample, channel) or (sample, group), eps inside the root:
    y = (x - mean) / sqrt(var + eps) * scale + bias,    var = mean((x - mean)^2)
(two passes, as onnxruntime's InstanceNormalization kernel; ONNX's GroupNormalization function body uses
E[x^2] - E[x]^2, which the two-pass form matches to rounding and beats when |mean| >> std).
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import onnx

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import (
    Emitter,
    attribute,
    default_opset,
    elem_types,
    known_dims,
    numpy_dtype,
    refusal,
    rewrite_op,
)


def _normalize(emit: Emitter, x: str, axes: list[int], epsilon: float, dtype: np.dtype) -> str:
    """(x - mean) / sqrt(var + epsilon) over `axes`, the population variance from the centred values."""
    mean = emit.reduce("ReduceMean", x, axes, keepdims=True, what="mean")
    centred = emit.op("Sub", [x, mean], "centred")
    squared = emit.op("Mul", [centred, centred], "squared")
    variance = emit.reduce("ReduceMean", squared, axes, keepdims=True, what="variance")
    std = emit.op("Sqrt", [emit.op("Add", [variance, emit.const(epsilon, "epsilon", dtype)], "variance_eps")], "std")
    return emit.op("Div", [centred, std], "normalized")


def _affine(emit: Emitter, x: str, scale: str, bias: str, trailing: int, output: str) -> str:
    """x * scale + bias with the 1-D scale and bias broadcast along axis 1 of x (`trailing` axes after it)."""
    shape = emit.ints([-1] + [1] * trailing, "affine_shape")
    scaled = emit.op("Mul", [x, emit.op("Reshape", [scale, shape], "scale")], "scaled")
    return emit.op("Add", [scaled, emit.op("Reshape", [bias, shape], "bias")], output=output)


def _degenerate(node: onnx.NodeProto, x: str, shape: tuple[int | None, ...], unit: str) -> GradSignError:
    return refusal(
        node,
        f"degenerate statistics: one value per {unit} (input {x!r} has shape {shape}), so every output is the bias "
        "and no gradient passes; torch refuses this too",
        "feed a larger input or remove the normalization",
    )


def lower_instance_normalization(model: onnx.ModelProto) -> onnx.ModelProto:
    """InstanceNormalization(x, scale, bias; epsilon=1e-5) over the spatial axes 2.. of an input of rank >= 3,
    scale and bias of shape (C,)."""
    dims, types = known_dims(model), elem_types(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x, scale, bias = node.input[:3]
        shape = dims.get(x)
        if shape is None:
            raise refusal(node, f"the rank of input {x!r} is unknown", "export the model with input shapes")
        if len(shape) < 3 or (None not in shape[2:] and math.prod(cast("tuple[int, ...]", shape[2:])) == 1):
            raise _degenerate(node, x, shape, "channel")
        axes = list(range(2, len(shape)))
        normalized = _normalize(emit, x, axes, float(attribute(node, "epsilon", 1e-5)), numpy_dtype(types, x))
        _affine(emit, normalized, scale, bias, len(axes), node.output[0])

    return rewrite_op(model, "InstanceNormalization", lower)


def lower_group_normalization(model: onnx.ModelProto) -> onnx.ModelProto:
    """GroupNormalization(x, scale, bias; num_groups, epsilon=1e-5): normalise x viewed as (N, G, -1), then
    scale and shift per group (opset 18..20: scale and bias of shape (G,)) or per channel (opset 21: (C,)).
    stash_type is ignored (the statistics are computed in x's type)."""
    dims, types = known_dims(model), elem_types(model)
    per_channel = (default_opset(model) or 1) >= 21

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x, scale, bias = node.input[:3]
        groups = int(attribute(node, "num_groups"))
        shape = dims.get(x)
        if shape is None:
            raise refusal(node, f"the rank of input {x!r} is unknown", "export the model with input shapes")
        channels = shape[1] if len(shape) > 1 else None
        if channels is not None and channels % groups:
            raise refusal(node, f"{channels} channels do not split into {groups} groups", "fix num_groups")
        expected = (channels, "channel (opset 21)") if per_channel else (groups, "group (opset 18..20)")
        for name in (scale, bias):
            if expected[0] is not None and dims.get(name) not in (None, (expected[0],)):
                raise refusal(
                    node,
                    f"{name!r} has shape {dims[name]}, not ({expected[0]},): one value per {expected[1]}",
                    "export the model at the opset whose GroupNormalization form it uses",
                )
        if None not in shape[1:] and math.prod(cast("tuple[int, ...]", shape[1:])) // groups == 1:
            raise _degenerate(node, x, shape, "group")
        # (N, G, C/G * spatial): the statistics of each group are those of one row.
        grouped = emit.op("Reshape", [x, emit.ints([0, groups, -1], "grouped_shape")], "grouped")
        normalized = _normalize(emit, grouped, [2], float(attribute(node, "epsilon", 1e-5)), numpy_dtype(types, x))
        x_shape = emit.op("Shape", [x], "x_shape")
        if per_channel:
            back = emit.op("Reshape", [normalized, x_shape], "normalized_x_shape")
            _affine(emit, back, scale, bias, len(shape) - 2, node.output[0])
        else:
            affine = _affine(emit, normalized, scale, bias, 1, emit.fresh("affine"))
            emit.op("Reshape", [affine, x_shape], output=node.output[0])

    return rewrite_op(model, "GroupNormalization", lower)
