"""HardSigmoid, HardSwish, Softplus and Mish lowered to ops onnxruntime-training differentiates: same values as
onnxruntime's own kernels, gradients equal to torch autograd's, nothing else touched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from lowering_support import exact_diff, gradients, model_of, op_types, run, single_node, torch_gradients
from onnx import helper

from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS
from gradsign_rs.frontend.lower_activations import lower_hard_sigmoid, lower_hard_swish, lower_mish, lower_softplus

PASSES = {
    "HardSigmoid": lower_hard_sigmoid, "HardSwish": lower_hard_swish, "Softplus": lower_softplus, "Mish": lower_mish
}
# Kinks (HardSwish/HardSigmoid(1/6, 1/2) at +-3, HardSigmoid(0.2, 0.5) at +-2.5), zeros, the overflow range of exp.
EDGES = np.array(
    [0.0, -0.0, 3.0, -3.0, 2.5, -2.5, 1e-8, -1e-8, 20.0, -20.0, 88.0, 89.0, -88.0, -104.0, 1e4, -1e4, 1e30, -1e30,
     3.4e38, -3.4e38],
    np.float32,
)
CASES = [
    ("HardSigmoid", {}), ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}), ("HardSigmoid", {"alpha": -0.3, "beta": 0.1}),
    ("HardSwish", {}), ("Softplus", {}), ("Mish", {}),
]


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
    # exp/log/tanh round differently from onnxruntime's fused kernels; HardSigmoid/HardSwish come out bitwise.
    exact_diff(run(model, {"x": x}), run(lowered, {"x": x}))


def test_hard_sigmoid_and_swish_are_bitwise():
    for op, attrs in [("HardSigmoid", {}), ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}), ("HardSwish", {})]:
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
    fn = {"HardSwish": F.hardswish, "Softplus": F.softplus, "Mish": F.mish}[op]
    return lambda x: fn(x)


@pytest.mark.parametrize("op,attrs", [c for c in CASES if not c[1] or c[1]["alpha"] > 0.1])
def test_gradients_match_torch(op, attrs):
    shape = (3, 4, 5, 6)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x[np.abs(np.abs(x) - 3) < 1e-2] += 0.05  # off the kinks, where one-sided derivatives differ
    x[np.abs(np.abs(x) - 2.5) < 1e-2] += 0.05
    x.reshape(-1)[:4] = [0.0, 15.0, -15.0, 30.0]  # softplus' smooth point 0 (derivative 1/2) and its tails
    weights = rng.standard_normal(shape)
    _, lowered = lowered_pair(op, attrs, shape)
    ours = gradients(lowered, {"x": x}, weights, ["x"])["x"]
    theirs = torch_gradients(torch_function(op, attrs), {"x": x}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_lowered_ops_are_differentiable():
    for op, attrs in CASES:
        _, lowered = lowered_pair(op, attrs, (3,))
        assert set(op_types(lowered)) <= DIFFERENTIABLE_OPS, op_types(lowered)


def test_only_the_op_is_rewritten_and_the_input_model_is_unchanged():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("HardSwish", ["r"], ["h"], name="block/hswish"),
        helper.make_node("HardSwish", ["h"], ["h2"]),  # unnamed: labelled by its output
        helper.make_node("Mish", ["h2"], ["m"], name="mish"),
        helper.make_node("Softplus", ["m"], ["s"], name="softplus"),
        helper.make_node("HardSigmoid", ["s"], ["y"], name="hsig"),
        helper.make_node("Sigmoid", ["y"], ["z"], name="sigmoid"),
    ]
    model = model_of(nodes, {"x": (2, 3)}, ["z"], opset=18)
    before = model.SerializeToString()
    out = model
    for lower in PASSES.values():
        out = lower(out)
    assert model.SerializeToString() == before
    assert not {"HardSwish", "HardSigmoid", "Softplus", "Mish"} & set(op_types(out))
    assert out.graph.node[0] == nodes[0] and out.graph.node[-1] == nodes[-1]
    names = [n.name for n in out.graph.node[1:-1]]
    assert len(set(names)) == len(names)
    for prefix in ("block/hswish/", "h2/", "mish/", "softplus/", "hsig/"):
        assert any(name.startswith(prefix) for name in names), prefix
    producers = {o: n.name for n in out.graph.node for o in n.output}
    assert producers["h"].startswith("block/hswish/") and producers["y"].startswith("hsig/")
    onnx.checker.check_model(out)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    exact_diff(run(model, {"x": x}), run(out, {"x": x}))


def test_mish_leaves_no_softplus():
    _, lowered = lowered_pair("Mish", {}, (3,))
    assert "Softplus" not in op_types(lowered) and "Mish" not in op_types(lowered)
