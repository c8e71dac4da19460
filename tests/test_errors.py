"""Bad input: each case raises GradSignError (a ValueError) whose message names the problem."""

from __future__ import annotations

import gradsign_rs
import numpy as np
import pytest
from gradsign_rs import GradSignError
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import conv_head, graph_with

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
Y = np.array([0, 1, 2, 3])


def raises(match: str):
    return pytest.raises(GradSignError, match=match)


def test_error_is_a_value_error():
    assert issubclass(GradSignError, ValueError)


def test_missing_file(tmp_path):
    with raises(r"model file .*nope\.onnx.* does not exist"):
        gradsign_rs.score(tmp_path / "nope.onnx", X, Y)


def test_directory_is_not_a_model(tmp_path):
    with raises("is not a file"):
        gradsign_rs.score(tmp_path, X, Y)


def test_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    with raises(r"notes\.onnx.* is not an ONNX model"):
        gradsign_rs.score(path, X, Y)


def test_wrong_model_type():
    with raises("model must be a path"):
        gradsign_rs.score(42, X, Y)


def test_no_scored_weights():
    model = graph_with(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["logits"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [],
    )
    with raises("no scored weights"):
        gradsign_rs.score(model, X, np.zeros(4, np.int64))


def test_op_without_gradient_names_op_and_node():
    model = conv_head(extra_nodes=[helper.make_node("Round", ["pooled"], ["hs"], name="my_round")], after="hs")
    with raises(r"node 'my_round' is a Round, which onnxruntime-training 1.19 cannot differentiate"):
        gradsign_rs.score(model, X, Y)


def test_input_shape_mismatch():
    with raises(r"inputs of shape \(4, 3, 16, 16\) do not match the model's input 'x' of shape \('\?', 3, 8, 8\)"):
        gradsign_rs.score(conv_head(), np.zeros((4, 3, 16, 16), np.float32), Y)


def test_input_rank_mismatch():
    with raises("do not match the model's input 'x'"):
        gradsign_rs.score(conv_head(), np.zeros((4, 3, 8), np.float32), Y)


def test_integer_inputs_are_refused():
    with raises(r"inputs have dtype uint8; the model's input 'x' takes float32"):
        gradsign_rs.score(conv_head(), np.zeros((4, 3, 8, 8), np.uint8), Y)


def test_labels_outside_logits():
    with raises(r"label 10 \(index 3\) is outside the model's 10 logits"):
        gradsign_rs.score(conv_head(), X, np.array([0, 1, 2, 10]))


def test_negative_labels():
    with raises("labels must be >= 0"):
        gradsign_rs.score(conv_head(), X, np.array([0, -1, 2, 3]))


def test_labels_wrong_shape():
    with raises(r"labels have shape \(3,\), expected \(4,\)"):
        gradsign_rs.score(conv_head(), X, Y[:3])


def test_float_labels_are_refused():
    with raises("labels must be integer"):
        gradsign_rs.score(conv_head(), X, Y.astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_inputs(bad):
    x = X.copy()
    x[2, 1, 3, 3] = bad
    with raises(r"NaN or inf in 1 sample\(s\), first at index 2"):
        gradsign_rs.score(conv_head(), x, Y)


def test_zero_samples():
    with raises("no samples"):
        gradsign_rs.score(conv_head(), X[:0], Y[:0])


def test_output_that_is_not_logits():
    rng = np.random.default_rng(0)
    model = graph_with(
        [helper.make_node("Conv", ["x", "w"], ["feature_map"], pads=[1, 1, 1, 1])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("feature_map", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")],
    )
    with raises(r"output 'feature_map' has shape \(N, 4, 8, 8\); GradSign needs \(N, classes\) logits"):
        gradsign_rs.score(model, X, np.zeros(4, np.int64))


def test_unknown_output_name():
    with raises(r"no output named 'probs'; outputs are \['logits'\]"):
        gradsign_rs.score(conv_head(), X, Y, output="probs")


def test_fixed_batch_larger_than_one():
    model = conv_head()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 8
    with raises("fixed batch size 8"):
        gradsign_rs.score(model, X, Y)


def test_unconvertible_opset():
    model = conv_head()
    model.opset_import[0].version = 99
    with raises("opset 99 is outside what onnxruntime 1.19 trains"):
        gradsign_rs.score(model, X, Y)


def test_two_data_inputs():
    model = conv_head()
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1]))
    with raises(r"expected exactly one data input, found 2: 'x' \(float \['N', 3, 8, 8\]\), 'mask'"):
        gradsign_rs.score(model, X, Y)


def test_unknown_weight_name():
    with raises("scored weight 'w9' is not an initializer"):
        gradsign_rs.score(conv_head(), X, Y, weights=["w9"])


def test_unknown_provider():
    with raises("execution provider 'tpu' is not available"):
        gradsign_rs.score(conv_head(), X, Y, provider="tpu")


def test_bad_thread_count():
    with raises("num_threads must be between 1 and 1024, got 0"):
        gradsign_rs.score(conv_head(), X, Y, num_threads=0)


def test_missing_image_file(tmp_path):
    with raises("image file .* does not exist"):
        gradsign_rs.load_images(tmp_path / "none.npz")


def test_image_file_without_labels(tmp_path):
    path = tmp_path / "x_only.npz"
    np.savez(path, x=np.zeros((2, 4, 4, 3), np.uint8))
    with raises(r"expected arrays 'x' \(images\) and 'y' \(labels\), found \['x'\]"):
        gradsign_rs.load_images(path)


def test_too_many_images_requested(tmp_path):
    path = tmp_path / "small.npz"
    np.savez(path, x=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(2, np.int64))
    with raises("asked for 5 images from offset 0, the file has 2"):
        gradsign_rs.load_images(path, n=5)
