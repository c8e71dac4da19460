"""`lower` applies every lowering pass: a model with all the lowered ops comes out differentiable, same values."""

from __future__ import annotations

import numpy as np
from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS, NON_DIFFERENTIABLE_BUT_HARMLESS
from gradsign_rs.frontend.lower import LOWERINGS, lower
from lowering_support import exact_diff, gradients, model_of, op_types, run
from onnx import helper


def every_lowered_op():
    rng = np.random.default_rng(0)
    params = {
        "in.scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "in.bias": rng.uniform(-0.5, 0.5, 4).astype(np.float32),
        "gn.scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "gn.bias": rng.uniform(-0.5, 0.5, 4).astype(np.float32),
        "up.scales": np.array([1, 1, 2, 2], np.float32),
        "proj.w": rng.standard_normal((6, 3)).astype(np.float32),
        "prelu.slope": rng.uniform(0.1, 0.3, (4, 1, 1)).astype(np.float32),
        "channels": np.array([1], np.int64),
        "spatial": np.array([2, 3], np.int64),
    }
    nodes = [
        helper.make_node("HardSwish", ["x"], ["a"], name="hswish"),
        helper.make_node("HardSigmoid", ["a"], ["b"], name="hsig"),
        helper.make_node("Mish", ["b"], ["c"], name="mish"),
        helper.make_node("Softplus", ["c"], ["d"], name="softplus"),
        helper.make_node("PRelu", ["d", "prelu.slope"], ["d1"], name="prelu"),
        helper.make_node("Elu", ["d1"], ["d2"], name="elu"),
        helper.make_node("Selu", ["d2"], ["d3"], name="selu"),
        helper.make_node("Celu", ["d3"], ["d4"], name="celu", alpha=2.0),
        helper.make_node("ThresholdedRelu", ["d4"], ["d5"], name="threshold", alpha=-0.5),
        helper.make_node("InstanceNormalization", ["d5", "in.scale", "in.bias"], ["e"], name="in"),
        helper.make_node("GroupNormalization", ["e", "gn.scale", "gn.bias"], ["f"], name="gn", num_groups=2),
        helper.make_node("ReduceSumSquare", ["f", "channels"], ["f_sq"], name="sumsq"),
        helper.make_node("ReduceMax", ["f", "spatial"], ["f_max"], name="max"),
        helper.make_node("ReduceMin", ["f", "channels"], ["f_min"], name="min"),
        helper.make_node("GlobalMaxPool", ["f"], ["f_pool"], name="pool"),
        helper.make_node("Sum", ["f", "f_max", "f_min"], ["f_sum"], name="sum"),
        helper.make_node("Mean", ["f_sum", "f_sq", "f_pool"], ["f_mean"], name="mean"),
        helper.make_node("Resize", ["f_mean", "", "up.scales"], ["g"], name="up", mode="linear"),
        helper.make_node("Einsum", ["g", "proj.w"], ["y"], name="proj", equation="bchw,wk->bchk"),
    ]
    return model_of(nodes, {"x": (2, 4, 3, 3)}, {"y": (2, 4, 6, 3)}, params, opset=21)


def test_lower_rewrites_every_op_and_keeps_the_values():
    model = every_lowered_op()
    before = model.SerializeToString()
    lowered = lower(model)
    assert model.SerializeToString() == before
    assert not set(LOWERINGS) & set(op_types(lowered))
    assert set(op_types(lowered)) <= DIFFERENTIABLE_OPS | NON_DIFFERENTIABLE_BUT_HARMLESS
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    # Nineteen ops in a row, two normalizations amplifying the rounding of what feeds them: 1e-5, not 1e-6.
    exact_diff(run(model, {"x": x}), run(lowered, {"x": x}), rel=1e-5)
    grad = gradients(lowered, {"x": x}, np.ones((2, 4, 6, 3)), ["x"])["x"]
    assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0


def test_a_model_without_lowered_ops_comes_back_equal():
    model = model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], {"x": (2,)}, ["y"])
    out = lower(model)
    assert out == model  # nothing to lower: the model itself comes back (passes never mutate their argument)
