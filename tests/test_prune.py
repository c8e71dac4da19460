"""Pruning structural zeros and unread nodes: scores are bit-identical, and only exact identities are used."""

from __future__ import annotations

import gradsign_rs
import numpy as np
import onnx
import pytest
from gradsign_rs import engine
from gradsign_rs.frontend.prune import prune_structural_zeros
from gradsign_rs.spaces import nb201
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import graph_with

DEAD_CELLS = [
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|none~2|",  # node 2 is read by nothing
    "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",  # node 1 is zeros
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|none~1|none~2|",  # the cell output is zeros
    "|none~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",  # zeros through pooling
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_1x1~2|",  # all live
]


@pytest.mark.parametrize("cell", DEAD_CELLS)
def test_nb201_scores_are_identical_with_and_without_pruning(cell, cifar_batch, monkeypatch):
    x, y = cifar_batch
    model = nb201.build_onnx(cell, channels=8, cells_per_stage=2)
    pruned = gradsign_rs.score(model, x[:8], y[:8], num_threads=1)
    monkeypatch.setattr(engine, "prune", lambda proto: proto)
    engine._cache.clear()
    full = gradsign_rs.score(model, x[:8], y[:8], num_threads=1)
    assert (pruned.value, pruned.per_layer, pruned.n_weights) == (full.value, full.per_layer, full.n_weights)


def test_dead_nb201_ops_are_removed():
    model = nb201.build_onnx(DEAD_CELLS[1], channels=4, cells_per_stage=1)
    convs = sum(n.op_type == "Conv" for n in model.graph.node)
    assert prune_structural_zeros(model) > 0
    # Node 1 has only a `none` input, so it is zeros: the convs on edges 1->2 and 1->3 of each of the 3 cells go.
    assert sum(n.op_type == "Conv" for n in model.graph.node) == convs - 2 * 3


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    from gradsign_rs._ort import ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def _zeros_graph(consumer: list[onnx.NodeProto], outputs: list[str], extra_inits=()) -> onnx.ModelProto:
    """x -> Shape -> ConstantOfShape(0) = z, then `consumer` nodes reading x and z."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("ConstantOfShape", ["s"], ["z"], value=numpy_helper.from_array(np.zeros(1, np.float32))),
        *consumer,
    ]
    return graph_with(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        list(extra_inits),
    )


def test_an_add_of_zeros_becomes_its_other_operand_and_outputs_match():
    model = _zeros_graph(
        [helper.make_node("Relu", ["z"], ["rz"]), helper.make_node("Add", ["x", "rz"], ["out"])], ["out"]
    )
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    want = _run(model, x)
    assert prune_structural_zeros(model) == 3  # Shape, ConstantOfShape and Relu go; the Add becomes an Identity
    assert [n.op_type for n in model.graph.node] == ["Identity"]
    np.testing.assert_array_equal(_run(model, x)[0], want[0])


@pytest.mark.parametrize(
    "bias, training_mode, weight",
    [
        (0.5, 1, 1.0),  # BN(0) = bias: not zero
        (0.0, 0, 1.0),  # inference-mode BN: (0 - mean) / sqrt(var + eps) need not be zero
        (0.0, 1, np.nan),  # a non-finite parameter: 0 * nan is nan, not zero
    ],
)
def test_zeros_stop_at_ops_that_would_not_keep_them_zero(bias, training_mode, weight):
    inits = [
        numpy_helper.from_array(np.full(2, v, np.float32), n)
        for n, v in (("scale", weight), ("bias", bias), ("mean", 0.0), ("var", 1.0))
    ]
    bn = helper.make_node(
        "BatchNormalization", ["z", "scale", "bias", "mean", "var"], ["b"], training_mode=training_mode
    )
    model = _zeros_graph([bn, helper.make_node("Add", ["x", "b"], ["out"])], ["out"], inits)
    before = len(model.graph.node)
    assert prune_structural_zeros(model) == 0 and len(model.graph.node) == before


def test_zeros_read_by_other_ops_keep_their_producers_and_unread_nodes_go():
    concat = helper.make_node("Concat", ["x", "z"], ["cat"], axis=1)
    unread = helper.make_node("Relu", ["x"], ["unused"])
    model = _zeros_graph([concat, unread], ["cat"])
    x = np.ones((1, 2, 4, 4), np.float32)
    want = _run(model, x)[0]
    assert prune_structural_zeros(model) == 1  # only the unread Relu
    assert [n.op_type for n in model.graph.node] == ["Shape", "ConstantOfShape", "Concat"]
    np.testing.assert_array_equal(_run(model, x)[0], want)


def test_zero_initializers_are_not_zeros():
    # x * 0 is NaN where x is inf: a Mul by a zero initializer must stay.
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    model = _zeros_graph(
        [helper.make_node("Mul", ["x", "zero"], ["m"]), helper.make_node("Add", ["x", "m"], ["out"])], ["out"], [zero]
    )
    assert prune_structural_zeros(model) == 2  # the unread Shape and ConstantOfShape only
    assert [n.op_type for n in model.graph.node] == ["Mul", "Add"]


@pytest.mark.parametrize("cell", [DEAD_CELLS[0], DEAD_CELLS[1], DEAD_CELLS[3]])  # [2] ignores its input: see below
def test_the_input_jacobian_is_identical_with_and_without_pruning(cell, cifar_batch, monkeypatch):
    from gradsign_rs import proxies
    from gradsign_rs.proxies import graphs

    x, y = cifar_batch
    model = nb201.build_onnx(cell, channels=8, cells_per_stage=2)
    pruned = proxies.Workspace(model, x[:8], y[:8], batch_size=8).input_jacobian
    graphs._graph_cache.clear()
    monkeypatch.setattr(graphs, "prune_pass", lambda proto: proto)
    full = proxies.Workspace(model, x[:8], y[:8], batch_size=8).input_jacobian
    np.testing.assert_array_equal(pruned, full)


def test_jacob_cov_of_a_network_that_ignores_its_input_is_nan_not_an_error(cifar_batch):
    from gradsign_rs import proxies

    x, y = cifar_batch
    model = nb201.build_onnx(DEAD_CELLS[2], channels=8, cells_per_stage=1)  # the cell output is cut off
    assert np.isnan(proxies.compute(["jacob_cov"], model, x[:8], y[:8], batch_size=8)["jacob_cov"])


def test_a_zero_that_broadcasts_the_other_operand_is_kept():
    small = numpy_helper.from_array(np.ones((1, 2, 1, 1), np.float32), "small")
    model = _zeros_graph([helper.make_node("Add", ["small", "z"], ["out"])], ["out"], [small])
    x = np.zeros((1, 2, 4, 4), np.float32)
    assert prune_structural_zeros(model) == 0
    assert _run(model, x)[0].shape == (1, 2, 4, 4)


def test_unsorted_graphs_keep_what_their_outputs_read():
    model = graph_with(
        [helper.make_node("Relu", ["a"], ["y"]), helper.make_node("Identity", ["x"], ["a"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [],
    )
    assert prune_structural_zeros(model) == 0 and len(model.graph.node) == 2


def test_graphs_with_control_flow_are_left_alone():
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["b"])],
        "branch",
        [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    model = _zeros_graph(
        [
            helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=branch),
            helper.make_node("Relu", ["x"], ["unread"]),
        ],
        ["out"],
        [cond],
    )
    assert prune_structural_zeros(model) == 0 and len(model.graph.node) == 4


def test_batchnorm_with_zero_epsilon_does_not_pass_zeros():
    inits = [
        numpy_helper.from_array(np.full(2, v, np.float32), n)
        for n, v in (("scale", 1.0), ("bias", 0.0), ("mean", 0.0), ("var", 1.0))
    ]
    bn = helper.make_node(
        "BatchNormalization", ["z", "scale", "bias", "mean", "var"], ["b"], training_mode=1, epsilon=0.0
    )
    model = _zeros_graph([bn, helper.make_node("Add", ["x", "b"], ["out"])], ["out"], inits)
    assert prune_structural_zeros(model) == 0  # 0 / sqrt(0) is NaN, not 0
