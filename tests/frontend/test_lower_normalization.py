"""InstanceNormalization and GroupNormalization lowered to ReduceMean/Sub/Mul/Add/Sqrt/Div: same values as
onnxruntime's own op, gradients equal to torch autograd's, degenerate statistics refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS, NON_DIFFERENTIABLE_BUT_HARMLESS
from gradsign_rs.frontend.lower_normalization import lower_group_normalization, lower_instance_normalization
from lowering_support import exact_diff, gradients, model_of, op_types, run, single_node, torch_gradients
from onnx import helper

RNG = np.random.default_rng(0)


def affine(n: int) -> dict[str, np.ndarray]:
    return {"scale": RNG.uniform(0.5, 1.5, n).astype(np.float32), "bias": RNG.uniform(-0.5, 0.5, n).astype(np.float32)}


def instance_norm(
    shape: tuple, *, dims: tuple | None = None, epsilon: float = 1e-5, opset: int = 17, params_as_inputs: bool = False
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A one-node InstanceNormalization model (x declared with `dims`, default `shape`) and its feeds."""
    params = affine(shape[1])
    inputs = {"x": dims or shape} | ({name: (shape[1],) for name in params} if params_as_inputs else {})
    model = single_node(
        "InstanceNormalization",
        inputs,
        None if params_as_inputs else params,
        input_order=["x", "scale", "bias"],
        opset=opset,
        name="in",
        epsilon=epsilon,
    )
    x = (RNG.standard_normal(shape) * 2).astype(np.float32)
    return model, {"x": x} | (params if params_as_inputs else {})


def group_norm(
    shape: tuple,
    groups: int,
    opset: int,
    *,
    dims: tuple | None = None,
    epsilon: float = 1e-5,
    params_as_inputs: bool = False,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A one-node GroupNormalization model: scale/bias per group at opset 18..20, per channel at 21."""
    params = affine(shape[1] if opset >= 21 else groups)
    n = len(params["scale"])
    inputs = {"x": dims or shape} | ({name: (n,) for name in params} if params_as_inputs else {})
    model = single_node(
        "GroupNormalization",
        inputs,
        None if params_as_inputs else params,
        input_order=["x", "scale", "bias"],
        opset=opset,
        name="gn",
        num_groups=groups,
        epsilon=epsilon,
    )
    x = (RNG.standard_normal(shape) * 2).astype(np.float32)
    return model, {"x": x} | (params if params_as_inputs else {})


def reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The normalization in float64 from its definition (two-pass population variance, eps inside the root)."""
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    params = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    groups = attrs.get("num_groups", x.shape[1])
    rows = x.astype(np.float64).reshape(x.shape[0], groups, -1)
    normalized = (rows - rows.mean(-1, keepdims=True)) / np.sqrt(rows.var(-1, keepdims=True) + attrs["epsilon"])
    per_channel = len(params["scale"]) == x.shape[1]
    if not per_channel:
        normalized = normalized * params["scale"][:, None] + params["bias"][:, None]
    y = normalized.reshape(x.shape)
    if per_channel:
        trailing = (1,) * (x.ndim - 2)
        y = y * params["scale"].reshape(-1, *trailing) + params["bias"].reshape(-1, *trailing)
    return y


def check_exact(model: onnx.ModelProto, lowered: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """The lowering against float64 and against onnxruntime's op, both within 1e-6 * (1 + max |y|)."""
    ours = run(lowered, feeds)
    exact_diff(reference(model, feeds["x"]), ours)
    exact_diff(run(model, feeds), ours)


# Not bitwise: onnxruntime folds scale/sqrt into one multiplier and (GroupNormalization's function body) takes
# var = E[x^2] - E[x]^2, where the lowering divides the centred values by sqrt(mean of their squares + eps).
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (1, 4, 7), (2, 2, 3, 4, 5), (3, 8, 2, 1)])
@pytest.mark.parametrize("epsilon", [1e-5, 1e-2])
def test_instance_norm_matches_onnxruntime(shape, epsilon):
    model, feeds = instance_norm(shape, epsilon=epsilon)
    check_exact(model, lower_instance_normalization(model), feeds)


def test_instance_norm_with_symbolic_dims_and_opset_18():
    model, feeds = instance_norm((2, 3, 6, 4), dims=("N", 3, "H", "W"), opset=18)
    lowered = lower_instance_normalization(model)
    assert any(len(n.input) == 2 for n in lowered.graph.node if n.op_type == "ReduceMean")  # axes as an input
    check_exact(model, lowered, feeds)


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize(
    "shape,groups",
    [((2, 6, 4, 4), 3), ((2, 4, 5), 2), ((1, 6, 3, 3), 1), ((2, 6, 3, 3), 6), ((2, 4, 2, 3, 2), 2), ((2, 8), 2)],
)
def test_group_norm_matches_onnxruntime(opset, shape, groups):
    model, feeds = group_norm(shape, groups, opset)
    check_exact(model, lower_group_normalization(model), feeds)


def test_group_norm_with_symbolic_dims():
    model, feeds = group_norm((3, 6, 5, 7), 2, 21, dims=("N", 6, "H", "W"))
    check_exact(model, lower_group_normalization(model), feeds)


@pytest.mark.parametrize(
    "lower,make",
    [
        (lower_group_normalization, lambda: group_norm((1, 4, 16, 16), 2, 21)),
        (lower_instance_normalization, lambda: instance_norm((1, 4, 16, 16))),
    ],
)
def test_far_from_zero_mean_the_lowering_beats_onnxruntime(lower, make):
    model, feeds = make()
    feeds["x"] = (feeds["x"] + 30).astype(np.float32)  # |mean| >> std: onnxruntime's folded forms cancel
    ref = reference(model, feeds["x"])
    ours, theirs = (np.abs(run(m, feeds) - ref).max() for m in (lower(model), model))
    assert ours < 2e-6 and ours < theirs, (ours, theirs)


def test_instance_norm_gradients_match_torch():
    import torch.nn.functional as F

    model, feeds = instance_norm((2, 3, 4, 5), params_as_inputs=True)
    weights = RNG.standard_normal((2, 3, 4, 5))
    wrt = ["x", "scale", "bias"]
    ours = gradients(lower_instance_normalization(model), feeds, weights, wrt)
    theirs = torch_gradients(
        lambda x, scale, bias: F.instance_norm(x, weight=scale, bias=bias, eps=1e-5), feeds, weights, wrt
    )
    for name in wrt:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-4 * np.abs(theirs[name]).max())


@pytest.mark.parametrize("opset", [18, 21])
def test_group_norm_gradients_match_torch(opset):
    import torch
    import torch.nn.functional as F

    groups, shape = 3, (2, 6, 4, 3)
    model, feeds = group_norm(shape, groups, opset, params_as_inputs=True)
    weights = RNG.standard_normal(shape)
    wrt = ["x", "scale", "bias"]
    ours = gradients(lower_group_normalization(model), feeds, weights, wrt)

    def reference(x, scale, bias):
        if opset < 21:  # one scale per group: every channel of the group shares it
            scale, bias = (torch.repeat_interleave(p, shape[1] // groups) for p in (scale, bias))
        return F.group_norm(x, groups, scale, bias, eps=1e-5)

    theirs = torch_gradients(reference, feeds, weights, wrt)
    for name in wrt:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-4 * np.abs(theirs[name]).max())


def test_lowered_ops_are_differentiable():
    allowed = DIFFERENTIABLE_OPS | NON_DIFFERENTIABLE_BUT_HARMLESS
    for lowered in (
        lower_instance_normalization(instance_norm((1, 2, 3))[0]),
        lower_group_normalization(group_norm((1, 4, 3), 2, 18)[0]),
        lower_group_normalization(group_norm((1, 4, 3), 2, 21)[0]),
    ):
        assert set(op_types(lowered)) <= allowed, op_types(lowered)


def test_only_the_norms_are_rewritten_and_the_input_model_is_unchanged():
    params = affine(4) | {"gscale": np.ones(4, np.float32), "gbias": np.zeros(4, np.float32)}
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("InstanceNormalization", ["r", "scale", "bias"], ["i"], name="block/in"),
        helper.make_node("GroupNormalization", ["i", "gscale", "gbias"], ["g"], num_groups=2),
        helper.make_node("Sigmoid", ["g"], ["y"], name="sigmoid"),
    ]
    model = model_of(nodes, {"x": (2, 4, 3, 3)}, {"y": (2, 4, 3, 3)}, params, opset=21)
    before = model.SerializeToString()
    out = lower_group_normalization(lower_instance_normalization(model))
    assert model.SerializeToString() == before
    assert not {"InstanceNormalization", "GroupNormalization"} & set(op_types(out))
    assert out.graph.node[0] == nodes[0] and out.graph.node[-1] == nodes[-1]
    producers = {o: n.name for n in out.graph.node for o in n.output}
    assert producers["i"].startswith("block/in/") and producers["g"].startswith("g/")
    onnx.checker.check_model(out)
    x = RNG.standard_normal((2, 4, 3, 3)).astype(np.float32)
    exact_diff(run(model, {"x": x}), run(out, {"x": x}))


def refusal(lower, model) -> str:
    with pytest.raises(GradSignError) as info:
        lower(model)
    return str(info.value)


def test_degenerate_statistics_are_refused():
    message = refusal(lower_instance_normalization, instance_norm((2, 3, 1, 1))[0])
    assert "'in'" in message and "InstanceNormalization" in message and "degenerate" in message
    assert "(2, 3, 1, 1)" in message and "torch refuses" in message
    assert "degenerate" in refusal(lower_instance_normalization, instance_norm((2, 3))[0])
    message = refusal(lower_group_normalization, group_norm((2, 4, 1, 1), 4, 21)[0])
    assert "'gn'" in message and "GroupNormalization" in message and "degenerate" in message
    lower_group_normalization(group_norm((2, 4, 1, 1), 2, 21)[0])  # two values per group: fine


def test_inconsistent_group_norms_are_refused():
    message = refusal(lower_group_normalization, group_norm((2, 6, 3, 3), 4, 21)[0])
    assert "'gn'" in message and "6 channels do not split into 4 groups" in message
    model, _ = group_norm((2, 6, 3, 3), 3, 18)
    model.opset_import[0].version = 21  # a per-group scale at the opset that wants one per channel
    message = refusal(lower_group_normalization, model)
    assert "'gn'" in message and "GroupNormalization" in message and "(6,)" in message


def test_unknown_rank_is_refused():
    model, _ = instance_norm((2, 3, 4))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    message = refusal(lower_instance_normalization, model)
    assert "'in'" in message and "InstanceNormalization" in message and "rank" in message
