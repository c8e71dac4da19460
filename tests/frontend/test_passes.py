"""The non-lowering passes: each rewrite computes what onnxruntime computes on the graph as exported (or, where
onnxruntime 1.19 cannot run the original, what onnx's reference evaluator computes), on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from gradsign_rs import GradSignError
from gradsign_rs._ort import ort
from gradsign_rs.frontend.constants import constants_to_initializers
from gradsign_rs.frontend.deterministic import make_deterministic
from gradsign_rs.frontend.inputs import select_data_input
from gradsign_rs.frontend.names import name_nodes
from gradsign_rs.frontend.optional_outputs import declare_optional_outputs
from gradsign_rs.frontend.outputs import select_logits
from gradsign_rs.frontend.unshare import unshare_parameters
from gradsign_rs.frontend.versions import normalize_versions
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 6)).astype(np.float32)


def _model(nodes, inits=(), *, outputs=("y",), opset=17, ir=8, extra_inputs=()):
    graph = helper.make_graph(
        nodes,
        "case",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6]), *extra_inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def _run(model, feeds=None, outputs=None):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds or {"x": X})


def _linear(name="w", classes=4):
    return numpy_helper.from_array(RNG.standard_normal((6, classes)).astype(np.float32), name)


def test_constants_become_initializers_with_the_same_value():
    value = helper.make_tensor("c", TensorProto.FLOAT, [6, 4], RNG.standard_normal(24).astype(np.float32))
    model = _model(
        [
            helper.make_node("Constant", [], ["c"], value=value),
            helper.make_node("MatMul", ["x", "c"], ["y"]),
            helper.make_node("Constant", [], ["k"], value_float=2.0),
            helper.make_node("Mul", ["y", "k"], ["y2"]),
        ],
        outputs=("y2",),
    )
    out = constants_to_initializers(model)
    assert not any(n.op_type == "Constant" for n in out.graph.node)
    np.testing.assert_array_equal(_run(out)[0], _run(model)[0])


def test_names_are_unique_and_the_function_unchanged():
    model = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("Relu", ["m"], ["y"], name="a"),
            helper.make_node("Identity", ["y"], ["z"], name="a"),
        ],
        [_linear()],
        outputs=("z",),
    )
    out = name_nodes(model)
    names = [n.name for n in out.graph.node]
    assert all(names) and len(set(names)) == 3
    # onnxruntime refuses the original (two nodes named "a"): onnx's reference evaluator runs it.
    np.testing.assert_allclose(_run(out)[0], ReferenceEvaluator(model).run(None, {"x": X})[0], rtol=1e-6)


def test_dropout_becomes_inactive_as_in_inference():
    ratio = numpy_helper.from_array(np.array(0.5, np.float32), "ratio")
    training = numpy_helper.from_array(np.array(True), "training")
    model = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("Dropout", ["m", "ratio", "training"], ["y", "mask"], name="drop"),
            helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        ],
        [_linear(), ratio, training],
        outputs=("y", "maskf"),
    )
    out, notes = make_deterministic(model, "test")
    inference = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [model.graph.initializer[0]])
    y, mask = _run(out)
    np.testing.assert_array_equal(y, _run(inference)[0])
    assert mask.all() and notes == ("1 Dropout node(s) made inactive",)


def test_torch_stochastic_depth_becomes_the_identity():
    """x * Cast(Less(RandomUniformLike(x), p)) / p, torch's export of bernoulli_(p), is x once inactive."""
    p = numpy_helper.from_array(np.array(0.8, np.float32), "p")
    model = _model(
        [
            helper.make_node("RandomUniformLike", ["x"], ["u"]),
            helper.make_node("Less", ["u", "p"], ["keep"]),
            helper.make_node("Cast", ["keep"], ["noise"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["noise", "p"], ["scaled"]),
            helper.make_node("Mul", ["x", "scaled"], ["y"]),
        ],
        [p],
    )
    out, notes = make_deterministic(model, "test")
    np.testing.assert_array_equal(_run(out)[0], X)
    assert "Bernoulli" in notes[0]


def test_other_random_generators_are_refused_by_node():
    model = _model(
        [helper.make_node("RandomNormalLike", ["x"], ["n"], name="noise"), helper.make_node("Add", ["x", "n"], ["y"])]
    )
    with pytest.raises(GradSignError, match=r"node 'noise' is a random op \(RandomNormalLike\)"):
        make_deterministic(model, "test")


def test_unshared_parameters_keep_their_values():
    scale = numpy_helper.from_array(RNG.standard_normal(6).astype(np.float32), "g")
    bias = numpy_helper.from_array(RNG.standard_normal(6).astype(np.float32), "b")
    model = _model(
        [
            helper.make_node("LayerNormalization", ["x", "g", "b"], ["h"], name="ln1"),
            helper.make_node("LayerNormalization", ["h", "g", "b"], ["y"], name="ln2"),
        ],
        [scale, bias],
    )
    out = unshare_parameters(model)
    assert len({n.input[1] for n in out.graph.node}) == 2 and len({n.input[2] for n in out.graph.node}) == 2
    np.testing.assert_array_equal(_run(out)[0], _run(model)[0])


def test_layernorm_optional_outputs_change_nothing():
    scale = numpy_helper.from_array(RNG.standard_normal(6).astype(np.float32), "g")
    model = _model([helper.make_node("LayerNormalization", ["x", "g"], ["y"], name="ln")], [scale])
    out = declare_optional_outputs(model)
    assert len(out.graph.node[0].output) == 3
    np.testing.assert_array_equal(_run(out, outputs=["y"])[0], _run(model)[0])


def test_final_softmax_is_skipped_and_zipmap_probabilities_are_unwrapped():
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=-1)], [_linear()]
    )
    out, logits, notes = select_logits(model, "test")
    assert logits == "z" and "before the final Softmax" in notes[0]
    z = _run(out, outputs=["z"])[0]
    probabilities = _run(model)[0]
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True), probabilities, rtol=1e-6)


def test_probabilities_without_softmax_are_scored_as_log_probabilities():
    model = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["z"]),
            helper.make_node("Exp", ["z"], ["e"]),
            helper.make_node("ReduceSum", ["e", "axis"], ["s"], keepdims=1),
            helper.make_node("Div", ["e", "s"], ["p"]),
            helper.make_node("ZipMap", ["p"], ["y"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2, 3]),
        ],
        [_linear(), numpy_helper.from_array(np.array([1], np.int64), "axis")],
    )
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 1))
    out, logits, notes = select_logits(model, "test")
    assert "ZipMap" in notes[0] and "logarithm" in notes[1]
    logp = _run(out, outputs=[logits])[0]
    z = _run(_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [model.graph.initializer[0]]))[0]
    np.testing.assert_allclose(logp, z - np.log(np.exp(z).sum(1, keepdims=True)), rtol=1e-5, atol=1e-6)


def test_extra_inputs_are_fixed_to_their_values():
    flag = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])
    model = _model([helper.make_node("Mul", ["x", "scale"], ["y"])], extra_inputs=[flag])
    out, data = select_data_input(model, "test", constant_inputs={"scale": 3.0})
    assert data == "x" and [i.name for i in out.graph.input] == ["x"]
    np.testing.assert_array_equal(_run(out)[0], X * 3)


@pytest.mark.parametrize("opset", [22, 23])
def test_newer_opsets_are_converted_to_what_onnxruntime_runs(opset):
    gamma = numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "g")
    model = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("HardSwish", ["m"], ["h"]),
            helper.make_node("LayerNormalization", ["h", "g"], ["y"]),
        ],
        [_linear(), gamma],
        opset=opset,
        ir=11,
    )
    out = normalize_versions(model, "test")
    assert out.ir_version <= 10 and out.opset_import[0].version == 21
    expected = ReferenceEvaluator(model).run(None, {"x": X})[0]  # onnxruntime 1.19 refuses opset 22+ itself
    np.testing.assert_allclose(_run(out)[0], expected, rtol=1e-5, atol=1e-6)
