"""NAS-Bench-101 space: cell parsing and validation, pruning, the official hash, parameter counts, the ONNX builder.

The shared table (`nb101/nb101_cifar10_30k.csv`) is the ground truth for hashes and parameter counts; a seeded sample
of its rows is checked here and `scripts/nb101_check.py` checks every row. The builder is checked against an
independent plain-torch network written here (`NetworkTwin`, following the benchmark's model_builder.py), which loads
the ONNX initializers by name; GradSign of both must agree.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from gradsign_rs._core import GradSignError
from gradsign_rs.spaces import nb101
from gradsign_rs.spaces.nb101 import Cell
from onnx import numpy_helper

TABLE = nb101.table_path()
needs_table = pytest.mark.skipif(
    not TABLE.is_file(), reason=f"NAS-Bench-101 table {TABLE} is absent (set GRADSIGN_DATA to the shared data folder)"
)
SAMPLE_ROWS = 300

C1, C3, MP = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
# Table row 0: 7 vertices, a max-pool, no input->output edge.
DEEP = (
    "0100110001000000010010000010000001000000010000000:"
    "input|conv3x3-bn-relu|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|output"
)
DEEP_HASH = "00005c142e6f48ac74fdcf73e3439874"
# Table row 33: three vertices feed the output (uneven split: a 6-channel vertex feeds 5-channel ones, truncated),
# two max-pools, and the input also feeds the output directly.
TRUNCATED = "010101001001000011000010000001000000:input|conv3x3-bn-relu|conv3x3-bn-relu|maxpool3x3|maxpool3x3|output"
TRUNCATED_HASH = "0004d80dd02c84a6541f4dd14f813420"
TWO_VERTICES = "0100:input|output"  # the network is the stem, 1x1 projections and the head
THREE_VERTICES = "011001000:input|conv1x1-bn-relu|output"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return nb101.load_table()


@pytest.fixture(scope="module")
def rows(table) -> pd.DataFrame:
    """A seeded sample of table rows plus the smallest cells (2 and 3 vertices)."""
    return pd.concat([table.sample(n=SAMPLE_ROWS, random_state=101), table[table["num_vertices"] <= 3]])


def _cell(matrix: list[list[int]], ops: list[str]) -> Cell:
    return Cell(tuple(map(tuple, matrix)), tuple(ops))


# --- parsing and validation -----------------------------------------------------------------------------------


def test_parse_and_print_round_trip():
    cell = Cell.parse(DEEP)
    assert cell.num_vertices == 7 and cell.num_edges == 9
    assert cell.ops[1:3] == (C3, MP)
    assert cell.adjacency[0] == (0, 1, 0, 0, 1, 1, 0)
    assert str(cell) == DEEP
    assert Cell.parse(*DEEP.split(":")) == cell
    assert eval(repr(cell), {"Cell": Cell}) == cell
    assert Cell(cell.matrix, list(cell.ops)) == cell  # numpy matrices and lists are stored as tuples
    assert hash(Cell.parse(DEEP)) == hash(cell)


@needs_table
def test_from_row_reads_the_table(table):
    row = table.iloc[0]
    assert Cell.from_row(row) == Cell.parse(DEEP)
    assert row["hash"] == DEEP_HASH
    assert Cell.from_row(table[table["num_vertices"] == 2].iloc[0]) == Cell.parse(TWO_VERTICES)
    with pytest.raises(GradSignError, match="row says 6 vertices"):
        Cell.from_row({"adjacency": row["adjacency"], "ops": row["ops"], "num_vertices": 6})


@pytest.mark.parametrize(
    ("matrix", "ops", "expected"),
    [
        ([[0, 1], [0, 0]], ["input"], ["at least 2 vertices"]),
        ([[0, 1], [0, 0]], "input|output", ["sequence of op names", "str"]),
        ([[0, 1], [0, 0]], ["conv3x3-bn-relu", "output"], ["first op must be 'input'", "'conv3x3-bn-relu'"]),
        ([[0, 1], [0, 0]], ["input", "input"], ["last op must be 'output'"]),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], ["vertex 1", "unknown op 'conv5x5'", C1]),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "output", "output"], ["vertex 1", "unknown op 'output'"]),
        ([[0, 1, 0], [0, 0, 1]], ["input", C1, "output"], ["square", "2 rows of lengths [3, 3]"]),
        ([[0, 1], [0, 0]], ["input", C1, "output"], ["2x2", "3 ops"]),
        ([[0, 2], [0, 0]], ["input", "output"], ["adjacency[0][1] = 2", "not 0 or 1"]),
        ([[0, 0.5], [0, 0]], ["input", "output"], ["adjacency[0][1] = 0.5", "not 0 or 1"]),
        ([[0, 1, 0], [1, 0, 1], [0, 0, 0]], ["input", C1, "output"], ["adjacency[1][0] = 1", "below the diagonal"]),
        ([[0, 1, 0], [0, 1, 1], [0, 0, 0]], ["input", C1, "output"], ["adjacency[1][1] = 1", "self-loop"]),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C1, "output"], ["no path from the input", "vertex 2"]),
        ([[0, 0], [0, 0]], ["input", "output"], ["no path"]),
        (np.triu(np.ones((8, 8), int), 1).tolist(), ["input", *[C3] * 6, "output"], ["8 vertices", "at most 7"]),
        (np.triu(np.ones((6, 6), int), 1).tolist(), ["input", *[C3] * 4, "output"], ["15 edges", "at most 9"]),
        ("0100", ["input", "output"], ["square matrix", "str"]),
    ],
)
def test_invalid_cells_name_the_problem(matrix, ops, expected):
    with pytest.raises(GradSignError) as info:
        Cell(matrix, ops)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0100", ["expected '<adjacency bits>:<op>|<op>|...'"]),
        ("010:input|output", ["2 ops need a 2x2 adjacency of 4 characters, got 3"]),
        ("01x0:input|output", ["character 'x' is not 0 or 1"]),
        ("0100:input|conv7x7|output", ["3 ops need a 3x3"]),
        ("011001000:input|conv7x7|output", ["vertex 1", "unknown op 'conv7x7'"]),
        ("0010:input|output", ["below the diagonal"]),
    ],
)
def test_malformed_strings_name_the_problem(text, expected):
    with pytest.raises(GradSignError) as info:
        Cell.parse(text)
    for part in expected:
        assert part in str(info.value), f"{part!r} not in {info.value}"
    with pytest.raises(GradSignError, match="parsed from strings"):
        Cell.parse(5)  # type: ignore[arg-type]


# --- pruning --------------------------------------------------------------------------------------------------


def test_pruning_drops_vertices_off_every_input_output_path():
    # Vertex 2 is not reachable from the input (no incoming edge); vertex 3 never reaches the output.
    cell = _cell(
        [[0, 1, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        ["input", C3, MP, C1, "output"],
    )
    assert not cell.is_pruned
    pruned = cell.pruned()
    assert pruned == _cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])
    assert pruned.is_pruned and pruned.pruned() is pruned
    assert cell.hash == pruned.hash
    built = [nb101.build_onnx(c, stem_channels=8).SerializeToString() for c in (cell, pruned)]
    assert built[0] == built[1]
    assert nb101.parameter_count(cell) == nb101.parameter_count(pruned)


def test_limits_apply_after_pruning_as_in_the_benchmark():
    # 8 vertices and 10 edges as given; vertex 6 is a dead end (fed by 5, feeds nothing) and goes with its edge.
    matrix = np.zeros((8, 8), int)
    for src, dst in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (5, 6), (0, 7), (1, 7), (2, 7)]:
        matrix[src, dst] = 1
    cell = Cell(matrix, ["input", *[C3] * 6, "output"])
    assert (cell.num_vertices, cell.num_edges, cell.is_pruned) == (8, 10, False)
    assert (cell.pruned().num_vertices, cell.pruned().num_edges) == (7, 9)
    matrix[6, 7] = 1  # now vertex 6 stays: 8 vertices on paths
    with pytest.raises(GradSignError, match="8 vertices; NAS-Bench-101 allows at most 7"):
        Cell(matrix, ["input", *[C3] * 6, "output"])


@needs_table
def test_a_dangling_vertex_changes_neither_hash_nor_network(table):
    row = table[table["num_vertices"] == 5].iloc[0]
    cell = Cell.from_row(row)
    matrix = np.zeros((6, 6), int)
    matrix[:4, :4] = cell.matrix[:4, :4]
    matrix[:4, 5] = cell.matrix[:4, 4]
    matrix[0, 4] = 1  # vertex 4: fed by the input, feeds nothing
    padded = Cell(matrix, [*cell.ops[:4], MP, "output"])
    assert padded.pruned() == cell
    assert padded.hash == row["hash"]


# --- the official hash ----------------------------------------------------------------------------------------


def test_known_hashes():
    assert Cell.parse(DEEP).hash == DEEP_HASH
    assert Cell.parse(TRUNCATED).hash == TRUNCATED_HASH
    # nasbench labels the input -1 and the output -2: the swapped labelling gives another hash.
    cell = Cell.parse(DEEP)
    labels = {**nb101.HASH_LABELS, "input": -2, "output": -1}
    swapped = nb101.hash_module(cell.matrix, [labels[op] for op in cell.ops])
    assert swapped != DEEP_HASH


@needs_table
def test_hash_reproduces_the_table(rows):
    cells = [Cell.from_row(row) for _, row in rows.iterrows()]
    assert all(cell.is_pruned for cell in cells)  # the table stores canonical (pruned) cells
    mismatches = [(c, h) for c, h in zip(cells, rows["hash"]) if c.hash != h]
    assert not mismatches, mismatches[:3]


def test_hash_is_invariant_under_relabelling_the_interior():
    cell = Cell.parse(DEEP)
    matrix, ops = cell.matrix, cell.ops
    seen = 0
    for order in itertools.permutations(range(1, 6)):
        perm = [0, *order, 6]
        permuted = matrix[np.ix_(perm, perm)]
        if np.tril(permuted).any():
            continue  # not a topological order: not a valid upper-triangular cell
        assert Cell(permuted, [ops[i] for i in perm]).hash == DEEP_HASH
        seen += 1
    assert seen > 1
    other = Cell(matrix, [*ops[:1], MP, C3, *ops[3:]])  # swap two ops: another cell
    assert other.hash != DEEP_HASH


# --- channels and parameter counts ----------------------------------------------------------------------------


def test_vertex_channels_follow_the_benchmark():
    assert nb101.compute_vertex_channels(16, 16, Cell.parse(TRUNCATED).matrix) == (16, 6, 5, 5, 5, 16)
    assert nb101.compute_vertex_channels(128, 256, Cell.parse(DEEP).matrix) == (128, 128, 128, 128, 128, 128, 256)
    assert nb101.compute_vertex_channels(64, 32, Cell.parse(TWO_VERTICES).matrix) == (64, 32)
    with pytest.raises(GradSignError, match="cannot split 2 output channels among 3"):
        nb101.compute_vertex_channels(2, 2, Cell.parse(TRUNCATED).matrix)


def test_two_vertex_parameter_count_by_hand():
    """Conv kernels without bias, BN gamma and beta, dense weight and bias (the benchmark's trainable variables)."""
    c = 128
    stem = 3 * 3 * 3 * c + 2 * c
    projection = lambda c_in, c_out: c_in * c_out + 2 * c_out  # noqa: E731
    cells = 3 * projection(c, c) + projection(c, 2 * c) + 2 * projection(2 * c, 2 * c)
    cells += projection(2 * c, 4 * c) + 2 * projection(4 * c, 4 * c)
    assert nb101.parameter_count(TWO_VERTICES) == stem + cells + 4 * c * 10 + 10 == 882570


@needs_table
def test_parameter_count_matches_the_table(rows):
    counts = [nb101.parameter_count(Cell.from_row(row)) for _, row in rows.iterrows()]
    mismatches = [(h, c, t) for h, c, t in zip(rows["hash"], counts, rows["trainable_parameters"]) if c != t]
    assert not mismatches, mismatches[:3]


def _trainable(model: onnx.ModelProto) -> int:
    return sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and not t.name.endswith(("running_mean", "running_var"))
    )


@needs_table
@pytest.mark.parametrize("text", [DEEP, TRUNCATED])
def test_built_full_size_networks_have_the_table_count(table, text):
    row = table[table["hash"] == Cell.parse(text).hash].iloc[0]
    assert _trainable(nb101.build_onnx(text)) == row["trainable_parameters"] == nb101.parameter_count(text)


# --- the table and selections ---------------------------------------------------------------------------------


@needs_table
def test_table_and_selections(table, tmp_path):
    assert len(table) == 30001 and table["adjacency"].map(type).eq(str).all()
    assert table["adjacency"].str.len().eq(table["num_vertices"] ** 2).all()  # "0100" is not read as 100
    picks = nb101.sample(5, seed=3)
    assert picks == nb101.sample(5, seed=3) != nb101.sample(5, seed=4)
    assert [p for p, _ in picks] == sorted(p for p, _ in picks)
    assert all(Cell.from_row(table.iloc[p]) == cell for p, cell in picks)
    assert nb101.resolve("sample:5", sample_seed=3) == picks
    listing = tmp_path / "cells.txt"
    listing.write_text(f"# two cells\n33\n{DEEP_HASH}  # row 0\n")
    assert nb101.resolve(str(listing)) == [(33, Cell.parse(TRUNCATED)), (0, Cell.parse(DEEP))]
    listing.write_text("nothing-like-a-hash\n")
    with pytest.raises(GradSignError, match="cells.txt:1"):
        nb101.resolve(str(listing))
    with pytest.raises(GradSignError, match="1..30001"):
        nb101.sample(0)
    with pytest.raises(GradSignError, match="sample:K with an integer"):
        nb101.resolve("sample:x")


# A cell of the published-proxy sample (nb101_peer_proxies_500.csv) that is not a row of the 30k table.
OFF_TABLE = "011111000001000001000010000001000000:input|maxpool3x3|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|output"
OFF_TABLE_HASH = "4a0ab8bbe2441a002e07b0f445ec2d63"


@needs_table
def test_resolve_takes_cells_from_a_csv_source_keyed_by_row_or_by_hash(table, tmp_path):
    assert OFF_TABLE_HASH not in set(table["hash"]) and Cell.parse(OFF_TABLE).hash == OFF_TABLE_HASH
    source = tmp_path / "peer.csv"
    rows = [(OFF_TABLE_HASH, *OFF_TABLE.split(":")), (TRUNCATED_HASH, *TRUNCATED.split(":"))]
    lines = ["hash,adjacency,ops,val_accuracy", *(f"{h},{a},{o},90.0" for h, a, o in rows + rows[:1])]
    source.write_text("\n".join(lines) + "\n")
    key = nb101.off_table_index(OFF_TABLE_HASH)
    assert key == nb101.OFF_TABLE_BASE + int(OFF_TABLE_HASH[:12], 16) and len(table) < key < 2**53
    # One entry per hash (the duplicate third row is dropped); a table cell keeps its row as key.
    assert nb101.resolve(str(source)) == [(key, Cell.parse(OFF_TABLE)), (33, Cell.parse(TRUNCATED))]
    source.write_text(lines[0] + f"\n{DEEP_HASH},{','.join(TRUNCATED.split(':'))},1\n")
    with pytest.raises(GradSignError, match=f"peer.csv:2: the cell .* hashes to {TRUNCATED_HASH}, the row says"):
        nb101.resolve(str(source))
    source.write_text("hash,adjacency,ops\nx,0110,input|output\n")
    with pytest.raises(GradSignError, match="peer.csv:2: .*adjacency"):
        nb101.resolve(str(source))
    with pytest.raises(GradSignError, match="not an NB101 module hash"):
        nb101.off_table_index("not-hex")


def test_missing_table_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADSIGN_DATA", str(tmp_path))
    assert nb101.table_path() == tmp_path / "nb101" / "nb101_cifar10_30k.csv"
    with pytest.raises(FileNotFoundError, match="GRADSIGN_DATA"):
        nb101.load_table()


# --- ONNX builder ---------------------------------------------------------------------------------------------


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    # onnxruntime's ConstantSharing merges equal small initializers (the 8-channel BN scales/statistics of these
    # 16-channel networks), after which training-mode BatchNormalization gives wrong outputs (0.07 off in the
    # logits); the scoring engine feeds BN parameters as inputs, so its gradients are not affected.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_model_passes_the_checker_and_declares_its_interface():
    model = nb101.build_onnx(TRUNCATED, num_classes=7, stem_channels=16, image_size=16)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8 and [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp), out.name, dims(out)) == ("input", ["N", 3, 16, 16], "logits", ["N", 7])
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    assert _session(model).run(None, {"input": x})[0].shape == (2, 7)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Slice") > 0 and ops.count("Concat") == 9 and not any(op == "Constant" for op in ops)
    assert {p.key: p.value for p in model.metadata_props}["nb101.hash"] == TRUNCATED_HASH


def test_builder_is_deterministic_and_follows_torch_init():
    first = nb101.build_onnx(DEEP, stem_channels=16).SerializeToString()
    assert nb101.build_onnx(Cell.parse(DEEP), stem_channels=16, seed=0).SerializeToString() == first
    other = _initializers(nb101.build_onnx(DEEP, stem_channels=16, seed=1))
    inits = _initializers(onnx.load_from_string(first))
    assert inits.keys() == other.keys() and not np.array_equal(inits["stem.0.weight"], other["stem.0.weight"])
    for name in ("stem.0.weight", "cells.0.projections.1.0.weight", "cells.8.ops.3.0.weight", "classifier.weight"):
        weight = inits[name]
        bound = 1 / np.sqrt(np.prod(weight.shape[1:]))
        assert np.abs(weight).max() <= bound and weight.max() > 0.9 * bound
    assert all(np.all(v == 1) for k, v in inits.items() if k.endswith(".1.weight") and v.ndim == 1)  # BN gamma
    assert "cells.0.ops.2.0.weight" not in inits  # vertex 2 is a max-pool: no parameters


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be an int >= 1"),
        ({"stem_channels": 2.5}, "stem_channels must be an int"),
        ({"num_stacks": 0}, "num_stacks must be an int >= 1"),
        ({"num_cells_per_stack": True}, "num_cells_per_stack must be an int"),
        ({"image_size": 30}, "multiple of 4 for 3 stacks"),
        ({"seed": -1}, "seed must be an int >= 0"),
    ],
)
def test_builder_refuses_bad_options(kwargs, message):
    with pytest.raises(GradSignError, match=message):
        nb101.build_onnx(DEEP, **kwargs)
    with pytest.raises(GradSignError, match="expected an NB101 Cell"):
        nb101.build_onnx(42)  # type: ignore[arg-type]


# --- parity with an independent torch network -----------------------------------------------------------------


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        super().__init__(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class CellTwin(nn.Module):
    """model_builder.build_module, transcribed; channel counts from the package (checked by the parameter counts)."""

    def __init__(self, cell: Cell, c_in: int, c_out: int):
        super().__init__()
        self.m, self.cell_ops = cell.adjacency, cell.ops
        self.ch = nb101.compute_vertex_channels(c_in, c_out, cell.matrix)
        last = len(cell.ops) - 1
        self.projections = nn.ModuleDict(
            {str(t): ConvBnRelu(c_in, self.ch[t], 1) for t in range(1, last + 1) if self.m[0][t]}
        )
        kernels = {C1: 1, C3: 3}
        self.ops = nn.ModuleDict(
            {str(t): ConvBnRelu(self.ch[t], self.ch[t], kernels[op]) for t, op in enumerate(cell.ops) if op in kernels}
        )

    def forward(self, x):
        m, last = self.m, len(self.cell_ops) - 1
        tensors, concat = [x], []
        for t in range(1, last):
            add_in = [tensors[src][:, : self.ch[t]] for src in range(1, t) if m[src][t]]  # truncate
            if m[0][t]:
                add_in.append(self.projections[str(t)](x))
            v = sum(add_in[1:], add_in[0])
            v = F.max_pool2d(v, 3, 1, 1) if self.cell_ops[t] == MP else self.ops[str(t)](v)
            tensors.append(v)
            if m[t][last]:
                concat.append(v)
        if not concat:
            return self.projections[str(last)](x)
        out = torch.cat(concat, 1)
        return out + self.projections[str(last)](x) if m[0][last] else out


class NetworkTwin(nn.Module):
    """model_builder.build_model_fn's network: stem, stacks of cells with max-pool downsampling, GAP, dense."""

    def __init__(self, cell: Cell, stem_channels: int, num_classes: int = 10):
        super().__init__()
        self.stem = ConvBnRelu(3, stem_channels, 3)
        cells, c_in, channels = [], stem_channels, stem_channels
        for stack in range(3):
            channels *= 2 if stack else 1
            for _ in range(3):
                cells.append(CellTwin(cell, c_in, channels))
                c_in = channels
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for k, cell in enumerate(self.cells):
            x = F.max_pool2d(x, 2, 2) if k in (3, 6) else x
            x = cell(x)
        return self.classifier(x.mean(dim=(2, 3)))


def _twin_with_onnx_weights(model: onnx.ModelProto, cell: Cell, stem_channels: int) -> NetworkTwin:
    twin = NetworkTwin(cell.pruned(), stem_channels)
    inits = {k: v for k, v in _initializers(model).items() if v.dtype == np.float32}  # not the Slice bounds
    state = {k for k in twin.state_dict() if not k.endswith("num_batches_tracked")}
    assert state == set(inits), (sorted(state ^ set(inits)))[:5]
    twin.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in state}, strict=False)
    return twin.train()


@pytest.fixture(scope="module")
def cifar8(cifar_batch):
    x, y = cifar_batch
    return x[:8], y[:8]


@pytest.mark.parametrize("text", [TRUNCATED, DEEP, TWO_VERTICES, THREE_VERTICES])
def test_logits_and_gradsign_match_the_torch_twin(text, cifar8):
    """Forward pass with batch statistics, then GradSign end to end: gradsign_rs.score against the per-sample torch
    loop on the twin, on 8 real CIFAR-10 images with 16 stem channels."""
    import gradsign_rs
    from torch_reference import gradsign_torch

    cell = Cell.parse(text)
    model = nb101.build_onnx(cell, seed=5, stem_channels=16)
    twin = _twin_with_onnx_weights(model, cell, 16)
    x, y = cifar8
    (ours,) = _session(model).run(["logits"], {"input": x[:1]})  # batch 1: the engine's per-sample statistics
    with torch.no_grad():
        np.testing.assert_allclose(ours, twin(torch.from_numpy(x[:1])).numpy(), rtol=1e-4, atol=1e-4)
    got = gradsign_rs.score(model, x, y, num_threads=1).value
    want = gradsign_torch(twin, x, y)
    assert want > 0 and abs(got - want) / want <= 1e-3, (got, want)


def test_batch_scores_nb101_rows_keyed_by_row_and_resumes(tmp_path):
    """`gradsign batch --space nb101`: rows of the shared table, resumable like NB201 (two cells, two samples)."""
    from conftest import CIFAR10_TRAIN
    from gradsign_rs.batch import BatchConfig, resolve_archs, run_batch
    from gradsign_rs.spaces import nb101

    if not (CIFAR10_TRAIN.is_file() and nb101.table_path().is_file()):
        pytest.skip("needs the shared NAS-Bench-101 table and CIFAR-10 images")
    jobs = resolve_archs("sample:2", sample_seed=1, space="nb101")
    assert all(nb101.Cell.parse(job.arch).hash == nb101.load_table()["hash"].iloc[job.index] for job in jobs)
    config = BatchConfig(space="nb101", data=str(CIFAR10_TRAIN), normalize="cifar10", num_classes=10, n=2, seed=0)
    out = tmp_path / "nb101.csv"
    first = run_batch(config, jobs, out, progress=False, isolate=False)
    again = run_batch(config, jobs, out, progress=False, isolate=False)
    assert (first.scored, again.scored, again.skipped) == (2, 0, 2)
    assert "nb101" in (tmp_path / "nb101.csv.meta.json").read_text()
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.columns)[:3] == ["index", "hash", "arch"]
    truth = nb101.load_table()
    assert (truth["hash"].iloc[table["index"]].to_numpy() == table["hash"].to_numpy()).all()
