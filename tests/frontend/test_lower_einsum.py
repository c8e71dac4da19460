"""Einsum lowered to ReduceSum/Transpose/Reshape/Unsqueeze/MatMul/Squeeze: same values as onnxruntime's Einsum,
gradients equal to torch.einsum's, unsupported equations refused by name."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS
from gradsign_rs.frontend.lower_einsum import lower_einsum
from lowering_support import exact_diff, gradients, model_of, op_types, run, single_node, torch_gradients
from onnx import helper

CASES = [
    ("bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5)),
    ("bhqk,bhkd->bhqd", (2, 3, 4, 6), (2, 3, 6, 5)),
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("ij,jk->ik", (3, 4), (4, 5)),
    ("...ij,...jk->...ik", (2, 3, 4, 5), (2, 3, 5, 6)),
    ("...ij,...jk->...ik", (2, 1, 4, 5), (1, 3, 5, 6)),  # size-1 "..." dims broadcast
    ("bnd,de->bne", (2, 3, 4), (4, 5)),
    ("...d,df->...f", (2, 3, 4), (4, 5)),
    ("...d,df->...f", (4,), (4, 5)),
    ("bqhd,bkhd->bhqk", (2, 4, 3, 5), (2, 6, 3, 5)),
    ("bhqk,bkhd->bqhd", (2, 3, 4, 6), (2, 6, 3, 5)),
    ("i,i->", (7,), (7,)),
    ("ij->ji", (3, 4), None),
    ("bij->bj", (2, 3, 4), None),
    ("bij->", (2, 3, 4), None),
    ("...ij->...ji", (2, 3, 4, 5), None),
    # Beyond the list: no right-free letter, no contraction, several contracted, summed-out and implicit output.
    ("bij,bj->bi", (2, 3, 4), (2, 4)),
    ("i,j->ij", (3,), (4,)),
    ("bi,bj->bij", (2, 3), (2, 4)),
    ("bhwc,hwck->bk", (2, 3, 4, 5), (3, 4, 5, 6)),
    ("nchw,kc->nkhw", (2, 3, 4, 5), (6, 3)),
    ("ijk,jl->il", (3, 4, 5), (4, 6)),
    ("ij,kl->", (3, 4), (5, 6)),
    ("abc,cd->dba", (2, 3, 4), (4, 5)),
    ("ij,jk", (3, 4), (4, 5)),
    ("ba,ca", (3, 4), (5, 4)),
    ("B Q D , B K D -> B Q K", (2, 3, 4), (2, 5, 4)),
]


def einsum_model(
    equation: str, a: tuple, b: tuple | None, *, dims: list[tuple] | None = None, opset: int = 17
) -> onnx.ModelProto:
    shapes = dims or ([a] if b is None else [a, b])
    return single_node("Einsum", dict(zip("ab", shapes)), opset=opset, name="attn/einsum", equation=equation)


def feeds_for(a: tuple, b: tuple | None, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [a] if b is None else [a, b]
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in zip("ab", shapes)}


@pytest.mark.parametrize("equation,a,b", CASES)
def test_values_match_onnxruntime(equation, a, b):
    model = einsum_model(equation, a, b)
    feeds = feeds_for(a, b)
    lowered = lower_einsum(model)
    # Not bitwise in general: onnxruntime's Einsum sums the products in its own order (and through its own
    # MatMul/ReduceSum calls); most cases here do come out bitwise.
    exact_diff(run(model, feeds), run(lowered, feeds))
    assert "Einsum" not in op_types(lowered)
    assert set(op_types(lowered)) <= DIFFERENTIABLE_OPS, op_types(lowered)


OPSET_12_CASES = [
    ("bij->bj", (2, 3, 4), None),
    ("i,i->", (7,), (7,)),
    ("bij,bj->bi", (2, 3, 4), (2, 4)),
    ("bhwc,hwck->bk", (2, 3, 4, 5), (3, 4, 5, 6)),
]


@pytest.mark.parametrize("equation,a,b", OPSET_12_CASES)
def test_opset_12_takes_axes_as_attributes(equation, a, b):
    model = einsum_model(equation, a, b, opset=12)
    lowered = lower_einsum(model)
    assert all(len(n.input) == 1 for n in lowered.graph.node if n.op_type in ("ReduceSum", "Unsqueeze", "Squeeze"))
    feeds = feeds_for(a, b)
    exact_diff(run(model, feeds), run(lowered, feeds))


@pytest.mark.parametrize(
    "equation,a,b,dims",
    [
        ("bhwc,hwck->bk", (2, 3, 4, 5), (3, 4, 5, 6), [("B", "H", "W", "C"), ("H", "W", "C", "K")]),
        ("...ij,...jk->...ik", (2, 3, 4, 5), (2, 3, 5, 6), [("N", "M", "I", "J"), ("N", "M", "J", "K")]),
        ("bqhd,bkhd->bhqk", (2, 4, 3, 5), (2, 6, 3, 5), [("B", "Q", 3, 5), ("B", "K", 3, 5)]),
    ],
)
def test_symbolic_dims_need_no_shapes(equation, a, b, dims):
    model = einsum_model(equation, a, b, dims=dims)
    feeds = feeds_for(a, b)
    exact_diff(run(model, feeds), run(lower_einsum(model), feeds))


@pytest.mark.parametrize("equation,a,b", CASES)
def test_gradients_match_torch(equation, a, b):
    import torch

    model = einsum_model(equation, a, b)
    feeds = feeds_for(a, b, seed=1)
    weights = np.random.default_rng(2).standard_normal(run(model, feeds).shape)
    wrt = sorted(feeds)
    ours = gradients(lower_einsum(model), feeds, weights, wrt)
    theirs = torch_gradients(lambda **t: torch.einsum(equation, *(t[k] for k in wrt)), feeds, weights, wrt)
    for name in wrt:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-4 * np.abs(theirs[name]).max())


def test_only_the_einsum_is_rewritten_and_the_input_model_is_unchanged():
    w = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Einsum", ["r", "w"], ["e"], name="proj", equation="bnd,de->bne"),
        helper.make_node("Einsum", ["e", "e"], ["g"], equation="bne,bme->bnm"),  # unnamed: labelled "g"
        helper.make_node("Sigmoid", ["g"], ["y"], name="sigmoid"),
    ]
    model = model_of(nodes, {"x": (2, 3, 4)}, {"y": (2, 3, 3)}, {"w": w})
    before = model.SerializeToString()
    out = lower_einsum(model)
    assert model.SerializeToString() == before
    assert "Einsum" not in op_types(out)
    assert out.graph.node[0] == nodes[0] and out.graph.node[-1] == nodes[-1]
    producers = {o: n.name for n in out.graph.node for o in n.output}
    assert producers["e"].startswith("proj/") and producers["g"].startswith("g/")
    assert len(set(producers.values())) == len(out.graph.node)
    onnx.checker.check_model(out)
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    exact_diff(run(model, {"x": x}), run(out, {"x": x}))


@pytest.mark.parametrize(
    "equation,shapes,why",
    [
        ("ii->i", [(3, 3)], "repeats"),
        ("bii,bi->b", [(2, 3, 3), (2, 3)], "repeats"),
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], "3 operands"),
        ("ij,jk->iz", [(2, 3), (3, 4)], "appear in no operand"),
    ],
)
def test_unsupported_equations_are_refused(equation, shapes, why):
    model = single_node("Einsum", dict(zip("abc", shapes)), name="attn/einsum", equation=equation)
    with pytest.raises(GradSignError) as info:
        lower_einsum(model)
    message = str(info.value)
    assert "'attn/einsum'" in message and "Einsum" in message and repr(equation) in message
    assert "not supported" in message and why in message


def test_ellipsis_of_unknown_rank_is_refused():
    model = single_node("Einsum", {"a": (2, 3, 4), "b": (4, 5)}, name="e", equation="...d,df->...f")
    model.graph.input[0].type.tensor_type.ClearField("shape")
    with pytest.raises(GradSignError, match=r"'e' \(Einsum\).*rank .* unknown"):
        lower_einsum(model)
