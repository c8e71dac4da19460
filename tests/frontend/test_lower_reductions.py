"""Sum, Mean, ReduceSumSquare, ReduceMax, ReduceMin and GlobalMaxPool lowered to ops onnxruntime-training
differentiates: same values as onnxruntime's own ops, gradients equal to torch autograd's, the rest refused by name."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS, NON_DIFFERENTIABLE_BUT_HARMLESS
from gradsign_rs.frontend.lower_reductions import (
    lower_global_max_pool,
    lower_mean,
    lower_reduce_max,
    lower_reduce_min,
    lower_reduce_sum_square,
    lower_sum,
)
from gradsign_rs.frontend.pin import pin_batch
from lowering_support import exact_diff, gradients, model_of, op_types, run, single_node, torch_gradients
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

PASSES = {
    "Sum": lower_sum,
    "Mean": lower_mean,
    "ReduceSumSquare": lower_reduce_sum_square,
    "ReduceMax": lower_reduce_max,
    "ReduceMin": lower_reduce_min,
    "GlobalMaxPool": lower_global_max_pool,
}
ALLOWED = DIFFERENTIABLE_OPS | NON_DIFFERENTIABLE_BUT_HARMLESS  # Shape, for the output shape of the MaxPool forms
BATCH = 2  # what a symbolic "N" is fed as


def feed(dims: tuple, seed: int) -> np.ndarray:
    """Standard normal values (no ties: the max/min of each row is unique) of shape `dims` ("N" as BATCH)."""
    shape = [BATCH if d == "N" else d for d in dims]
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def lowered_checked(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model's one node lowered by its pass: no node of the op left, only differentiable or harmless ops."""
    op = model.graph.node[0].op_type
    lowered = PASSES[op](model)
    assert op not in op_types(lowered) and set(op_types(lowered)) <= ALLOWED, op_types(lowered)
    onnx.checker.check_model(lowered)
    return lowered


def reduction(op: str, dims: tuple, axes: list[int] | None, keepdims: int, opset: int, **attrs) -> onnx.ModelProto:
    """A one-node `op` model: axes an attribute before opset 18, an initializer input from it (None: no axes)."""
    if axes is not None and opset < 18:
        attrs["axes"] = axes
    inits = {"axes": np.array(axes, np.int64)} if axes is not None and opset >= 18 else None
    return single_node(op, {"x": dims}, inits, opset=opset, name="reduce", keepdims=keepdims, **attrs)


# Sum and Mean: one input, same shapes, broadcasting in every direction, a symbolic batch.
VARIADIC_CASES = [
    [(3, 4)],
    [(3, 4), (3, 4)],
    [(2, 3, 4), (4,), (3, 1)],
    [("N", 3, 4), (1, 4), (3, 1), (4,), (1, 1, 1)],
    [(5, 1), (1, 6), (5, 6), (6,), (1,), (5, 6), (1, 1)],
]


@pytest.mark.parametrize("shapes", VARIADIC_CASES)
@pytest.mark.parametrize("op", ["Sum", "Mean"])
@pytest.mark.parametrize("opset", [8, 17, 21])
def test_sum_and_mean_are_bitwise(op, shapes, opset):
    """The Add chain in input order and Mean's multiplication by 1/n are onnxruntime's own arithmetic."""
    inputs = {f"x{k}": dims for k, dims in enumerate(shapes)}
    model = single_node(op, inputs, opset=opset, name="variadic")
    lowered = lowered_checked(model)
    feeds = {name: feed(dims, seed=k) * 10 for k, (name, dims) in enumerate(inputs.items())}
    expected, actual = run(model, feeds), run(lowered, feeds)
    assert expected.shape == actual.shape
    np.testing.assert_array_equal(expected, actual)


@pytest.mark.parametrize("op", ["Sum", "Mean"])
def test_sum_and_mean_gradients_match_torch(op):
    import torch

    shapes = [(2, 3, 4), (4,), (3, 1), (2, 3, 4)]
    inputs = {f"x{k}": dims for k, dims in enumerate(shapes)}
    feeds = {name: feed(dims, seed=k) for k, (name, dims) in enumerate(inputs.items())}
    weights = np.random.default_rng(9).standard_normal((2, 3, 4))
    lowered = lowered_checked(single_node(op, inputs, name="variadic"))
    ours = gradients(lowered, feeds, weights, list(feeds))
    divisor = len(shapes) if op == "Mean" else 1
    theirs = torch_gradients(
        lambda **xs: sum(torch.broadcast_tensors(*xs.values())) / divisor, feeds, weights, list(feeds)
    )
    for name in feeds:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-4 * np.abs(theirs[name]).max())


def test_a_repeated_input_is_summed_with_its_gradient_counted_twice():
    model = single_node("Sum", {"x": (3,)}, input_order=["x", "x", "x"], name="variadic")
    x = feed((3,), seed=0)
    np.testing.assert_array_equal(run(model, {"x": x}), run(lowered_checked(model), {"x": x}))
    np.testing.assert_array_equal(gradients(lowered_checked(model), {"x": x}, np.ones(3), ["x"])["x"], np.full(3, 3.0))


# (declared dims, axes, keepdims): axes absent, one, several, unsorted, negative, a symbolic batch kept.
REDUCE_CASES = [
    ((2, 3, 4, 5), None, 1),
    ((2, 3, 4, 5), None, 0),
    (("N", 3, 4, 5), [1], 1),
    (("N", 3, 4, 5), [1], 0),
    (("N", 3, 4, 5), [-1], 0),
    (("N", 3, 4, 5), [3, 1], 1),
    (("N", 3, 4, 5), [-3, -1], 0),
    ((2, 3, 4, 5), [0, 2], 1),
    ((2, 3, 4, 5), [0, 1, 2, 3], 0),
    (("N", 7, 6, 3), [1, 2], 0),
    ((6,), [0], 1),
    ((6,), [-1], 0),
]


@pytest.mark.parametrize("dims,axes,keepdims", REDUCE_CASES)
@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSumSquare"])
@pytest.mark.parametrize("opset", [11, 17, 18, 21])
def test_reductions_match_onnxruntime(op, dims, axes, keepdims, opset):
    model = reduction(op, dims, axes, keepdims, opset)
    lowered = lowered_checked(model)
    x = feed(dims, seed=len(dims) + keepdims)
    expected, actual = run(model, {"x": x}), run(lowered, {"x": x})
    if op == "ReduceSumSquare":  # ReduceSum adds the squares in another order than ReduceSumSquare: not bitwise
        exact_diff(expected, actual)
    else:  # MaxPool picks the same element
        assert expected.shape == actual.shape
        np.testing.assert_array_equal(expected, actual)


def test_reduce_sum_square_forms_by_opset():
    """ReduceSum takes its axes as an input from opset 13, ReduceSumSquare from 18; no axes reduce everything."""
    for opset, axes, form in [(11, [1], "attribute"), (13, [1], "input"), (18, [1], "input"), (18, None, "none")]:
        lowered = lowered_checked(reduction("ReduceSumSquare", (2, 3), axes, 1, opset))
        node = next(n for n in lowered.graph.node if n.op_type == "ReduceSum")
        attribute = any(a.name == "axes" for a in node.attribute)
        assert ("input" if len(node.input) == 2 else "attribute" if attribute else "none") == form, opset


def test_noop_with_empty_axes():
    """ReduceMax/Min: x itself. ReduceSumSquare: x * x, as the ONNX reference (onnxruntime 1.19 returns x)."""
    x = feed((2, 3), seed=0)
    for axes in (None, []):
        for op in ("ReduceMax", "ReduceMin"):
            model = reduction(op, (2, 3), axes, 1, 18, noop_with_empty_axes=1)
            np.testing.assert_array_equal(run(lowered_checked(model), {"x": x}), x)
        model = reduction("ReduceSumSquare", (2, 3), axes, 1, 18, noop_with_empty_axes=1)
        reference = ReferenceEvaluator(model).run(None, {"x": x})[0]
        np.testing.assert_array_equal(run(lowered_checked(model), {"x": x}), reference)
        np.testing.assert_array_equal(reference, x * x)


def test_edge_values_of_the_max_pool_forms():
    """Infinities among finite values, as onnxruntime; the documented exceptions: a row of only -inf (ReduceMax)
    may give the lowest float, and NaN is skipped."""
    x = np.array(
        [[1.0, -np.inf, 2.0], [np.inf, 0.0, -1.0], [-np.inf, -np.inf, -np.inf], [np.nan, 3.0, 1.0]], np.float32
    )
    for op in ("ReduceMax", "ReduceMin"):
        model = reduction(op, (4, 3), [1], 0, 17)
        expected, actual = run(model, {"x": x}), run(lowered_checked(model), {"x": x})
        np.testing.assert_array_equal(expected[:2], actual[:2])
    for rows in (x[2:], x):  # one row of output, several
        model = reduction("ReduceMax", rows.shape, [1], 0, 17)
        actual = run(lowered_checked(model), {"x": rows})[-2:]
        assert actual[0] in (-np.inf, np.finfo(np.float32).min) and actual[1] == 3.0, actual


def torch_reduction(op: str, axes: list[int] | None, keepdims: int):
    import torch

    def fn(x):
        dims = tuple(range(x.dim())) if axes is None else tuple(axes)
        if op == "ReduceSumSquare":
            return (x * x).sum(dim=dims, keepdim=bool(keepdims))
        return (torch.amax if op == "ReduceMax" else torch.amin)(x, dim=dims, keepdim=bool(keepdims))

    return fn


@pytest.mark.parametrize(
    "dims,axes,keepdims",
    [((2, 3, 4, 5), [1], 1), ((2, 3, 4, 5), [-3, -1], 0), ((2, 3, 4, 5), None, 0), ((2, 7, 6, 3), [1, 2], 1)],
)
@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSumSquare"])
def test_reduction_gradients_match_torch(op, dims, axes, keepdims):
    """MaxPool routes each row's gradient to its maximum: torch's amax/amin too, when the extremum is unique."""
    model = reduction(op, dims, axes, keepdims, 18)
    x = feed(dims, seed=3)
    out_shape = run(model, {"x": x}).shape
    weights = np.random.default_rng(4).standard_normal(out_shape)
    ours = gradients(lowered_checked(model), {"x": x}, weights, ["x"])["x"]
    theirs = torch_gradients(torch_reduction(op, axes, keepdims), {"x": x}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_gradients_with_a_symbolic_batch_once_pinned():
    """The engine pins the batch before building gradients (MaxPoolGrad takes its shape from the graph): the
    lowering, made with the batch symbolic, then differentiates."""
    model = reduction("ReduceMax", ("N", 6, 6, 4), [1, 2], 0, 21)  # JAX/Flax's global max pooling over NHWC
    x = feed(("N", 6, 6, 4), seed=5)
    pinned = pin_batch(lowered_checked(model), "x", "y", BATCH)
    weights = np.random.default_rng(6).standard_normal((BATCH, 4))
    ours = gradients(pinned, {"x": x}, weights, ["x"])["x"]
    theirs = torch_gradients(torch_reduction("ReduceMax", [1, 2], 0), {"x": x}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


@pytest.mark.parametrize("dims", [(2, 3, 7), ("N", 3, 5, 4), (1, 2, 3, 4, 2), (2, 3, 1, 1)])
def test_global_max_pool_is_bitwise(dims):
    model = single_node("GlobalMaxPool", {"x": dims}, name="pool")
    x = feed(dims, seed=len(dims))
    expected, actual = run(model, {"x": x}), run(lowered_checked(model), {"x": x})
    assert expected.shape == actual.shape
    np.testing.assert_array_equal(expected, actual)


def test_global_max_pool_gradients_match_torch():
    import torch.nn.functional as F

    model = single_node("GlobalMaxPool", {"x": (2, 3, 5, 4)}, name="pool", opset=21)
    x = feed((2, 3, 5, 4), seed=7)
    weights = np.random.default_rng(8).standard_normal((2, 3, 1, 1))
    ours = gradients(lowered_checked(model), {"x": x}, weights, ["x"])["x"]
    theirs = torch_gradients(lambda x: F.adaptive_max_pool2d(x, 1), {"x": x}, weights, ["x"])["x"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_integer_max_and_min_are_kept():
    """Integer reductions carry no gradient and MaxPool has no integer kernel: the node stays as it is."""
    nodes = [
        helper.make_node("Cast", ["x"], ["i"], name="cast", to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["i"], ["m"], name="max", axes=[1], keepdims=0),
        helper.make_node("ReduceMin", ["m"], ["n"], name="min", keepdims=0),
        helper.make_node("Cast", ["n"], ["y"], name="back", to=TensorProto.FLOAT),
    ]
    model = model_of(nodes, {"x": (3, 4)}, ["y"])
    lowered = lower_reduce_min(lower_reduce_max(model))
    assert lowered.graph.node == model.graph.node
    x = feed((3, 4), seed=0) * 10
    np.testing.assert_array_equal(run(model, {"x": x}), run(lowered, {"x": x}))


def test_only_the_op_is_rewritten_and_the_input_model_is_unchanged():
    """tf2onnx's fused BatchNorm with training statistics: the variance from ReduceSumSquare; then pooling."""
    inits = {"mean_axes": np.array([0, 2, 3], np.int64), "count": np.array(1 / 50, np.float32)}
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("ReduceMean", ["r", "mean_axes"], ["mean"], name="bn/mean", keepdims=1),
        helper.make_node("Sub", ["r", "mean"], ["centred"], name="bn/centre"),
        helper.make_node("ReduceSumSquare", ["centred", "mean_axes"], ["sumsq"], name="bn/sumsq", keepdims=1),
        helper.make_node("Mul", ["sumsq", "count"], ["var"], name="bn/var"),
        helper.make_node("Sum", ["centred", "var", "mean"], ["s"]),  # unnamed: labelled by its output
        helper.make_node("GlobalMaxPool", ["s"], ["g"], name="head/gmp"),
        helper.make_node("ReduceMin", ["s", "mean_axes"], ["m"], name="head/min", keepdims=1),
        helper.make_node("Mean", ["g", "m"], ["y"], name="head/mean"),
    ]
    model = model_of(nodes, {"x": (2, 3, 5, 5)}, ["y"], inits, opset=21)
    before = model.SerializeToString()
    out = model
    for lower in PASSES.values():
        out = lower(out)
    assert model.SerializeToString() == before
    assert not set(PASSES) & set(op_types(out))
    kept = [n for n in model.graph.node if n.op_type not in PASSES]
    assert [n for n in out.graph.node if n.name in {k.name for k in kept}] == kept
    producers = {o: n.name for n in out.graph.node for o in n.output}
    for tensor, prefix in [
        ("sumsq", "bn/sumsq/"),
        ("s", "s/"),
        ("g", "head/gmp/"),
        ("m", "head/min/"),
        ("y", "head/mean/"),
    ]:
        assert producers[tensor].startswith(prefix), (tensor, producers[tensor])
    names = [n.name for n in out.graph.node]
    assert len(set(names)) == len(names)
    onnx.checker.check_model(out)
    x = feed((2, 3, 5, 5), seed=1)
    exact_diff(run(model, {"x": x}), run(out, {"x": x}))
    grad = gradients(out, {"x": x}, np.ones((1, 3, 1, 1)), ["x"])["x"]
    assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0


def refusal_message(model: onnx.ModelProto) -> str:
    with pytest.raises(GradSignError) as info:
        PASSES[model.graph.node[0].op_type](model)
    return str(info.value)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_refusals_name_the_node_and_the_op(op):
    message = refusal_message(reduction(op, ("N", 3, 4), [0, 1], 1, 17))
    assert f"'reduce' ({op})" in message and "not all static" in message and "[0, 1]" in message
    message = refusal_message(reduction(op, (2, 3), [2], 1, 17))
    assert f"'reduce' ({op})" in message and "out of range" in message
    message = refusal_message(reduction(op, (2, 0, 3), [1], 1, 17))
    assert f"'reduce' ({op})" in message and "empty axis" in message
    model = reduction(op, (2, 3), [1], 1, 17)
    model.graph.input[0].type.tensor_type.ClearField("shape")
    assert "rank of input 'x' is unknown" in refusal_message(model)
    model = single_node(op, {"x": (2, 3), "axes": (1,)}, opset=18, name="reduce")
    message = refusal_message(model)
    assert f"'reduce' ({op})" in message and "not constant" in message


def test_other_refusals():
    message = refusal_message(single_node("GlobalMaxPool", {"x": ("N", 3, "H", "W")}, name="pool"))
    assert "'pool' (GlobalMaxPool)" in message and "not all static" in message
    message = refusal_message(single_node("GlobalMaxPool", {"x": (2, 3)}, name="pool"))
    assert "'pool' (GlobalMaxPool)" in message and "rank 2" in message
    message = refusal_message(single_node("ReduceSumSquare", {"x": (2, 3), "axes": (1,)}, opset=18, name="rss"))
    assert "'rss' (ReduceSumSquare)" in message and "not constant" in message
