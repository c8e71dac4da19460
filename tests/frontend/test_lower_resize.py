"""Resize lowered to Unsqueeze/Expand/Reshape (nearest repetition), Gather (other nearest) or MatMul (linear):
same values as onnxruntime's Resize, gradients equal to torch's F.interpolate, the rest refused by name."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS, NON_DIFFERENTIABLE_BUT_HARMLESS
from gradsign_rs.frontend.lower_resize import is_repetition, lower_resize
from lowering_support import exact_diff, gradients, model_of, op_types, run, single_node, torch_gradients
from onnx import helper

COORDINATES = [
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
]
ROUNDINGS = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
X = np.random.default_rng(0).standard_normal((1, 2, 5, 7)).astype(np.float32)


def resize(
    shape: tuple, *, scales=None, sizes=None, opset: int = 19, dims: tuple | None = None, **attrs
) -> onnx.ModelProto:
    """One Resize node named "up" on x; scales/sizes as initializers (roi empty)."""
    initializers = {}
    if scales is not None:
        initializers["scales"] = np.asarray(scales, np.float32)
    if sizes is not None:
        initializers["sizes"] = np.asarray(sizes, np.int64)
    order = ["x", "", "scales" if scales is not None else "", *(["sizes"] if sizes is not None else [])]
    return single_node("Resize", {"x": dims or shape}, initializers, input_order=order, opset=opset, name="up", **attrs)


def allowed(model: onnx.ModelProto) -> bool:
    return set(op_types(model)) <= DIFFERENTIABLE_OPS | NON_DIFFERENTIABLE_BUT_HARMLESS


@pytest.mark.parametrize("coordinates,rounding", list(itertools.product(COORDINATES, ROUNDINGS)))
@pytest.mark.parametrize(
    "scales,sizes",
    [
        ([1, 1, 2, 2], None),
        ([1, 1, 3, 2], None),
        ([1, 1, 0.5, 0.6], None),
        ([1, 1, 1.5, 2.5], None),
        (None, [1, 2, 8, 11]),
        (None, [1, 2, 3, 7]),
    ],
)
def test_nearest_is_bitwise_onnxruntime(coordinates, rounding, scales, sizes):
    model = resize(
        X.shape,
        scales=scales,
        sizes=sizes,
        mode="nearest",
        coordinate_transformation_mode=coordinates,
        nearest_mode=rounding,
    )
    lowered = lower_resize(model)
    assert "Resize" not in op_types(lowered) and allowed(lowered)
    np.testing.assert_array_equal(run(model, {"x": X}), run(lowered, {"x": X}))  # copies: exactly equal


@pytest.mark.parametrize("coordinates,rounding", list(itertools.product(COORDINATES, ROUNDINGS)))
def test_repetition_table_matches_onnxruntime(coordinates, rounding):
    """is_repetition(mode, rounding, f) implies onnxruntime's index map i -> i // f at every length tried, and
    its False is tight: some length breaks the repetition (align_corners left out on purpose: see its docstring)."""
    for factor in (2, 3, 4):
        repeats = []
        for length in (1, 2, 7, 16, 41):
            x = np.arange(length, dtype=np.float32).reshape(1, 1, 1, length)
            model = resize(
                x.shape,
                scales=[1, 1, 1, factor],
                mode="nearest",
                coordinate_transformation_mode=coordinates,
                nearest_mode=rounding,
            )
            repeats.append(np.array_equal(run(model, {"x": x}).reshape(-1), np.arange(length * factor) // factor))
        if is_repetition(coordinates, rounding, factor):
            assert all(repeats), (factor, repeats)
        elif coordinates != "align_corners":
            assert not all(repeats), factor


def test_integer_repetition_uses_expand_and_works_on_symbolic_dims():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 6)).astype(np.float32)
    model = resize(
        x.shape,
        dims=("N", 3, "H", "W"),
        scales=[1, 1, 2, 3],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    lowered = lower_resize(model)
    assert "Expand" in op_types(lowered) and "Gather" not in op_types(lowered)
    np.testing.assert_array_equal(run(model, {"x": x}), run(lowered, {"x": x}))


@pytest.mark.parametrize("coordinates", COORDINATES)
@pytest.mark.parametrize(
    "scales,sizes",
    [
        ([1, 1, 2, 2], None),
        ([1, 1, 3, 1.5], None),
        ([1, 1, 0.5, 0.75], None),
        (None, [1, 2, 9, 4]),
        ([1, 1, 1, 2], None),
        ([1, 1, 2, 1], None),
    ],
)
def test_linear_matches_onnxruntime(coordinates, scales, sizes):
    model = resize(X.shape, scales=scales, sizes=sizes, mode="linear", coordinate_transformation_mode=coordinates)
    lowered = lower_resize(model)
    assert set(op_types(lowered)) == {"MatMul"}
    # Not bitwise: onnxruntime sums four weighted corners in one expression; the lowering applies the two axes'
    # weights as two MatMuls (and computes weights in float64 before rounding them to float32).
    exact_diff(run(model, {"x": X}), run(lowered, {"x": X}))


@pytest.mark.parametrize("coordinates", ["half_pixel", "align_corners", "asymmetric"])
def test_linear_1d_matches_onnxruntime_2d(coordinates):
    x = np.random.default_rng(2).standard_normal((2, 3, 9)).astype(np.float32)
    model = resize(x.shape, scales=[1, 1, 2.5], mode="linear", coordinate_transformation_mode=coordinates)
    as_2d = resize((2, 3, 1, 9), scales=[1, 1, 1, 2.5], mode="linear", coordinate_transformation_mode=coordinates)
    expected = run(as_2d, {"x": x[:, :, None, :]})[:, :, 0, :]  # onnxruntime's bilinear kernel, height 1
    exact_diff(expected, run(lower_resize(model), {"x": x}))


def torch_case(name: str):
    """(model, torch function) pairs that compute the same resize."""
    import torch
    import torch.nn.functional as F

    cases = {
        "nearest": (
            dict(
                scales=[1, 1, 2, 2], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"
            ),
            lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
        ),
        "nearest-exact": (
            dict(
                scales=[1, 1, 3, 3],
                mode="nearest",
                coordinate_transformation_mode="half_pixel",
                nearest_mode="round_prefer_floor",
            ),
            lambda x: F.interpolate(x, scale_factor=3, mode="nearest-exact"),
        ),
        "bilinear": (
            dict(scales=[1, 1, 2, 2], mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
            lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
        ),
        "bilinear-sizes": (
            dict(sizes=[1, 2, 3, 11], mode="linear", coordinate_transformation_mode="half_pixel"),
            lambda x: F.interpolate(x, size=(3, 11), mode="bilinear", align_corners=False),
        ),
        "bilinear-corners": (
            dict(sizes=[1, 2, 9, 13], mode="linear", coordinate_transformation_mode="align_corners"),
            lambda x: F.interpolate(x, size=(9, 13), mode="bilinear", align_corners=True),
        ),
        # 5 x 7 -> 9 x 13 with align_corners: c(i) = i (n - 1) / (2n - 2) = i / 2, halves rounded down: i // 2.
        "nearest-gather": (
            dict(
                sizes=[1, 2, 9, 13],
                mode="nearest",
                coordinate_transformation_mode="align_corners",
                nearest_mode="round_prefer_floor",
            ),
            lambda x: x[:, :, torch.arange(9) // 2][..., torch.arange(13) // 2],
        ),
    }
    return cases[name]


@pytest.mark.parametrize(
    "name", ["nearest", "nearest-exact", "bilinear", "bilinear-sizes", "bilinear-corners", "nearest-gather"]
)
def test_gradients_match_torch(name):
    attrs, fn = torch_case(name)
    model = resize(X.shape, **attrs)
    lowered = lower_resize(model)
    y = run(model, {"x": X})
    np.testing.assert_allclose(run(lowered, {"x": X}), fn(__import__("torch").tensor(X)).numpy(), atol=1e-5)
    weights = np.random.default_rng(3).standard_normal(y.shape)
    ours = gradients(lowered, {"x": X}, weights, ["x"])["x"]
    theirs = torch_gradients(fn, {"x": X}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_linear_1d_gradient_matches_torch():
    import torch.nn.functional as F

    x = np.random.default_rng(4).standard_normal((2, 3, 9)).astype(np.float32)
    model = resize(x.shape, scales=[1, 1, 2], mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
    weights = np.random.default_rng(5).standard_normal((2, 3, 18))
    ours = gradients(lower_resize(model), {"x": x}, weights, ["x"])["x"]
    theirs = torch_gradients(lambda x: F.interpolate(x, scale_factor=2, mode="linear"), {"x": x}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_unit_scales_copy_the_input():
    for attrs in (dict(scales=[1, 1, 1, 1], mode="linear"), dict(sizes=list(X.shape), mode="nearest")):
        lowered = lower_resize(resize(X.shape, **attrs))
        assert op_types(lowered) == ["Identity"]
        np.testing.assert_array_equal(run(lowered, {"x": X}), X)


def test_only_the_resize_is_rewritten_and_the_input_model_is_unchanged():
    scales = np.array([1, 1, 2, 2], np.float32)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node(
            "Resize",
            ["r", "", "scales"],
            ["u"],
            name="neck/up",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Resize", ["u", "", "scales"], ["v"], mode="linear"),  # unnamed: labelled "v"
        helper.make_node("Sigmoid", ["v"], ["y"], name="sigmoid"),
    ]
    model = model_of(nodes, {"x": (1, 2, 3, 4)}, {"y": (1, 2, 12, 16)}, {"scales": scales}, opset=19)
    before = model.SerializeToString()
    out = lower_resize(model)
    assert model.SerializeToString() == before
    assert "Resize" not in op_types(out)
    assert out.graph.node[0] == nodes[0] and out.graph.node[-1] == nodes[-1]
    producers = {o: n.name for n in out.graph.node for o in n.output}
    assert producers["u"].startswith("neck/up/") and producers["v"].startswith("v/")
    onnx.checker.check_model(out)
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 4)).astype(np.float32)
    exact_diff(run(model, {"x": x}), run(out, {"x": x}))


@pytest.mark.parametrize(
    "attrs,why",
    [
        (dict(scales=[1, 1, 2, 2], mode="cubic"), "mode 'cubic'"),
        (
            dict(scales=[1, 1, 2, 2], mode="linear", coordinate_transformation_mode="tf_crop_and_resize"),
            "tf_crop_and_resize",
        ),
        (dict(scales=[1, 1, 2, 2], mode="linear", antialias=1), "antialias"),
        (dict(scales=[1, 1, 2, 2], mode="linear", exclude_outside=1), "exclude_outside"),
        (dict(sizes=[1, 2, 10, 10], mode="nearest", keep_aspect_ratio_policy="not_larger"), "keep_aspect_ratio"),
        (dict(scales=[1, 2, 2, 2], mode="linear"), "only the last two axes"),
        (dict(scales=[1, 1, 2, 2], mode="linear", dims=(1, 2, "H", "W")), "not static"),
        (
            dict(
                scales=[1, 1, 2, 2],
                mode="nearest",
                coordinate_transformation_mode="align_corners",
                dims=(1, 2, "H", "W"),
            ),
            "not a repetition",
        ),
    ],
)
def test_unsupported_resizes_are_refused(attrs, why):
    model = resize(X.shape, **attrs)
    with pytest.raises(GradSignError) as info:
        lower_resize(model)
    message = str(info.value)
    assert "'up'" in message and "Resize" in message and why in message


def test_scales_computed_in_the_graph_are_refused():
    model = single_node(
        "Resize", {"x": X.shape, "scales": (4,)}, input_order=["x", "", "scales"], opset=19, name="up", mode="nearest"
    )
    with pytest.raises(GradSignError, match=r"'up' \(Resize\).*not constant"):
        lower_resize(model)
