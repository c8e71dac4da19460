"""Lower Resize (onnxruntime-training 1.19 builds ResizeGrad, which has no CPU kernel) into ops with CPU gradients.

Resize maps output index i of each axis to the input coordinate c(i) of its coordinate_transformation_mode, in
float32 as onnxruntime computes it (s = the axis' scale; with `sizes`, s = out / in):
    half_pixel              (i + 1/2) / s - 1/2            asymmetric              i / s
    pytorch_half_pixel      as half_pixel; 0 if out = 1    tf_half_pixel_for_nn    (i + 1/2) / s
    align_corners           i (in - 1) / (out - 1)         half_pixel_symmetric    half_pixel, re-centred
mode "nearest" reads x at the rounded, clamped c(i); "linear" mixes x at floor(c) and floor(c) + 1 (c clamped to
[0, in - 1]) with weights 1 - frac(c) and frac(c). Hence the lowering, per resized axis:
  - nearest with an integer factor f where the map is i -> floor(i / f) (pure repetition: asymmetric + floor,
    asymmetric + round_prefer_floor with f = 2, the half-pixel modes + round_prefer_*, tf_half_pixel_for_nn +
    floor): Unsqueeze/Expand/Reshape, on symbolic dims too;
  - any other nearest resize of a statically sized axis: Gather with the constant index map;
  - linear (the last two axes, statically sized): MatMul with the constant (out, in) interpolation matrix.
Refused: cubic, tf_crop_and_resize, antialias, exclude_outside with linear, keep_aspect_ratio_policy other than
stretch, scales/sizes computed in the graph, and what needs a size that is not static.
"""

from __future__ import annotations

import numpy as np
import onnx

from gradsign_rs.frontend._graph import (
    Emitter,
    attribute,
    constant_value,
    default_opset,
    elem_types,
    known_dims,
    numpy_dtype,
    refusal,
    rewrite_op,
)

COORDINATE_MODES = (
    "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "half_pixel_symmetric"
)
HALF_PIXEL_MODES = ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")


def original_coordinates(mode: str, in_len: int, out_len: int, scale: float) -> np.ndarray:
    """c(i) for i in range(out_len), in onnxruntime's float32 operation order."""
    i = np.arange(out_len, dtype=np.float32)
    s, half = np.float32(scale), np.float32(0.5)
    if mode == "half_pixel_symmetric":
        adjustment = np.float32(out_len) / (s * np.float32(in_len))
        offset = np.float32(in_len) / np.float32(2) * (np.float32(1) - adjustment)
        return offset + (i + half) / s - half
    if mode == "half_pixel" or (mode == "pytorch_half_pixel" and out_len > 1):
        return (i + half) / s - half
    if mode == "pytorch_half_pixel" or (mode == "align_corners" and out_len == 1):
        return np.zeros(out_len, np.float32)
    if mode == "align_corners":
        return i * np.float32(in_len - 1) / np.float32(out_len - 1)
    if mode == "asymmetric":
        return i / s
    return (i + half) / s  # tf_half_pixel_for_nn


def nearest_indices(coordinates: np.ndarray, rounding: str, in_len: int) -> np.ndarray:
    """The input index nearest_mode picks for each coordinate, clamped to the axis (onnxruntime's rules: ties of
    the round_prefer_* modes go down/up, other halves round away from zero)."""
    tie = coordinates == np.trunc(coordinates) + np.float32(0.5)
    away = np.sign(coordinates) * np.floor(np.abs(coordinates) + 0.5)
    picked = {
        "round_prefer_floor": np.where(tie, np.floor(coordinates), away),
        "round_prefer_ceil": np.where(tie, np.ceil(coordinates), away),
        "floor": np.floor(coordinates),
        "ceil": np.ceil(coordinates),
    }[rounding]
    return np.clip(picked, 0, in_len - 1).astype(np.int64)


def linear_weights(coordinates: np.ndarray, in_len: int) -> np.ndarray:
    """The (out, in) matrix of linear interpolation at `coordinates`, clamped to [0, in - 1] (exclude_outside=0)."""
    c = np.clip(coordinates, 0, in_len - 1)
    low = np.minimum(np.floor(c).astype(np.int64), in_len - 1)
    high = np.minimum(low + 1, in_len - 1)
    frac = c - low
    weights = np.zeros((len(c), in_len), np.float64)
    rows = np.arange(len(c))
    np.add.at(weights, (rows, low), np.where(low == high, 1.0, 1.0 - frac))
    np.add.at(weights, (rows, high), np.where(low == high, 0.0, frac))
    return weights


def is_repetition(mode: str, rounding: str, factor: int) -> bool:
    """Whether nearest resizing by the integer `factor` maps output i to input floor(i / factor) on every length.

    With i = q f + r (0 <= r < f) and out = f * in: asymmetric gives c = q + r/f, so floor picks q, and
    round_prefer_floor too while r/f <= 1/2 (f <= 2); the half-pixel modes give c = q + (r + 1/2)/f - 1/2,
    strictly within 1/2 of q, so either rounding picks q; tf_half_pixel_for_nn gives q + (r + 1/2)/f < q + 1.
    """
    if factor == 1:
        return True
    if mode == "asymmetric":
        return rounding == "floor" or (rounding == "round_prefer_floor" and factor == 2)
    if mode in HALF_PIXEL_MODES:
        return rounding in ("round_prefer_floor", "round_prefer_ceil")
    return mode == "tf_half_pixel_for_nn" and rounding == "floor"


def _repeat(emit: Emitter, x: str, factors: dict[int, int], rank: int, output: str | None) -> str:
    """x with every element repeated factors[axis] times along each axis: Unsqueeze a size-1 axis after each,
    Expand it to the factor, Reshape to Shape(x) * factors."""
    axes = sorted(factors)
    inserted = [axis + 1 + k for k, axis in enumerate(axes)]
    expand = [1] * (rank + len(axes))
    for axis, position in zip(axes, inserted):
        expand[position] = factors[axis]
    unsqueezed = emit.unsqueeze(x, inserted, "unsqueezed")
    spread = emit.op("Expand", [unsqueezed, emit.ints(expand, "expand_shape")], "repeated")
    multipliers = emit.ints([factors.get(axis, 1) for axis in range(rank)], "factors")
    shape = emit.op("Mul", [emit.op("Shape", [x], "x_shape"), multipliers], "resized_shape")
    return emit.op("Reshape", [spread, shape], "resized", output=output)


def lower_resize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Resize (opset 11+) in mode nearest or linear with constant scales or sizes (see the module docstring)."""
    dims, types = known_dims(model), elem_types(model)
    opset = default_opset(model) or 1

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        x, output = node.input[0], node.output[0]

        def refuse(reason: str, remedy: str = "export the model with a supported Resize or without it") -> Exception:
            return refusal(node, reason, remedy)

        if opset < 11:
            raise refuse("Resize before opset 11 is not supported", "convert the model to opset 11 or later")
        mode = attribute(node, "mode", "nearest")
        coordinates = attribute(node, "coordinate_transformation_mode", "half_pixel")
        rounding = attribute(node, "nearest_mode", "round_prefer_floor")
        if mode not in ("nearest", "linear"):
            raise refuse(f"mode {mode!r} is not supported (only nearest and linear)")
        if coordinates not in COORDINATE_MODES:
            raise refuse(f"coordinate_transformation_mode {coordinates!r} is not supported")
        if attribute(node, "antialias", 0):
            raise refuse("antialias=1 is not supported")
        if mode == "linear" and attribute(node, "exclude_outside", 0):
            raise refuse("exclude_outside=1 is not supported")
        if attribute(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise refuse(f"keep_aspect_ratio_policy {attribute(node, 'keep_aspect_ratio_policy')!r} is not supported")
        shape = dims.get(x)
        if shape is None:
            raise refuse(f"the rank of input {x!r} is unknown", "export the model with input shapes")
        rank = len(shape)
        axes = [a % rank for a in attribute(node, "axes", range(rank))]

        # Per resized axis: the scale onnxruntime uses and the output length (None where the input's is symbolic).
        scales, sizes = (node.input[k] if len(node.input) > k else "" for k in (2, 3))
        given = {name: constant_value(model, name) for name in (scales, sizes) if name}
        if any(value is None for value in given.values()):
            raise refuse(
                "its scales/sizes are computed in the graph, not constant",
                "fold them into initializers (e.g. export with static shapes)",
            )
        scale_of: dict[int, float] = {}
        out_len: dict[int, int | None] = {}
        if sizes and given[sizes].size:
            for axis, size in zip(axes, given[sizes].tolist()):
                if shape[axis] is None:
                    raise refuse(f"sizes given for axis {axis} whose length is not static")
                scale_of[axis], out_len[axis] = float(np.float32(size) / np.float32(shape[axis])), int(size)
        elif scales and given[scales].size:
            for axis, scale in zip(axes, given[scales].astype(np.float32).tolist()):
                scale_of[axis] = scale
                out_len[axis] = None if shape[axis] is None else int(np.float32(scale) * np.float32(shape[axis]))
        else:
            raise refuse("neither scales nor sizes is given")
        resized = {a for a in scale_of if scale_of[a] != 1.0 or (out_len[a] is not None and out_len[a] != shape[a])}
        if not resized:
            emit.op("Identity", [x], output=output)
            return

        if mode == "linear":
            if not resized <= {rank - 1, rank - 2}:
                raise refuse(f"linear resizing of axes {sorted(resized)}: only the last two axes are supported")
            dtype = numpy_dtype(types, x)
            for k, axis in enumerate(sorted(resized, reverse=True)):
                if shape[axis] is None:
                    raise refuse(f"linear resizing of axis {axis}, whose length is not static")
                c = original_coordinates(coordinates, shape[axis], out_len[axis], scale_of[axis])
                weights = linear_weights(c, shape[axis])
                last = output if k == len(resized) - 1 else None
                if axis == rank - 1:  # (..., in) @ (in, out)
                    x = emit.op("MatMul", [x, emit.const(weights.T, "weights_t", dtype)], "resized", output=last)
                else:  # (out, in) @ (..., in, W)
                    x = emit.op("MatMul", [emit.const(weights, "weights", dtype), x], "resized", output=last)
            return

        factors, gathers = {}, {}
        for axis in sorted(resized):
            factor = scale_of[axis]
            if factor == int(factor) and factor >= 1 and is_repetition(coordinates, rounding, int(factor)):
                factors[axis] = int(factor)
            elif shape[axis] is not None:
                c = original_coordinates(coordinates, shape[axis], out_len[axis], factor)
                gathers[axis] = nearest_indices(c, rounding, shape[axis])
            else:
                raise refuse(
                    f"nearest resizing of axis {axis} by {factor} with {coordinates}/{rounding} is not a repetition "
                    "and the axis length is not static"
                )
        for k, (axis, indices) in enumerate(gathers.items()):
            last = output if not factors and k == len(gathers) - 1 else None
            x = emit.op("Gather", [x, emit.ints(indices, "indices")], "gathered", output=last, axis=axis)
        if factors:
            _repeat(emit, x, factors, rank, output)

    return rewrite_op(model, "Resize", lower)

