"""The NAS-Bench-101 search space: cells (adjacency + ops), validation, pruning, the official module hash, the table.

A cell is a DAG of at most 7 vertices and 9 edges given by an upper-triangular 0/1 adjacency matrix
(`adjacency[i][j] = 1`: an edge from vertex i to vertex j > i) and one op per vertex: vertex 0 is "input", the last
vertex "output", the others conv3x3-bn-relu, conv1x1-bn-relu or maxpool3x3 (Ying et al., ICML 2019;
google-research/nasbench). As the benchmark's `ModelSpec`, a cell is pruned to the vertices on some input->output
path before it is hashed, checked against the limits, or built; the benchmark's `hash_module` identifies a cell up
to isomorphism and is the key of its tables.

The network builder is `build_onnx` and the benchmark's parameter count `parameter_count` (from `nb101_onnx`).
The shared table `nb101/nb101_cifar10_30k.csv` (under `data_root()`) holds 30,001 cells with their hash, accuracies
and parameter counts: `load_table`, `Cell.from_row`, and the selections `all_cells`, `sample`, `resolve`. A cell is
keyed by its row of that table; a cell from another source (`resolve` of a CSV with hash, adjacency and ops columns,
such as the published-proxy sample) that the table lacks is keyed by `off_table_index` of its hash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.data import data_root  # re-exported: the space reads its table from the shared data
from gradsign_rs.spaces.nb101_onnx import build_onnx, compute_vertex_channels, parameter_count

__all__ = [
    "HASH_LABELS",
    "INTERIOR_OPS",
    "MAX_EDGES",
    "MAX_VERTICES",
    "OPS",
    "TABLE_COLUMNS",
    "Cell",
    "all_cells",
    "build_onnx",
    "compute_vertex_channels",
    "data_root",
    "hash_module",
    "load_table",
    "off_table_index",
    "parameter_count",
    "resolve",
    "sample",
    "table_path",
]

INTERIOR_OPS: tuple[str, ...] = ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3")
OPS: tuple[str, ...] = ("input", *INTERIOR_OPS, "output")
MAX_VERTICES = 7
MAX_EDGES = 9
# The benchmark's hash labels: nasbench's `[-1] + [available_ops.index(op) ...] + [-2]` with available_ops =
# [conv3x3, conv1x1, maxpool] (input -1, output -2; swapping those two changes every hash).
HASH_LABELS: dict[str, int] = {"input": -1, "output": -2, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2}
_TABLE = Path("nb101") / "nb101_cifar10_30k.csv"
# Keys of cells the shared table lacks start here, far above its rows (see `off_table_index`).
OFF_TABLE_BASE = 10**15
TABLE_COLUMNS = ("hash", "num_vertices", "adjacency", "ops")
# Columns kept as text: a row-major adjacency such as "0100" would otherwise be read as the integer 100.
_TEXT_COLUMNS = {"hash": str, "adjacency": str, "ops": str}


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    """A NAS-Bench-101 cell: `adjacency` (V x V tuple of 0/1 tuples, upper triangular) and `ops` (V op names).

    Construction validates the cell as the benchmark does (a clear GradSignError otherwise): square strictly
    upper-triangular 0/1 matrix matching the ops, "input" first and "output" last, interior ops from
    `INTERIOR_OPS`, a path from input to output, and, on the pruned cell (as the benchmark's API checks it), at most
    `MAX_VERTICES` vertices and `MAX_EDGES` edges. The cell is stored as given; `pruned()` drops extraneous vertices.
    """

    adjacency: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", _checked_ops(self.ops))
        object.__setattr__(self, "adjacency", _checked_matrix(self.adjacency, len(self.ops)))
        kept = _on_paths(self.adjacency)
        if kept is None:
            raise GradSignError(
                f"NB101 cell {self}: no path from the input (vertex 0) to the output (vertex {len(self.ops) - 1})"
            )
        vertices = len(kept)
        edges = sum(self.adjacency[i][j] for i in kept for j in kept)
        pruned_note = "" if vertices == len(self.ops) else " after pruning"
        if vertices > MAX_VERTICES:
            raise GradSignError(
                f"NB101 cell {self}: {vertices} vertices{pruned_note}; NAS-Bench-101 allows at most {MAX_VERTICES}"
            )
        if edges > MAX_EDGES:
            raise GradSignError(
                f"NB101 cell {self}: {edges} edges{pruned_note}; NAS-Bench-101 allows at most {MAX_EDGES}"
            )

    @classmethod
    def parse(cls, adjacency: str, ops: str | None = None) -> Cell:
        """A cell from the shared table's text: `adjacency` the row-major 0/1 string of V*V entries and `ops` the
        `|`-joined ops; or one string `"<adjacency>:<ops>"` as `str(cell)` writes it."""
        if not isinstance(adjacency, str) or not (ops is None or isinstance(ops, str)):
            raise GradSignError(f"an NB101 cell is parsed from strings, got {type(adjacency).__name__}")
        if ops is None:
            adjacency, colon, ops = adjacency.partition(":")
            if not colon:
                raise GradSignError(f"bad NB101 cell {adjacency!r}: expected '<adjacency bits>:<op>|<op>|...'")
        op_list = ops.split("|")
        size = len(op_list)
        if len(adjacency) != size * size:
            raise GradSignError(
                f"bad NB101 cell {adjacency!r}:{ops!r}: {size} ops need a {size}x{size} adjacency of {size * size} "
                f"characters, got {len(adjacency)}"
            )
        bad = next((c for c in adjacency if c not in "01"), None)
        if bad is not None:
            raise GradSignError(f"bad NB101 cell {adjacency!r}:{ops!r}: adjacency character {bad!r} is not 0 or 1")
        bits = [int(c) for c in adjacency]
        return cls(tuple(tuple(bits[i * size : (i + 1) * size]) for i in range(size)), tuple(op_list))

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Cell:
        """The cell of one table row (columns `adjacency`, `ops`, and `num_vertices` when present)."""
        cell = cls.parse(str(row["adjacency"]), str(row["ops"]))
        if "num_vertices" in row and int(row["num_vertices"]) != cell.num_vertices:  # type: ignore[call-overload]
            raise GradSignError(
                f"NB101 row says {row['num_vertices']} vertices, its cell {cell} has {cell.num_vertices}"
            )
        return cell

    @property
    def num_vertices(self) -> int:
        """Vertices as given (input and output included)."""
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        """Edges as given."""
        return sum(map(sum, self.adjacency))

    @property
    def matrix(self) -> np.ndarray:
        """The adjacency as an int64 (V, V) array."""
        return np.array(self.adjacency, dtype=np.int64)

    @property
    def is_pruned(self) -> bool:
        """True when every vertex lies on an input->output path."""
        return len(_on_paths(self.adjacency) or ()) == self.num_vertices

    def pruned(self) -> Cell:
        """The cell without the vertices not reachable from the input or not reaching the output (ModelSpec._prune)."""
        kept = _on_paths(self.adjacency) or []
        if len(kept) == self.num_vertices:
            return self
        return Cell(tuple(tuple(self.adjacency[i][j] for j in kept) for i in kept), tuple(self.ops[i] for i in kept))

    @property
    def hash(self) -> str:
        """The official NAS-Bench-101 module hash (32 hex digits) of the pruned cell: isomorphic cells share it."""
        return _cell_hash(self.pruned())

    def __str__(self) -> str:
        bits = "".join(str(v) for row in self.adjacency for v in row)
        return f"{bits}:{'|'.join(self.ops)}"

    def __repr__(self) -> str:
        return f"Cell.parse({str(self)!r})"


def _checked_ops(ops: object) -> tuple[str, ...]:
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise GradSignError(f"NB101 cell ops must be a sequence of op names, got {type(ops).__name__}")
    ops = tuple(ops)
    if len(ops) < 2:
        raise GradSignError(f"an NB101 cell needs at least 2 vertices (input and output), got ops {ops!r}")
    if ops[0] != "input":
        raise GradSignError(f"NB101 cell ops {ops!r}: the first op must be 'input', got {ops[0]!r}")
    if ops[-1] != "output":
        raise GradSignError(f"NB101 cell ops {ops!r}: the last op must be 'output', got {ops[-1]!r}")
    for vertex, op in enumerate(ops[1:-1], start=1):
        if op not in INTERIOR_OPS:
            raise GradSignError(
                f"NB101 cell ops {ops!r}: vertex {vertex} has unknown op {op!r}; interior vertices take one of "
                f"{', '.join(INTERIOR_OPS)}"
            )
    return ops


def _checked_matrix(adjacency: object, size: int) -> tuple[tuple[int, ...], ...]:
    if isinstance(adjacency, np.ndarray):
        adjacency = adjacency.tolist()  # numpy scalars to Python ints, so the 0/1 check and messages are plain
    if isinstance(adjacency, (str, bytes)) or not isinstance(adjacency, Sequence):
        raise GradSignError(f"NB101 adjacency must be a square matrix (rows of 0/1), got {type(adjacency).__name__}")
    rows = list(adjacency)
    if not all(isinstance(r, Sequence) and not isinstance(r, (str, bytes)) for r in rows):
        raise GradSignError(f"NB101 adjacency must be a square matrix (rows of 0/1), got {adjacency!r}")
    lengths = [len(r) for r in rows]
    if any(n != len(rows) for n in lengths):
        raise GradSignError(f"NB101 adjacency must be square: {len(rows)} rows of lengths {lengths}")
    if len(rows) != size:
        raise GradSignError(f"NB101 adjacency is {len(rows)}x{len(rows)} but the cell has {size} ops (one per vertex)")
    out = []
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if isinstance(value, (str, bytes)) or value not in (0, 1):
                raise GradSignError(f"NB101 adjacency[{i}][{j}] = {value!r} is not 0 or 1")
            if value and j <= i:
                where = "on the diagonal (a self-loop)" if i == j else "below the diagonal"
                raise GradSignError(
                    f"NB101 adjacency[{i}][{j}] = 1 is {where}; the matrix must be strictly upper triangular "
                    "(edges go from a vertex to a later one)"
                )
        out.append(tuple(int(v) for v in row))
    return tuple(out)


def _on_paths(adjacency: tuple[tuple[int, ...], ...]) -> list[int] | None:
    """Sorted vertices both reachable from vertex 0 and reaching the last vertex; None when the output is cut off."""
    size = len(adjacency)
    # Upper triangular: one sweep in vertex order settles every forward reach, one in reverse every backward one.
    forward = {0}
    for i in range(size):
        if i in forward:
            forward.update(j for j in range(i + 1, size) if adjacency[i][j])
    backward = {size - 1}
    for j in range(size - 1, -1, -1):
        if j in backward:
            backward.update(i for i in range(j) if adjacency[i][j])
    if size - 1 not in forward:
        return None
    return sorted(forward & backward)


def hash_module(matrix: np.ndarray | Sequence[Sequence[int]], labeling: Sequence[int]) -> str:
    """nasbench `graph_util.hash_module`: MD5 of V rounds of neighbourhood hashing, from (out-degree, in-degree,
    label) per vertex, then of the sorted vertex hashes. Invariant under vertex relabelling."""
    matrix = np.asarray(matrix)
    vertices = matrix.shape[0]
    in_edges = np.sum(matrix, axis=0).tolist()
    out_edges = np.sum(matrix, axis=1).tolist()
    hashes = [hashlib.md5(str(h).encode("utf-8")).hexdigest() for h in zip(out_edges, in_edges, labeling)]
    for _ in range(vertices):
        new_hashes = []
        for v in range(vertices):
            in_neighbors = [hashes[w] for w in range(vertices) if matrix[w, v]]
            out_neighbors = [hashes[w] for w in range(vertices) if matrix[v, w]]
            text = "".join(sorted(in_neighbors)) + "|" + "".join(sorted(out_neighbors)) + "|" + hashes[v]
            new_hashes.append(hashlib.md5(text.encode("utf-8")).hexdigest())
        hashes = new_hashes
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=65536)
def _cell_hash(cell: Cell) -> str:
    return hash_module(cell.matrix, [HASH_LABELS[op] for op in cell.ops])


# --- the shared table -----------------------------------------------------------------------------------------


def table_path() -> Path:
    """The CSV of 30,001 NAS-Bench-101 cells with their hash, accuracies and parameter counts."""
    return data_root() / _TABLE


def load_table(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The NB101 table (default `table_path()`) as read, rows in file order (the row number is the position);
    `hash`, `adjacency` and `ops` stay text. Checks the columns of `TABLE_COLUMNS` and unique hashes."""
    path = table_path() if path is None else Path(path)
    return _load_table(path.resolve()).copy()


@functools.cache
def _load_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(
            f"NAS-Bench-101 table {str(path)!r} not found; set GRADSIGN_DATA to the folder that holds "
            f"{_TABLE.as_posix()}"
        )
    try:
        frame = pd.read_csv(path, dtype=_TEXT_COLUMNS)
    except Exception as exc:
        raise GradSignError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise GradSignError(f"{path}: missing column(s) {missing}; columns are {list(frame.columns)}")
    duplicated = frame["hash"].duplicated()
    if duplicated.any():
        raise GradSignError(f"{path}: hash {frame['hash'][duplicated].iloc[0]} appears twice")
    return frame


def _cells(frame: pd.DataFrame, rows: Sequence[int], path: object) -> list[tuple[int, Cell]]:
    out = []
    for position in rows:
        row = frame.iloc[int(position)]
        try:
            out.append((int(position), Cell.from_row(row)))
        except GradSignError as exc:
            raise GradSignError(f"{path} row {int(position)} (hash {row['hash']}): {exc}") from None
    return out


def all_cells(path: str | os.PathLike[str] | None = None) -> list[tuple[int, Cell]]:
    """(row number, cell) for every row of the table, in file order."""
    frame = load_table(path)
    return _cells(frame, range(len(frame)), path or table_path())


def sample(k: int, seed: int = 0, path: str | os.PathLike[str] | None = None) -> list[tuple[int, Cell]]:
    """k distinct rows drawn uniformly with `np.random.default_rng(seed)`, as (row number, cell) sorted by row
    (the rule of `gradsign batch --archs sample:K` for NB201)."""
    frame = load_table(path)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(frame):
        raise GradSignError(f"NB101 sample size must be an int in 1..{len(frame)}, got {k!r}")
    picks = np.sort(np.random.default_rng(seed).choice(len(frame), size=int(k), replace=False))
    return _cells(frame, picks.tolist(), path or table_path())


def off_table_index(cell_hash: str) -> int:
    """The key of a cell that is not a row of the shared table: `OFF_TABLE_BASE` plus the first 48 bits of its
    module hash, so the same cell gets the same key in every run and no key is a row number (below 2**53, exact
    even where a reader turns it into a float)."""
    try:
        return OFF_TABLE_BASE + int(cell_hash[:12], 16)
    except ValueError:
        raise GradSignError(f"{cell_hash!r} is not an NB101 module hash (32 hex digits)") from None


def _source_cells(listing: Path, frame: pd.DataFrame) -> list[tuple[int, Cell]]:
    """The cells of a CSV with hash, adjacency and ops columns, one per module hash (its first row), each checked
    against its hash and keyed by its row of the shared table `frame`, or by `off_table_index` when it has none."""
    try:
        source = pd.read_csv(listing, dtype=_TEXT_COLUMNS)
    except Exception as exc:
        raise GradSignError(f"{listing}: not a readable CSV ({exc})") from exc
    missing = [c for c in ("hash", "adjacency", "ops") if c not in source.columns]
    if missing:
        raise GradSignError(f"{listing}: a CSV of cells needs the column(s) {missing}; it has {list(source.columns)}")
    by_hash = {h: i for i, h in enumerate(frame["hash"])}
    out: dict[str, tuple[int, Cell]] = {}
    for position, row in source.iterrows():
        line = int(position) + 2  # type: ignore[call-overload]  # the header is line 1
        try:
            cell = Cell.from_row(row)
        except GradSignError as exc:
            raise GradSignError(f"{listing}:{line}: {exc}") from None
        if cell.hash != row["hash"]:
            raise GradSignError(f"{listing}:{line}: the cell {cell} hashes to {cell.hash}, the row says {row['hash']}")
        if cell.hash not in out:
            row_number = by_hash.get(cell.hash)
            out[cell.hash] = (off_table_index(cell.hash) if row_number is None else row_number, cell)
    return list(out.values())


def resolve(spec: str, *, sample_seed: int = 0, path: str | os.PathLike[str] | None = None) -> list[tuple[int, Cell]]:
    """`all`, `sample:K`, a file with one row number or module hash per line (`#` comments), or a CSV with hash,
    adjacency and ops columns (e.g. `nb101_peer_proxies_500.csv`: its cells, one per hash, in file order, those the
    table lacks included and keyed by `off_table_index`): the cells to score, as (key, cell)."""
    if spec == "all":
        return all_cells(path)
    if spec.startswith("sample:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise GradSignError(f"--archs {spec!r}: expected sample:K with an integer K") from None
        return sample(k, sample_seed, path)
    listing = Path(spec)
    if not listing.is_file():
        raise GradSignError(f"--archs {spec!r}: not 'all', 'sample:K' or an existing file of row numbers or hashes")
    frame = load_table(path)
    content = listing.read_text()
    if {"hash", "adjacency", "ops"} <= {c.strip() for c in content.partition("\n")[0].split(",")}:
        return _source_cells(listing, frame)
    by_hash = {h: i for i, h in enumerate(frame["hash"])}
    rows = []
    for number, line in enumerate(content.splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        position = int(text) if text.isdigit() else by_hash.get(text)
        if position is None or not 0 <= position < len(frame):
            raise GradSignError(
                f"{listing}:{number}: {text!r} is neither a row number below {len(frame)} nor a hash of the table"
            )
        rows.append(position)
    return _cells(frame, rows, path or table_path())
