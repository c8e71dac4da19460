"""NAS-Bench-201 space: arch strings, official index, mutation, connectivity, and the ONNX TinyNetwork builder.

The builder is checked against an independent plain-torch TinyNetwork written here (`TinyNetworkTwin`), which
loads the ONNX initializers by name. Both run BatchNorm on batch statistics: the torch twin in train() mode, the
ONNX graph through onnxruntime, whose BatchNormalization honours training_mode=1 in this (training) build.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
import torch.nn as nn
from gradsign_rs._core import GradSignError
from gradsign_rs.spaces import nb201
from gradsign_rs.spaces.nb201 import Arch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

TABLE = nb201.index_table_path()
needs_table = pytest.mark.skipif(
    not TABLE.is_file(), reason=f"NAS-Bench-201 table {TABLE} is absent (set GRADSIGN_DATA to the shared data folder)"
)

EXAMPLE = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
# Cell output cut off: the two convs only ever see zeros.
CUT_OFF = "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|"
# Connected, but the conv on 2<-0 feeds node 2, which never reaches the output.
DEAD_BRANCH = "|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|none~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# Connected, but node 1 has no live input: it is zeros, and the conv on 2<-1 only ever sees zeros.
ZERO_FIRST_NODE = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|"
NO_PARAMS = "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"
EDGE_NAMES = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_csv(TABLE)


# --- arch strings ---------------------------------------------------------------------------------------------


def test_parse_gives_ops_in_official_edge_order():
    arch = Arch.parse(EXAMPLE)
    assert arch.ops == ("nor_conv_3x3", "none", "skip_connect", "skip_connect", "none", "avg_pool_3x3")
    assert [e.name for e in arch.edges] == list(EDGE_NAMES)
    assert str(arch) == EXAMPLE
    assert eval(repr(arch), {"Arch": Arch}) == arch


def test_parse_print_round_trip_for_every_arch():
    archs = list(nb201.enumerate_archs())
    texts = [str(a) for a in archs]
    assert len(archs) == len(set(archs)) == len(set(texts)) == 5**6 == nb201.NUM_ARCHS
    assert all(Arch.parse(t) == a for t, a in zip(texts, archs))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["expected 3 nodes", "got 1"]),
        ("|none~0|+|none~0|none~1|", ["expected 3 nodes", "got 2"]),
        (EXAMPLE + "+|none~0|", ["expected 3 nodes", "got 4"]),
        (EXAMPLE.replace("nor_conv_3x3~0", "conv_3x3~0"), ["edge 1<-0 (node 1)", "unknown op 'conv_3x3'"]),
        (EXAMPLE.replace("avg_pool_3x3~2", "max_pool_3x3~2"), ["edge 3<-2 (node 3)", "unknown op 'max_pool_3x3'"]),
        (EXAMPLE.replace("skip_connect~1", "skip_connect~2"), ["edge 2<-1 (node 2)", "'~2'", "expected '~1'"]),
        (EXAMPLE.replace("|none~0|skip_connect~1|", "|skip_connect~1|none~0|"), ["edge 2<-0", "'~1'", "expected '~0'"]),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", ["node 2", "has 1 edge(s)", "takes exactly 2"]),
        ("|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", ["node 1", "has 2 edge(s)"]),
        (EXAMPLE[1:], ["node 1", "pipe"]),
        (EXAMPLE[:-1], ["node 3", "pipe"]),
        ("|none~0|+none~0|none~1|+|none~0|none~1|none~2|", ["node 2", "pipe"]),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", ["edge 1<-0", "'none0'", "not of the form 'op~0'"]),
        ("|none~0|+|none~0||+|none~0|none~1|none~2|", ["edge 2<-1", "not of the form 'op~1'"]),
        (" " + EXAMPLE, ["node 1", "pipe"]),
    ],
)
def test_malformed_strings_name_the_problem(text, expected):
    with pytest.raises(GradSignError) as info:
        Arch.parse(text)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_bad_arch_values_are_refused():
    with pytest.raises(GradSignError, match="must be a str, got int"):
        Arch.parse(5)
    with pytest.raises(GradSignError, match="6 edge ops, got 5"):
        Arch(("none",) * 5)
    with pytest.raises(GradSignError, match="edge 3<-1: unknown op 'conv'"):
        Arch(("none", "none", "none", "none", "conv", "none"))
    assert Arch(["none"] * 6).ops == ("none",) * 6  # any sequence is stored as a tuple


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="|+~012" + string.ascii_lowercase + "_", max_size=90))
def test_parse_either_round_trips_or_raises_gradsign_error(text):
    try:
        arch = Arch.parse(text)
    except GradSignError:
        return
    assert str(arch) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(nb201.OPS), min_size=6, max_size=6))
def test_arch_strings_round_trip(ops):
    arch = Arch(tuple(ops))
    assert Arch.parse(str(arch)) == arch


# --- official index -------------------------------------------------------------------------------------------


@needs_table
def test_index_matches_the_benchmark_table(table):
    for index, text in zip(table["index"], table["arch_str"]):
        arch = Arch.from_index(int(index))
        assert str(arch) == text
        assert Arch.parse(text).index == index


@needs_table
def test_from_index_refuses_bad_indices():
    assert Arch.from_index(np.int64(7)) == Arch.from_index(7)
    for bad in (-1, nb201.NUM_ARCHS):
        with pytest.raises(GradSignError, match="out of range 0..15624"):
            Arch.from_index(bad)
    with pytest.raises(GradSignError, match="is an int"):
        Arch.from_index(3.0)


def test_data_root_is_configurable(monkeypatch, tmp_path):
    monkeypatch.delenv("GRADSIGN_DATA", raising=False)
    repository_root = Path(nb201.__file__).resolve().parents[3]
    assert nb201.data_root() == repository_root.parent / "shared" / "data"
    monkeypatch.setenv("GRADSIGN_DATA", str(tmp_path))
    assert nb201.data_root() == tmp_path
    assert nb201.index_table_path() == tmp_path / "nb201" / "nb201_cifar10.csv"
    with pytest.raises(FileNotFoundError, match="GRADSIGN_DATA"):
        _ = Arch.parse(EXAMPLE).index


def test_a_broken_table_is_reported(monkeypatch, tmp_path):
    folder = tmp_path / "nb201"
    folder.mkdir()
    (folder / "nb201_cifar10.csv").write_text(f"index,arch_str\n0,{EXAMPLE}\n1,|none~0|+oops\n")
    monkeypatch.setenv("GRADSIGN_DATA", str(tmp_path))
    with pytest.raises(GradSignError, match="line 3"):
        Arch.from_index(0)


# --- mutation and sampling ------------------------------------------------------------------------------------


def test_mutate_changes_exactly_one_edge_to_another_op():
    rng = np.random.default_rng(0)
    arch = Arch.parse(EXAMPLE)
    changed_edges, new_ops = set(), set()
    for _ in range(600):
        child = arch.mutate(rng)
        diff = [k for k in range(6) if child.ops[k] != arch.ops[k]]
        assert len(diff) == 1
        changed_edges.add(diff[0])
        new_ops.add((diff[0], child.ops[diff[0]]))
        arch = child
    assert changed_edges == set(range(6))
    assert len(new_ops) == 6 * 5  # every (edge, op) pair is reachable


def test_sample_is_seeded_and_uniform_per_edge():
    first = [nb201.sample(np.random.default_rng(3)) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(4)
    ops = np.array([nb201.sample(rng).ops for _ in range(5000)])
    for edge in range(6):
        counts = [(ops[:, edge] == op).sum() for op in nb201.OPS]
        assert min(counts) > 850 and max(counts) < 1150  # 1000 expected, ~30 sd


# --- connectivity ---------------------------------------------------------------------------------------------


def test_connectivity_examples():
    assert Arch.parse(EXAMPLE).is_connected
    assert Arch.parse(EXAMPLE).dead_edges == ()
    cut = Arch.parse(CUT_OFF)
    assert not cut.is_connected
    assert [e.name for e in cut.dead_edges] == ["2<-1", "3<-2"]
    assert cut.live_edges == ()
    branch = Arch.parse(DEAD_BRANCH)
    assert branch.is_connected
    assert [e.name for e in branch.dead_edges] == ["2<-0", "2<-1"]
    assert [e.name for e in branch.live_edges] == ["1<-0", "3<-1"]
    assert not Arch.parse(ALL_NONE).is_connected and Arch.parse(ALL_NONE).dead_edges == ()


@needs_table
def test_disconnected_archs_match_the_benchmark(table):
    ours = {str(a) for a in nb201.enumerate_archs() if not a.is_connected}
    theirs = set(table.loc[~table["connected"].astype(bool), "arch_str"])
    assert len(ours) == 341
    assert ours == theirs


@needs_table
def test_archs_without_dead_edges_match_the_peer_proxy_tables():
    """The published proxy tables cover exactly the architectures in which no op is cut off by `none` edges
    (the all-`none` cell among them: it is disconnected but cuts off no op)."""
    peer = nb201.data_root() / "nb201" / "peer_proxies_cifar10.csv"
    if not peer.is_file():
        pytest.skip(f"{peer} is absent")
    ours = {str(a) for a in nb201.enumerate_archs() if not a.dead_edges}
    assert ours == set(pd.read_csv(peer)["arch_str"])
    assert len(ours) == 9445


# --- ONNX builder ---------------------------------------------------------------------------------------------


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("text", [EXAMPLE, ALL_NONE, CUT_OFF, ALL_CONV])
def test_model_passes_the_checker_and_declares_its_interface(text):
    model = nb201.build_onnx(text, num_classes=7, input_size=16)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp), inp.type.tensor_type.elem_type) == ("input", ["N", 3, 16, 16], onnx.TensorProto.FLOAT)
    assert (out.name, dims(out)) == ("logits", ["N", 7])
    assert _session(model).run(None, {"input": _images(2)[:, :, :16, :16]})[0].shape == (2, 7)


def test_builder_is_deterministic_per_seed():
    first = nb201.build_onnx(EXAMPLE).SerializeToString()
    assert nb201.build_onnx(Arch.parse(EXAMPLE), seed=42).SerializeToString() == first
    other = nb201.build_onnx(EXAMPLE, seed=43)
    assert other.SerializeToString() != first
    a, b = _initializers(onnx.load_from_string(first)), _initializers(other)
    assert a.keys() == b.keys()
    assert not np.array_equal(a["stem.0.weight"], b["stem.0.weight"])


def test_names_mirror_the_torch_modules_and_weights_follow_torch_init():
    arch = Arch.parse(EXAMPLE)
    model = nb201.build_onnx(arch)
    inits = _initializers(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(n.input[1].endswith(".weight") for n in convs)
    # stem + 15 cells x 1 conv edge + 3 convs in each of the 2 reduction blocks
    assert len(convs) == 1 + 15 * 1 + 2 * 3
    for name in (
        "stem.0.weight",
        "cells.3.edges.1<-0.op.1.weight",
        "cells.5.conv_a.op.1.weight",
        "cells.11.downsample.1.weight",
        "classifier.weight",
        "classifier.bias",
    ):
        assert name in inits
    assert not any(".edges.2<-0." in name or ".edges.3<-2." in name for name in inits)  # none / pooling: no params
    for conv in convs:
        weight = inits[conv.input[1]]
        bound = 1 / np.sqrt(np.prod(weight.shape[1:]))
        assert np.abs(weight).max() <= bound
        if weight.size >= 1000:  # U(-bound, bound) comes close to both ends
            assert weight.max() > 0.95 * bound and weight.min() < -0.95 * bound
    assert np.abs(inits["classifier.bias"]).max() <= 1 / np.sqrt(64)
    frozen = [name for name in inits if "frozen" in name]
    assert frozen and all(name.startswith("cells.") and ".edges." in name for name in frozen)
    assert all(np.all(inits[n] == (1 if n.endswith("frozen_scale") else 0)) for n in frozen)
    batchnorms = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert all(helper.get_attribute_value(a) == 1 for n in batchnorms for a in n.attribute if a.name == "training_mode")
    assert not any(n.op_type == "Constant" for n in model.graph.node)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be an int >= 1"),
        ({"channels": 2.5}, "channels must be an int"),
        ({"cells_per_stage": 0}, "cells_per_stage must be an int >= 1"),
        ({"input_size": 30}, "multiple of 4"),
        ({"seed": -1}, "seed must be an int >= 0"),
    ],
)
def test_builder_refuses_bad_options(kwargs, message):
    with pytest.raises(GradSignError, match=message):
        nb201.build_onnx(EXAMPLE, **kwargs)


def _parameter_count(model: onnx.ModelProto) -> int:
    """Every initializer except BN running statistics: conv/linear weights, the classifier bias, BN scale/bias.

    Cell BNs count their frozen scale/bias here: the benchmark trained its networks with affine cell BNs, so its
    count includes 2*C parameters per cell BN (see test_parameter_count_matches_the_benchmark).
    """
    return sum(t.size for n, t in _initializers(model).items() if not n.endswith(("running_mean", "running_var")))


@needs_table
def test_parameter_count_matches_the_benchmark(table):
    """params_mb (millions, 4 decimals) counts every conv weight (dead edges too), no conv biases, the linear
    weight and bias, and an affine BN after every conv (cell BNs included) and before the classifier.

    About 1.3% of the table's rows (204, all connected) are off by 1/3 or 2/3 of one conv edge's count, as if
    averaged over training seeds of which some recorded another architecture's network; a seeded sample of
    20 archs plus two disconnected ones is checked here.
    """
    rows = table.sample(n=20, random_state=201)
    rows = pd.concat([rows, table[~table["connected"].astype(bool)].sample(n=2, random_state=201)])
    for text, params_mb in zip(rows["arch_str"], rows["params_mb"]):
        count = _parameter_count(nb201.build_onnx(text))
        assert abs(count - params_mb * 1e6) <= 50, (text, count, params_mb)


# --- parity with an independent torch TinyNetwork -------------------------------------------------------------


class ReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool):
        super().__init__()
        bn = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=affine)
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), bn)

    def forward(self, x):
        return self.op(x)


class Pooling(nn.Module):
    def __init__(self):
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


def _edge_module(op: str, channels: int) -> nn.Module:
    return {
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(channels, channels, 1, 1, affine=False),
        "nor_conv_3x3": lambda: ReLUConvBN(channels, channels, 3, 1, affine=False),
        "avg_pool_3x3": lambda: Pooling(),
    }[op]()


class CellTwin(nn.Module):
    def __init__(self, ops: tuple[str, ...], channels: int):
        super().__init__()
        self.edges = nn.ModuleDict({name: _edge_module(op, channels) for name, op in zip(EDGE_NAMES, ops)})

    def forward(self, x):
        nodes = [x]
        for target in range(1, 4):
            nodes.append(sum(self.edges[f"{target}<-{source}"](nodes[source]) for source in range(target)))
        return nodes[-1]


class ResBlockTwin(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine=True)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetworkTwin(nn.Module):
    """NAS-Bench-201's TinyNetwork with the GradSign authors' cells (affine-free cell BNs), written independently."""

    def __init__(self, ops: tuple[str, ...], channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        cells, width = [], channels
        for stage in range(3):
            if stage:
                cells.append(ResBlockTwin(width, 2 * width))
                width *= 2
            cells.extend(CellTwin(ops, width) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.lastact(x).mean(dim=(2, 3))
        return self.classifier(x)


def _twin_with_onnx_weights(model: onnx.ModelProto, ops: tuple[str, ...]) -> TinyNetworkTwin:
    twin = TinyNetworkTwin(ops)
    inits = _initializers(model)
    state = {k: v for k, v in twin.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = set(state) - set(inits)
    assert not missing, f"the ONNX model lacks {sorted(missing)[:5]}"
    # What the twin does not hold: the affine-free cell BNs' frozen scale/bias and their unused running stats.
    extra = set(inits) - set(state)
    frozen_suffixes = ("frozen_scale", "frozen_bias", "running_mean", "running_var")
    assert all(".edges." in n and n.endswith(frozen_suffixes) for n in extra)
    twin.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in state}, strict=False)
    return twin.train()


@pytest.mark.parametrize("text", [EXAMPLE, ALL_CONV, NO_PARAMS, CUT_OFF, DEAD_BRANCH, ZERO_FIRST_NODE, ALL_NONE])
def test_logits_match_the_torch_twin_with_batch_statistics(text):
    arch = Arch.parse(text)
    model = nb201.build_onnx(arch, seed=7)
    twin = _twin_with_onnx_weights(model, arch.ops)
    session = _session(model)
    for batch in (4, 1):  # batch 1: per-sample statistics, as the scoring engine runs it
        x = _images(batch, seed=batch)
        (ours,) = session.run(["logits"], {"input": x})
        with torch.no_grad():
            theirs = twin(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
        assert np.ptp(ours, axis=1).max() > 1e-3 or not arch.is_connected


@pytest.mark.parametrize(("text", "zero_node"), [(ALL_NONE, 3), (CUT_OFF, 1), (ZERO_FIRST_NODE, 1)])
def test_nodes_without_live_inputs_are_zeros(text, zero_node):
    model = nb201.build_onnx(text)
    cell_output = f"cells.0.node{zero_node}"
    model.graph.output.append(helper.make_empty_tensor_value_info(cell_output))
    x = _images(3)
    if zero_node == 3 and not Arch.parse(text).is_connected:
        logits, zeros = _session(model).run(["logits", cell_output], {"input": x})
        # Everything after a zero cell is zero, so the logits are the classifier bias for any input.
        np.testing.assert_array_equal(logits, np.broadcast_to(_initializers(model)["classifier.bias"], logits.shape))
    else:
        (zeros,) = _session(model).run([cell_output], {"input": x})
    assert zeros.shape == (3, 16, 32, 32)
    assert not zeros.any()


@pytest.mark.parametrize("text", [EXAMPLE, ALL_CONV, NO_PARAMS, CUT_OFF, DEAD_BRANCH, ZERO_FIRST_NODE])
def test_gradsign_of_built_networks_matches_the_torch_reference(text):
    """End to end: score(build_onnx(arch)) against the plain-torch per-sample loop on the independent twin."""
    import gradsign_rs
    from torch_reference import gradsign_torch

    arch = Arch.parse(text)
    model = nb201.build_onnx(arch, seed=3)
    x = _images(12, seed=5)
    labels = np.arange(12) % 10
    ours = gradsign_rs.score(model, x, labels).value
    want = gradsign_torch(_twin_with_onnx_weights(model, arch.ops), x, labels)
    if want == 0:
        assert ours == 0
    else:
        assert abs(ours - want) / want <= 1e-3, (ours, want)
