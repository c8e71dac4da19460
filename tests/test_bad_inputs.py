"""The bad-input suite: every case raises GradSignError (API) or exits 2 with one line (CLI), and the message names
the problem: the argument, file, node, op, shape or value. Security cases read nothing outside the model's folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import gradsign_rs
import numpy as np
import onnx
import pytest
from conftest import CIFAR10_TRAIN
from gradsign_rs import GradSignError, proxies
from gradsign_rs.data import load_arrays, load_images
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import conv_head

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
Y = np.array([0, 1, 2, 3])


def _with_initializer(name: str, tensor: onnx.TensorProto) -> onnx.ModelProto:
    model = conv_head()
    for index, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[index].CopyFrom(tensor)
    return model


def _negative_dims() -> onnx.ModelProto:
    tensor = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w1")
    tensor.dims[0] = -4
    return _with_initializer("w1", tensor)


def _short_data() -> onnx.ModelProto:
    tensor = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w1")
    tensor.raw_data = tensor.raw_data[:-8]
    return _with_initializer("w1", tensor)


def _nan_weight() -> onnx.ModelProto:
    weight = np.ones((4, 3, 3, 3), np.float32)
    weight[0, 0, 0, 0] = np.nan
    return _with_initializer("w1", numpy_helper.from_array(weight, "w1"))


def _huge_weight() -> onnx.ModelProto:
    return _with_initializer("w1", numpy_helper.from_array(np.full((4, 3, 3, 3), 3e38, np.float32), "w1"))


def _if_model() -> onnx.ModelProto:
    """The classifier head inside both branches of an If: the weight flows in implicitly."""
    branch = lambda tag: helper.make_graph(  # noqa: E731
        [
            helper.make_node("Flatten", ["pooled"], [f"f_{tag}"]),
            helper.make_node("Gemm", [f"f_{tag}", "w2"], [f"o_{tag}"], transB=1),
        ],
        tag,
        [],
        [helper.make_tensor_value_info(f"o_{tag}", TensorProto.FLOAT, None)],
    )
    model = conv_head(extra_nodes=[], after="pooled")
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "GlobalAveragePool")]
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes.append(
        helper.make_node(
            "If", ["cond"], ["logits"], then_branch=branch("then"), else_branch=branch("else"), name="gate"
        )
    )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.append(cond)
    return model


def _external(tmp_path: Path, location: str, *, link_to: str | None = None) -> Path:
    """conv_head saved with w1 as external data at `location` (optionally a symlink to `link_to`)."""
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    model = conv_head()
    w1 = next(t for t in model.graph.initializer if t.name == "w1")
    onnx.external_data_helper.set_external_data(w1, location=location)
    w1.ClearField("raw_data")
    w1.data_location = TensorProto.EXTERNAL
    if link_to is not None:
        os.symlink(link_to, folder / location)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


# (id, action taking tmp_path, regex the GradSignError message must match)
API_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("model-int", lambda t: gradsign_rs.score(42, X, Y), "model must be a path"),
    ("model-missing", lambda t: gradsign_rs.score(t / "nope.onnx", X, Y), r"nope\.onnx.* does not exist"),
    ("model-dir", lambda t: gradsign_rs.score(t, X, Y), "is not a file"),
    ("model-garbage-bytes", lambda t: gradsign_rs.score(b"\x00garbage\xff" * 9, X, Y), "<bytes>: not an ONNX model"),
    ("model-empty-bytes", lambda t: gradsign_rs.score(b"", X, Y), "not an ONNX model"),
    ("init-negative-dims", lambda t: gradsign_rs.score(_negative_dims(), X, Y), r"initializer 'w1' has negative dims"),
    (
        "init-short-data",
        lambda t: gradsign_rs.score(_short_data(), X, Y),
        r"initializer 'w1' of shape \[4, 3, 3, 3\] needs 432 bytes",
    ),
    ("init-nan-weight", lambda t: gradsign_rs.score(_nan_weight(), X, Y), r"initializer 'w1' holds 1 NaN or inf"),
    (
        "loss-overflow",
        lambda t: gradsign_rs.score(_huge_weight(), X * 1e30, Y),
        r"the loss is NaN or inf for \d+ of 4 samples",
    ),
    ("control-flow-if", lambda t: gradsign_rs.score(_if_model(), X, Y), r"node 'gate' is a If"),
    (
        "external-symlink-out",
        lambda t: gradsign_rs.score(_external(t, "w.bin", link_to="/etc/passwd"), X, Y),
        r"external data 'w\.bin' that resolves outside the model's folder",
    ),
    (
        "external-dotdot",
        lambda t: gradsign_rs.score(_external(t, "../secret.bin"), X, Y),
        r"external data '\.\./secret\.bin' that resolves outside",
    ),
    (
        "external-absolute",
        lambda t: gradsign_rs.score(_external(t, "/etc/passwd"), X, Y),
        "only paths relative to the model's folder",
    ),
    (
        "external-missing",
        lambda t: gradsign_rs.score(_external(t, "absent.bin"), X, Y),
        r"external data file 'absent\.bin' .* does not exist",
    ),
    ("external-bytes-no-base", lambda t: gradsign_rs.score(_external(t, "w.bin").read_bytes(), X, Y), "pass base_dir="),
    (
        "weights-duplicated",
        lambda t: gradsign_rs.score(conv_head(), X, Y, weights=["w1", "w1"]),
        r"'w1' is listed more than once",
    ),
    (
        "weights-unknown",
        lambda t: gradsign_rs.score(conv_head(), X, Y, weights=["nope"]),
        r"'nope' is not an initializer",
    ),
    ("weights-string", lambda t: gradsign_rs.score(conv_head(), X, Y, weights="all"), "weights must be 'conv_linear'"),
    (
        "batchnorm-mode",
        lambda t: gradsign_rs.score(conv_head(), X, Y, batchnorm="eval"),
        "batchnorm must be 'train' or 'as_exported'",
    ),
    ("output-unknown", lambda t: gradsign_rs.score(conv_head(), X, Y, output="probs"), r"no output named 'probs'"),
    ("input-unknown", lambda t: gradsign_rs.score(conv_head(), X, Y, input="images"), r"no graph input named 'images'"),
    ("constant-unknown", lambda t: gradsign_rs.score(conv_head(), X, Y, constant_inputs={"flag": 1}), r"'flag'"),
    (
        "threads-zero",
        lambda t: gradsign_rs.score(conv_head(), X, Y, num_threads=0),
        "num_threads must be between 1 and 1024",
    ),
    (
        "threads-huge",
        lambda t: gradsign_rs.score(conv_head(), X, Y, num_threads=100000),
        "num_threads must be between 1 and 1024",
    ),
    ("threads-float", lambda t: gradsign_rs.score(conv_head(), X, Y, num_threads=1.5), "num_threads must be an int"),
    ("samples-none", lambda t: gradsign_rs.score(conv_head(), X[:0], Y[:0]), "no samples"),
    ("samples-int", lambda t: gradsign_rs.score(conv_head(), X.astype(np.int64), Y), "inputs have dtype int64"),
    ("samples-shape", lambda t: gradsign_rs.score(conv_head(), X[:, :, :4], Y), r"do not match the model's input 'x'"),
    ("samples-nan", lambda t: gradsign_rs.score(conv_head(), np.where(X > 2, np.nan, X), Y), "NaN or inf"),
    ("labels-shape", lambda t: gradsign_rs.score(conv_head(), X, Y[:3]), r"labels have shape \(3,\)"),
    ("labels-float", lambda t: gradsign_rs.score(conv_head(), X, Y.astype(np.float32)), "labels must be integer"),
    ("labels-negative", lambda t: gradsign_rs.score(conv_head(), X, Y - 1), "labels must be >= 0"),
    (
        "labels-uint64-huge",
        lambda t: gradsign_rs.score(conv_head(), X, np.array([0, 1, 2, 2**63], np.uint64)),
        "does not fit int64",
    ),
    (
        "labels-beyond-logits",
        lambda t: gradsign_rs.score(conv_head(classes=3), X, Y),
        r"label 3 .* outside the model's 3 logits",
    ),
    (
        "proxy-labels-beyond",
        lambda t: proxies.compute(["snip"], conv_head(classes=3), X, Y, batch_size=4),
        r"label 3 .* outside the model's 3 logits",
    ),
    (
        "proxy-labels-huge",
        lambda t: proxies.compute(["grad_norm"], conv_head(), X, np.array([0, 1, 2, 10**9]), batch_size=4),
        r"label 1000000000 .* outside the model's 10 logits",
    ),
    ("proxy-unknown", lambda t: proxies.compute(["magic"], conv_head(), X, Y), r"unknown proxies \['magic'\]"),
    (
        "proxy-batch-zero",
        lambda t: proxies.compute(["snip"], conv_head(), X, Y, batch_size=0),
        "batch_size must be an int >= 1",
    ),
    (
        "proxy-jacob-cov-one",
        lambda t: proxies.compute(["jacob_cov"], conv_head(), X, Y, batch_size=1),
        "jacob_cov .* batch_size must be >= 2",
    ),
    ("images-missing", lambda t: load_images(t / "none.npz"), "does not exist"),
    ("images-dir", lambda t: load_images(t), "is not a file"),
    ("images-offset-negative", lambda t: load_images(CIFAR10_TRAIN, n=4, offset=-1), "offset must be an int >= 0"),
    ("images-n-negative", lambda t: load_images(CIFAR10_TRAIN, n=-1), "n must be an int >= 1"),
    ("images-n-too-many", lambda t: load_images(CIFAR10_TRAIN, n=10**7), r"asked for 10000000 images"),
    ("images-normalize", lambda t: load_images(CIFAR10_TRAIN, n=2, normalize="imagenet"), "unknown normalisation"),
]


def _npz(tmp_path: Path, name: str, **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


FILE_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("npz-zero-bytes", lambda t: load_images(_touch(t / "z.npz")), "not a readable .npy/.npz file"),
    ("npz-truncated", lambda t: load_images(_truncated(t)), "not a readable .npy/.npz file"),
    (
        "npz-no-y",
        lambda t: load_images(_npz(t, "a.npz", x=np.zeros((2, 4, 4, 3), np.uint8))),
        r"expected arrays 'x' \(images\) and 'y'",
    ),
    (
        "npz-float-pixels",
        lambda t: load_images(_npz(t, "f.npz", x=np.zeros((2, 4, 4, 3), np.float32), y=np.zeros(2, int))),
        "holds float32 values, not uint8 pixels",
    ),
    (
        "npz-float-labels",
        lambda t: load_images(_npz(t, "l.npz", x=np.zeros((2, 4, 4, 3), np.uint8), y=np.array([0.5, 1.0]))),
        "labels must be integer class indices",
    ),
    (
        "npz-nan-labels",
        lambda t: load_images(_npz(t, "n.npz", x=np.zeros((2, 4, 4, 3), np.uint8), y=np.array([np.nan, 1.0]))),
        "labels must be integer class indices",
    ),
    (
        "npz-string-labels",
        lambda t: load_images(_npz(t, "s.npz", x=np.zeros((2, 4, 4, 3), np.uint8), y=np.array(["cat", "dog"]))),
        "labels must be integer class indices",
    ),
    ("npz-is-npy", lambda t: load_images(_npy(t)), r"a \.npy array, not an \.npz archive"),
    ("arrays-npy-without-labels", lambda t: load_arrays(_npy(t)), r"give the labels"),
    (
        "arrays-int-samples",
        lambda t: load_arrays(_npz(t, "i.npz", x=np.zeros((2, 4), np.int32), y=np.zeros(2, int))),
        "samples must be floating point",
    ),
    (
        "arrays-label-count",
        lambda t: load_arrays(_npz(t, "c.npz", x=np.zeros((2, 4), np.float32), y=np.zeros(3, int))),
        r"2 samples but labels of shape \(3,\)",
    ),
]


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncated(tmp_path: Path) -> Path:
    full = _npz(tmp_path, "full.npz", x=np.zeros((8, 4, 4, 3), np.uint8), y=np.zeros(8, int))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(full.read_bytes()[:200])
    return cut


def _npy(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 4), np.float32))
    return path


@pytest.mark.parametrize(
    ("case", "action", "pattern"), API_CASES + FILE_CASES, ids=[c[0] for c in API_CASES + FILE_CASES]
)
def test_bad_input_raises_a_gradsign_error_naming_the_problem(case, action, pattern, tmp_path):
    if "images" in case and not CIFAR10_TRAIN.is_file() and case not in ("images-missing", "images-dir"):
        pytest.skip("needs the shared CIFAR-10 images")
    with pytest.raises(GradSignError, match=pattern):
        action(tmp_path)


def test_symlinked_external_data_is_never_read(tmp_path, monkeypatch):
    """The refusal comes before any read: open() is never called on the symlink's target."""
    import builtins

    path = _external(tmp_path, "w.bin", link_to="/etc/passwd")
    opened: list[str] = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(GradSignError):
        gradsign_rs.score(path, X, Y)
    assert not any("passwd" in f or f.endswith("w.bin") for f in opened)


def test_external_data_inside_the_folder_is_read(tmp_path):
    path = _external(tmp_path, "w.bin")
    w1 = next(t for t in conv_head().graph.initializer if t.name == "w1")
    (path.parent / "w.bin").write_bytes(w1.raw_data)
    assert gradsign_rs.score(path, X, Y).value == gradsign_rs.score(conv_head(), X, Y).value
    data = path.read_bytes()
    from gradsign_rs.frontend.pipeline import prepare_network

    assert prepare_network(data, base_dir=path.parent).weights[0].name == "w1"


CLI_CASES = [
    ("score-missing-model", ["score", "nope.onnx", "--data", "x.npz"], "does not exist"),
    (
        "score-bad-layout",
        ["score", "{model}", "--data", "{data}", "--layout", "nhwc", "--n", "2"],
        "do not match the model's input",
    ),
    (
        "score-bad-constant",
        ["score", "{model}", "--data", "{data}", "--constant", "flag"],
        r"--constant 'flag': expected NAME=VALUE",
    ),
    (
        "score-bad-size",
        ["score", "{model}", "--data", "{data}", "--size", "0", "--n", "2"],
        "size must be an int between 1 and 4096",
    ),
    ("score-n-zero", ["score", "{model}", "--data", "{data}", "--n", "0"], "n must be an int >= 1"),
    ("score-data-dir", ["score", "{model}", "--data", "{tmp}"], "is not a file"),
    ("score-unknown-proxy", ["score", "{model}", "--data", "{data}", "--proxies", "magic"], "unknown proxies"),
]


@pytest.mark.parametrize(("case", "argv", "pattern"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_prints_one_line_and_exits_2(case, argv, pattern, tmp_path, capsys):
    from gradsign_rs.cli import main

    if not CIFAR10_TRAIN.is_file():
        pytest.skip("needs the shared CIFAR-10 images")
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_head().SerializeToString())
    data = _npz(tmp_path, "d.npz", x=(RNG.random((4, 8, 8, 3)) * 255).astype(np.uint8), y=np.arange(4))
    args = [a.format(model=model, data=data, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gradsign: error:"), err
    import re

    assert re.search(pattern, err), err


def test_a_graph_past_protobufs_2_gib_limit_is_refused_by_size(monkeypatch):
    from gradsign_rs.frontend import _graph

    monkeypatch.setattr(_graph, "MAX_PROTO_BYTES", 100)  # stands for 2 GiB: a real one takes minutes to build
    with pytest.raises(GradSignError, match=r"past protobuf's 2 GiB limit"):
        gradsign_rs.score(conv_head(), X, Y)
