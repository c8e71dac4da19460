"""Lower Resize (onnxruntime-training 1.19 builds ResizeGrad, which has no CPU kernel) into ops with CPU gradients.

Resize maps output index i of each axis to the input coordinate c(i) of its coordinate_transformation_mode, in
float32 as onnxruntime computes it (s = the axis' scale; with `sizes`, s = out / in):
    half_pixel              (i + 1/2) / s - 1/2            asymmetric              i / s
    pytorch_half_pixel      as half_pixel; 0 if out = 1    tf_half_pixel_for_nn    (i + 1/2) / s
    align_corners           i (in - 1) / (out - 1)         half_pixel_symmetric    half_pixel, re-centred
mode "nearest" reads x at the rounded, clamped c(i); "linear" mixes x at floor(c) and floor(c) + 1 (c clamped to
[0, in - 1]) with weights 1 - frac(c) and frac(c). Hence the lowering, per resized axis:
  - nearest with an integer factor f where the map is i -> floor(i / f) (pure repetition: checked on the index
    map of a static axis; on a symbolic one, see is_repetition): Unsqueeze/Expand/Reshape;
  - any other nearest resize of a statically sized axis: Gather with the constant index map;
  - linear (the last two axes, statically sized): MatMul with the constant (out, in) interpolation matrix.
Refused: cubic, tf_crop_and_resize, antialias, exclude_outside with linear, keep_aspect_ratio_policy other than
stretch, scales/sizes computed in the graph, and what needs a size that is not static.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
)
HALF_PIXEL_MODES = ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")


def original_coordinates(mode: str, in_len: int, out_len: int, scale: float) -> np.ndarray:
    """c(i) for i in range(out_len), in onnxruntime's operation order and precision (float32; the last step of
    half_pixel_symmetric in float64)."""
    i = np.arange(out_len, dtype=np.float32)
    s, half = np.float32(scale), np.float32(0.5)
    if mode == "half_pixel_symmetric":
        adjustment = np.float32(out_len) / (s * np.float32(in_len))
        offset = np.float32(in_len) / np.float32(2) * (np.float32(1) - adjustment)
        return (np.float64(offset) + (i.astype(np.float64) + 0.5) / np.float64(s) - 0.5).astype(np.float32)
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
    """The (out, in) matrix of linear interpolation at `coordinates` clamped to [0, in - 1] (exclude_outside=0):
    weight |c - high| on low = floor(c) and |c - low| on high = low + 1, in float32 as onnxruntime computes them."""
    c = np.clip(coordinates, np.float32(0), np.float32(in_len - 1))
    low = np.minimum(c.astype(np.int64), in_len - 1)
    high = np.minimum(low + 1, in_len - 1)
    to_high, to_low = np.abs(c - low.astype(np.float32)), np.abs(c - high.astype(np.float32))
    same = low == high  # at the last index: all weight on it
    weights = np.zeros((len(c), in_len), np.float32)
    rows = np.arange(len(c))
    np.add.at(weights, (rows, low), np.where(same, np.float32(0.5), to_low))
    np.add.at(weights, (rows, high), np.where(same, np.float32(0.5), to_high))
    return weights


def is_repetition(mode: str, rounding: str, factor: int) -> bool:
    """Whether nearest resizing by the integer `factor` maps output i to input floor(i / factor) whatever the
    length (used where the length is symbolic; a static length is checked on its own index map).

    With i = q f + r (0 <= r < f) and out = f * in: asymmetric gives c = q + r/f, so floor picks q, and
    round_prefer_floor too while r/f <= 1/2 (f <= 2); the half-pixel modes give c = q + (r + 1/2)/f - 1/2,
    strictly within 1/2 of q, so either rounding picks q; tf_half_pixel_for_nn gives q + (r + 1/2)/f < q + 1.
    align_corners with round_prefer_* and f = 2 also repeats, but only by a margin of 1 / (4 in), which float32
    rounding of c eats for long axes: not listed.
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


@dataclasses.dataclass(frozen=True)
class Geometry:
    """What a Resize does to each axis: the input shape (None for symbolic dims), the scale onnxruntime uses and
    the output length (None where the input's is symbolic) per axis its scales/sizes name, and the axes it changes."""

    shape: tuple[int | None, ...]
    scale: dict[int, float]
    out_len: dict[int, int | None]

    @property
    def resized(self) -> list[int]:
        # onnxruntime copies an axis whose scale is 1 (its coordinate formula is not applied).
        return sorted(a for a, s in self.scale.items() if s != 1.0 or self.out_len[a] not in (None, self.shape[a]))


def _geometry(
    model: onnx.ModelProto, node: onnx.NodeProto, shape: tuple[int | None, ...], refuse: Callable[..., Exception]
) -> Geometry:
    """The Geometry of `node` from its constant scales or sizes (and axes, opset 18+)."""
    rank = len(shape)
    axes = [a % rank for a in attribute(node, "axes", range(rank))]
    scales, sizes = (node.input[k] if len(node.input) > k else "" for k in (2, 3))
    given = {name: constant_value(model, name) for name in (scales, sizes) if name}
    if any(value is None for value in given.values()):
        raise refuse(
            "its scales/sizes are computed in the graph, not constant",
            "fold them into initializers (e.g. export with static shapes)",
        )
    scale_of: dict[int, float] = {}
    out_len: dict[int, int | None] = {}
    size_values, scale_values = given.get(sizes) if sizes else None, given.get(scales) if scales else None
    if size_values is not None and size_values.size:
        for axis, size in zip(axes, size_values.tolist()):
            if shape[axis] is None:
                raise refuse(f"sizes given for axis {axis} whose length is not static")
            # float32 as onnxruntime: scale = out / in
            scale_of[axis], out_len[axis] = float(np.float32(size) / np.float32(shape[axis])), int(size)
    elif scale_values is not None and scale_values.size:
        for axis, scale in zip(axes, scale_values.astype(np.float32).tolist()):
            scale_of[axis] = scale
            # onnxruntime truncates the float32 product
            out_len[axis] = None if shape[axis] is None else int(np.float32(scale) * np.float32(shape[axis]))
    else:
        raise refuse("neither scales nor sizes is given")
    return Geometry(shape, scale_of, out_len)


def _lower_linear(
    emit: Emitter,
    x: str,
    output: str,
    geometry: Geometry,
    coordinates: str,
    dtype: np.dtype,
    refuse: Callable[..., Exception],
) -> None:
    """One MatMul per resized axis (the last two only) with its constant interpolation matrix."""
    rank, resized = len(geometry.shape), geometry.resized
    if not set(resized) <= {rank - 1, rank - 2}:
        raise refuse(f"linear resizing of axes {resized}: only the last two axes are supported")
    for k, axis in enumerate(reversed(resized)):
        in_len = geometry.shape[axis]
        if in_len is None:
            raise refuse(f"linear resizing of axis {axis}, whose length is not static")
        out_len = geometry.out_len[axis]
        assert out_len is not None, "Geometry sets the output length of every resized axis"
        c = original_coordinates(coordinates, in_len, out_len, geometry.scale[axis])
        weights = linear_weights(c, in_len)
        last = output if k == len(resized) - 1 else None
        if axis == rank - 1:  # (..., in) @ (in, out)
            x = emit.op("MatMul", [x, emit.const(weights.T, "weights_t", dtype)], "resized", output=last)
        else:  # (out, in) @ (..., in, W)
            x = emit.op("MatMul", [emit.const(weights, "weights", dtype), x], "resized", output=last)


def _lower_nearest(
    emit: Emitter,
    x: str,
    output: str,
    geometry: Geometry,
    coordinates: str,
    rounding: str,
    refuse: Callable[..., Exception],
) -> None:
    """Gather for the axes whose index map is not a repetition, then one Unsqueeze/Expand/Reshape for the rest."""
    factors, gathers = {}, {}
    for axis in geometry.resized:
        factor, in_len, out_len = geometry.scale[axis], geometry.shape[axis], geometry.out_len[axis]
        integer = factor == int(factor) and factor >= 1
        if in_len is not None and out_len is not None:
            indices = nearest_indices(original_coordinates(coordinates, in_len, out_len, factor), rounding, in_len)
            if integer and np.array_equal(indices, np.arange(out_len) // int(factor)):
                factors[axis] = int(factor)
            else:
                gathers[axis] = indices
        elif integer and is_repetition(coordinates, rounding, int(factor)):
            factors[axis] = int(factor)
        else:
            raise refuse(
                f"nearest resizing of axis {axis} by {factor} with {coordinates}/{rounding} is not a repetition "
                "and the axis length is not static"
            )
    for k, (axis, indices) in enumerate(gathers.items()):
        last = output if not factors and k == len(gathers) - 1 else None
        x = emit.op("Gather", [x, emit.ints(indices, "indices")], "gathered", output=last, axis=axis)
    if factors:
        _repeat(emit, x, factors, len(geometry.shape), output)


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
        geometry = _geometry(model, node, shape, refuse)
        if not geometry.resized:
            emit.op("Identity", [x], output=output)
        elif mode == "linear":
            _lower_linear(emit, x, output, geometry, coordinates, numpy_dtype(types, x), refuse)
        else:
            rounding = attribute(node, "nearest_mode", "round_prefer_floor")
            _lower_nearest(emit, x, output, geometry, coordinates, rounding, refuse)

    return rewrite_op(model, "Resize", lower)
