"""HardSigmoid, HardSwish, Softplus, Mish, Elu, Selu, Celu, ThresholdedRelu and PRelu lowered to ops
onnxruntime-training differentiates: same values as onnxruntime's own kernels, gradients equal to torch autograd's,
nothing else touched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS, NON_DIFFERENTIABLE_BUT_HARMLESS
from gradsign_rs.frontend.lower_activations import (
    lower_celu,
    lower_elu,
    lower_hard_sigmoid,
    lower_hard_swish,
    lower_mish,
    lower_prelu,
    lower_selu,
    lower_softplus,
    lower_thresholded_relu,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from lowering_support import exact_diff, gradients, model_of, op_types, run, single_node, torch_gradients
from onnx import helper

PASSES = {  # the one-input activations (PRelu, with its slope, is tested on its own)
    "HardSigmoid": lower_hard_sigmoid,
    "HardSwish": lower_hard_swish,
    "Softplus": lower_softplus,
    "Mish": lower_mish,
    "Elu": lower_elu,
    "Selu": lower_selu,
    "Celu": lower_celu,
    "ThresholdedRelu": lower_thresholded_relu,
}
ALLOWED = DIFFERENTIABLE_OPS | NON_DIFFERENTIABLE_BUT_HARMLESS  # the comparisons Where selects with
# Kinks (HardSwish/HardSigmoid(1/6, 1/2) at +-3, HardSigmoid(0.2, 0.5) at +-2.5), zeros, the overflow range of exp.
EDGES = np.array(
    [
        0.0,
        -0.0,
        3.0,
        -3.0,
        2.5,
        -2.5,
        1e-8,
        -1e-8,
        20.0,
        -20.0,
        88.0,
        89.0,
        -88.0,
        -104.0,
        1e4,
        -1e4,
        1e30,
        -1e30,
        3.4e38,
        -3.4e38,
    ],
    np.float32,
)
CASES = [
    ("HardSigmoid", {}),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),
    ("HardSigmoid", {"alpha": -0.3, "beta": 0.1}),
    ("HardSwish", {}),
    ("Softplus", {}),
    ("Mish", {}),
    ("Elu", {}),
    ("Elu", {"alpha": 0.3}),
    ("Elu", {"alpha": -0.3}),
    ("Selu", {}),
    ("Selu", {"alpha": 2.0, "gamma": 0.5}),
    ("Celu", {}),
    ("Celu", {"alpha": 2.5}),
    ("Celu", {"alpha": -2.5}),
    ("ThresholdedRelu", {}),
    ("ThresholdedRelu", {"alpha": -0.5}),
]
EXPONENTIAL = ("Elu", "Selu", "Celu")


def lowered_pair(op: str, attrs: dict, shape: tuple, opset: int = 18) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    model = single_node(op, {"x": shape}, opset=opset, name="act", **attrs)
    return model, PASSES[op](model)


def inputs(shape: tuple, seed: int) -> np.ndarray:
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(np.float32)
    flat = x.reshape(-1)
    flat[: min(len(EDGES), flat.size)] = EDGES[: flat.size]
    return x


@pytest.mark.parametrize("op,attrs", CASES)
@pytest.mark.parametrize("shape", [(64,), (2, 3, 5, 7), (1, 40, 1, 1)])
def test_values_match_onnxruntime(op, attrs, shape):
    model, lowered = lowered_pair(op, attrs, shape)
    x = inputs(shape, seed=len(shape))
    # Not bitwise for Softplus/Mish: log(1 + e) with e < 6e-8 rounds to 0 where onnxruntime's log1p keeps e, and
    # exp/log/tanh round differently from onnxruntime's fused kernels (Elu/Selu/Celu: the Exp op and the fused
    # kernel's exp differ by an ulp); HardSigmoid/HardSwish/ThresholdedRelu come out bitwise.
    exact_diff(run(model, {"x": x}), run(lowered, {"x": x}))


def test_hard_sigmoid_swish_and_thresholded_relu_are_bitwise():
    for op, attrs in [
        ("HardSigmoid", {}),
        ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),
        ("HardSwish", {}),
        ("ThresholdedRelu", {}),
        ("ThresholdedRelu", {"alpha": 2.5}),
    ]:
        model, lowered = lowered_pair(op, attrs, (4000,))
        x = np.concatenate([EDGES, np.linspace(-4, 4, 4000 - len(EDGES), dtype=np.float32)])
        np.testing.assert_array_equal(run(model, {"x": x}), run(lowered, {"x": x}))


def test_opset_10_clip_takes_attributes():
    model, lowered = lowered_pair("HardSigmoid", {"alpha": 0.3}, (50,), opset=10)
    clip = next(n for n in lowered.graph.node if n.op_type == "Clip")
    assert len(clip.input) == 1 and {a.name for a in clip.attribute} == {"min", "max"}
    x = inputs((50,), seed=0)
    exact_diff(run(model, {"x": x}), run(lowered, {"x": x}))


def test_softplus_and_mish_do_not_overflow():
    for op in ("Softplus", "Mish"):
        _, lowered = lowered_pair(op, {}, (len(EDGES),))
        y = run(lowered, {"x": EDGES})
        assert np.isfinite(y).all(), (op, y)
    _, lowered = lowered_pair("Softplus", {}, (4,))
    huge = np.array([1e30, -1e30, 3.4e38, -3.4e38], np.float32)
    np.testing.assert_array_equal(run(lowered, {"x": huge}), np.array([1e30, 0, 3.4e38, 0], np.float32))


@pytest.mark.parametrize("op", EXPONENTIAL)
def test_exponential_units_do_not_overflow_in_value_or_gradient(op):
    """exp(min(x, 0)): exp(x) of a large x would be inf, and its 0 * inf = NaN in the chain rule."""
    model, lowered = lowered_pair(op, {}, (len(EDGES),))
    y = run(lowered, {"x": EDGES})
    exact_diff(run(model, {"x": EDGES}), y)
    assert np.isfinite(y[EDGES < 3e38]).all()  # Selu's gamma > 1 takes 3.4e38 past float max, as onnxruntime's
    grad = gradients(lowered, {"x": EDGES}, np.ones(len(EDGES)), ["x"])["x"]
    assert np.isfinite(grad).all(), grad


@pytest.fixture(scope="module")
def hypothesis_pairs():
    return {op: lowered_pair(op, {}, ("n",)) for op in PASSES}


FINITE_FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 32), elements=FINITE_FLOAT32))
def test_any_float_matches_onnxruntime(hypothesis_pairs, x):
    for model, lowered in hypothesis_pairs.values():
        exact_diff(run(model, {"x": x}), run(lowered, {"x": x}))


def torch_function(op: str, attrs: dict):
    import torch
    import torch.nn.functional as F

    if op == "HardSigmoid" and not attrs:
        return lambda x: torch.clamp(0.2 * x + 0.5, 0, 1)
    if op == "HardSigmoid":
        return lambda x: F.hardsigmoid(x)  # torch's is alpha=1/6, beta=1/2
    if op == "Selu" and attrs:
        return lambda x: attrs["gamma"] * torch.where(x > 0, x, attrs["alpha"] * torch.expm1(x))
    if op in ("Elu", "Celu", "ThresholdedRelu"):
        alpha = attrs.get("alpha", 1.0)
        fn = {"Elu": F.elu, "Celu": F.celu, "ThresholdedRelu": lambda x, a: F.threshold(x, a, 0.0)}[op]
        return lambda x: fn(x, alpha)
    fn = {"HardSwish": F.hardswish, "Softplus": F.softplus, "Mish": F.mish, "Selu": F.selu}[op]
    return lambda x: fn(x)


@pytest.mark.parametrize("op,attrs", [c for c in CASES if not c[1] or c[1]["alpha"] > 0.1])
def test_gradients_match_torch(op, attrs):
    shape = (3, 4, 5, 6)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x[np.abs(np.abs(x) - 3) < 1e-2] += 0.05  # off the kinks, where one-sided derivatives differ
    x[np.abs(np.abs(x) - 2.5) < 1e-2] += 0.05
    x[np.abs(x - 1) < 1e-2] += 0.05  # ThresholdedRelu's jump
    # Softplus' smooth point 0 (derivative 1/2) and its tails; the kink of Elu/Selu/Celu at 0, where the lowering
    # takes the x <= 0 side's derivative, as torch does.
    x.reshape(-1)[:4] = [0.0, 15.0, -15.0, 30.0]
    weights = rng.standard_normal(shape)
    _, lowered = lowered_pair(op, attrs, shape)
    ours = gradients(lowered, {"x": x}, weights, ["x"])["x"]
    theirs = torch_gradients(torch_function(op, attrs), {"x": x}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_lowered_ops_are_differentiable():
    for op, attrs in CASES:
        _, lowered = lowered_pair(op, attrs, (3,))
        assert set(op_types(lowered)) <= ALLOWED and op not in op_types(lowered), op_types(lowered)
    assert set(op_types(lower_prelu(prelu((3, 4), (4,))[0]))) <= ALLOWED


def test_only_the_op_is_rewritten_and_the_input_model_is_unchanged():
    nodes = [
        helper.make_node("Relu", ["x"], ["r0"], name="relu"),
        helper.make_node("PRelu", ["r0", "slope"], ["p"], name="prelu"),
        helper.make_node("Elu", ["p"], ["e"], name="elu"),
        helper.make_node("Selu", ["e"], ["s0"], name="selu"),
        helper.make_node("Celu", ["s0"], ["c"], name="celu", alpha=2.0),
        helper.make_node("ThresholdedRelu", ["c"], ["r"], name="threshold", alpha=0.1),
        helper.make_node("HardSwish", ["r"], ["h"], name="block/hswish"),
        helper.make_node("HardSwish", ["h"], ["h2"]),  # unnamed: labelled by its output
        helper.make_node("Mish", ["h2"], ["m"], name="mish"),
        helper.make_node("Softplus", ["m"], ["s"], name="softplus"),
        helper.make_node("HardSigmoid", ["s"], ["y"], name="hsig"),
        helper.make_node("Sigmoid", ["y"], ["z"], name="sigmoid"),
    ]
    model = model_of(nodes, {"x": (2, 3)}, ["z"], {"slope": np.array([0.1, 0.2, 0.3], np.float32)}, opset=18)
    before = model.SerializeToString()
    out = model
    for lower in [*PASSES.values(), lower_prelu]:
        out = lower(out)
    assert model.SerializeToString() == before
    assert not {*PASSES, "PRelu"} & set(op_types(out))
    assert out.graph.node[0] == nodes[0] and out.graph.node[-1] == nodes[-1]
    names = [n.name for n in out.graph.node[1:-1]]
    assert len(set(names)) == len(names)
    for prefix in (
        "prelu/",
        "elu/",
        "selu/",
        "celu/",
        "threshold/",
        "block/hswish/",
        "h2/",
        "mish/",
        "softplus/",
        "hsig/",
    ):
        assert any(name.startswith(prefix) for name in names), prefix
    producers = {o: n.name for n in out.graph.node for o in n.output}
    assert producers["h"].startswith("block/hswish/") and producers["y"].startswith("hsig/")
    onnx.checker.check_model(out)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    exact_diff(run(model, {"x": x}), run(out, {"x": x}))


def test_mish_leaves_no_softplus():
    _, lowered = lowered_pair("Mish", {}, (3,))
    assert "Softplus" not in op_types(lowered) and "Mish" not in op_types(lowered)


def prelu(dims: tuple, slope_shape: tuple, *, slope_as_input: bool = False, opset: int = 17):
    """A one-node PRelu model (x declared with `dims`, "N" fed as 2) and its feeds; slope an initializer or input."""
    rng = np.random.default_rng(len(slope_shape))
    x = (rng.standard_normal([2 if d == "N" else d for d in dims]) * 3).astype(np.float32)
    x.reshape(-1)[:4] = [0.0, -0.0, 1e30, -1e30]
    slope = rng.uniform(-0.5, 1.5, slope_shape).astype(np.float32)
    if slope_as_input:
        model = single_node("PRelu", {"x": dims, "slope": slope_shape}, opset=opset, name="prelu")
        return model, {"x": x, "slope": slope}
    return single_node("PRelu", {"x": dims}, {"slope": slope}, opset=opset, name="prelu"), {"x": x}


# Slopes broadcast unidirectionally to x: per channel (torch's (C, 1, 1)), shared, trailing, full.
PRELU_CASES = [
    ((2, 3, 4, 5), (3, 1, 1)),
    ((2, 3, 4, 5), (1,)),
    ((2, 3, 4, 5), ()),
    ((2, 3, 4, 5), (5,)),
    (("N", 3, 4, 5), (4, 5)),
    (("N", 3, 4, 5), (3, 4, 5)),
    ((2, 6), (2, 6)),
]


@pytest.mark.parametrize("dims,slope_shape", PRELU_CASES)
@pytest.mark.parametrize("opset", [9, 17, 21])
def test_prelu_is_bitwise(dims, slope_shape, opset):
    model, feeds = prelu(dims, slope_shape, opset=opset)
    lowered = lower_prelu(model)
    assert "PRelu" not in op_types(lowered) and set(op_types(lowered)) <= ALLOWED
    expected, actual = run(model, feeds), run(lowered, feeds)
    assert expected.shape == actual.shape
    np.testing.assert_array_equal(expected, actual)


@pytest.mark.parametrize("dims,slope_shape", [c for c in PRELU_CASES if "N" not in c[0]])
def test_prelu_gradients_match_torch(dims, slope_shape):
    import torch

    model, feeds = prelu(dims, slope_shape, slope_as_input=True)
    feeds["x"].reshape(-1)[2:4] = [5.0, -5.0]  # keep the zeros (derivative: the slope, as torch), drop 1e30
    weights = np.random.default_rng(2).standard_normal(feeds["x"].shape)
    ours = gradients(lower_prelu(model), feeds, weights, ["x", "slope"])
    theirs = torch_gradients(lambda x, slope: torch.where(x > 0, x, slope * x), feeds, weights, ["x", "slope"])
    for name in ("x", "slope"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-4 * np.abs(theirs[name]).max())


def refusal_message(lower, model) -> str:
    with pytest.raises(GradSignError) as info:
        lower(model)
    return str(info.value)


def test_refusals_name_the_node_and_the_op():
    message = refusal_message(lower_selu, single_node("Selu", {"x": (3,)}, name="act", alpha=-1.0))
    assert "'act' (Selu)" in message and "alpha = -1.0 < 0" in message
    message = refusal_message(lower_celu, single_node("Celu", {"x": (3,)}, name="act", alpha=0.0))
    assert "'act' (Celu)" in message and "alpha = 0" in message
    message = refusal_message(lower_prelu, prelu((2, 3), (3,), opset=8)[0])
    assert "'prelu' (PRelu)" in message and "opset 8" in message and "Where" in message
    message = refusal_message(lower_elu, single_node("Elu", {"x": (3,)}, name="act", opset=7))
    assert "'act' (Elu)" in message and "opset 9 or later" in message
