"""The NAS-Bench-201 search space: cell architectures, their official strings and indices, mutation, connectivity.

A cell has 4 nodes; node 0 is the cell input, node 3 its output, and node j is the sum over i < j of
op_{j<-i}(node_i). An architecture is the op on each of the 6 edges, in the official order
(1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2), which is also the order of the official string
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`. 5 ops on 6 edges give 5**6 = 15625 architectures.

The official index is not an enumeration formula (no mixed-radix order over any op order and edge order
reproduces it: the benchmark lists architectures in a shuffled order), so `Arch.index` / `Arch.from_index` read
the table `nb201/nb201_cifar10.csv` under `data_root()`.
The network builder is `build_onnx` (from `nb201_onnx`).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.data import data_root  # re-exported: the space reads its index table from the shared data
from gradsign_rs.spaces.nb201_onnx import build_onnx

__all__ = [
    "EDGES",
    "NUM_ARCHS",
    "OPS",
    "Arch",
    "Edge",
    "build_onnx",
    "data_root",
    "dead_operation_mask",
    "enumerate_archs",
    "index_table_path",
    "sample",
]

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target, source) of each edge, in the official string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
NUM_ARCHS = len(OPS) ** len(EDGES)

_INDEX_TABLE = Path("nb201") / "nb201_cifar10.csv"


class Edge(NamedTuple):
    """One edge of a cell: node `target` receives op(node `source`)."""

    target: int
    source: int
    op: str

    @property
    def name(self) -> str:
        """The edge as the benchmark writes it, e.g. '2<-0'."""
        return f"{self.target}<-{self.source}"


@dataclasses.dataclass(frozen=True, slots=True)
class Arch:
    """A NAS-Bench-201 cell: the op on each edge, in the order of `EDGES`."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(EDGES):
            raise GradSignError(f"an NB201 arch has {len(EDGES)} edge ops, got {len(self.ops)}: {self.ops!r}")
        for (target, source), op in zip(EDGES, self.ops):
            if op not in OPS:
                raise GradSignError(f"edge {target}<-{source}: unknown op {op!r}; expected one of {', '.join(OPS)}")

    @classmethod
    def parse(cls, text: str) -> Arch:
        """Parse an official string such as `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|`."""
        return cls(tuple(_parse_ops(text)))

    @classmethod
    def from_index(cls, index: int) -> Arch:
        """The architecture with this official NAS-Bench-201 index (0..15624); reads the index table."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise GradSignError(f"an NB201 index is an int, got {type(index).__name__}")
        if not 0 <= index < NUM_ARCHS:
            raise GradSignError(f"NB201 index {index} is out of range 0..{NUM_ARCHS - 1}")
        return _index_table(index_table_path()).archs[int(index)]

    @property
    def index(self) -> int:
        """The official NAS-Bench-201 index of this architecture; reads the index table."""
        return _index_table(index_table_path()).index_of[self]

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Every edge with its op, in the order of `EDGES`."""
        return tuple(Edge(target, source, op) for (target, source), op in zip(EDGES, self.ops))

    @property
    def is_connected(self) -> bool:
        """True when the cell output is reachable from the cell input along non-`none` edges."""
        return NUM_NODES - 1 in self._fed_by_input()

    @property
    def live_edges(self) -> tuple[Edge, ...]:
        """Non-`none` edges on some input-to-output path: the ops that can change the cell output."""
        fed, feeding = self._fed_by_input(), self._feeding_output()
        return tuple(e for e in self.edges if e.op != "none" and e.source in fed and e.target in feeding)

    @property
    def dead_edges(self) -> tuple[Edge, ...]:
        """Non-`none` edges cut off by `none` edges: their input is always zero or their output never reaches node 3."""
        live = set(self.live_edges)
        return tuple(e for e in self.edges if e.op != "none" and e not in live)

    def mutate(self, rng: np.random.Generator) -> Arch:
        """A new architecture with exactly one edge's op replaced by a different op, both chosen uniformly."""
        position = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != self.ops[position]]
        ops = list(self.ops)
        ops[position] = others[int(rng.integers(len(others)))]
        return Arch(tuple(ops))

    def __str__(self) -> str:
        nodes = []
        for target in range(1, NUM_NODES):
            inputs = [f"{e.op}~{e.source}" for e in self.edges if e.target == target]
            nodes.append("|" + "|".join(inputs) + "|")
        return "+".join(nodes)

    def __repr__(self) -> str:
        return f"Arch.parse({str(self)!r})"

    def _fed_by_input(self) -> set[int]:
        # EDGES is sorted by target, so every source is settled before its edge is visited.
        reached = {0}
        for e in self.edges:
            if e.op != "none" and e.source in reached:
                reached.add(e.target)
        return reached

    def _feeding_output(self) -> set[int]:
        reaching = {NUM_NODES - 1}
        for e in reversed(self.edges):
            if e.op != "none" and e.target in reaching:
                reaching.add(e.source)
        return reaching


def _parse_ops(text: object) -> list[str]:
    """The 6 edge ops of an official string, or a GradSignError naming the node, edge and token at fault."""
    if not isinstance(text, str):
        raise GradSignError(f"an NB201 arch string must be a str, got {type(text).__name__}")

    def fail(problem: str) -> GradSignError:
        return GradSignError(f"bad NB201 arch string {text!r}: {problem}")

    node_texts = text.split("+")
    if len(node_texts) != NUM_NODES - 1:
        raise fail(f"expected {NUM_NODES - 1} nodes separated by '+', got {len(node_texts)}")
    ops = []
    for target, node_text in enumerate(node_texts, start=1):
        if len(node_text) < 2 or not (node_text.startswith("|") and node_text.endswith("|")):
            raise fail(f"node {target} {node_text!r} must start and end with a pipe '|'")
        tokens = node_text[1:-1].split("|")
        if len(tokens) != target:
            raise fail(
                f"node {target} {node_text!r} has {len(tokens)} edge(s); it takes exactly {target}, "
                f"one from each of nodes 0..{target - 1}"
            )
        for source, token in enumerate(tokens):
            edge = f"edge {target}<-{source} (node {target})"
            op, tilde, index = token.partition("~")
            if not tilde:
                raise fail(f"{edge} {token!r} is not of the form 'op~{source}'")
            if op not in OPS:
                raise fail(f"{edge}: unknown op {op!r}; expected one of {', '.join(OPS)}")
            if index != str(source):
                raise fail(f"{edge}: input index '~{index}', expected '~{source}' (inputs are listed in order)")
            ops.append(op)
    return ops


def sample(rng: np.random.Generator) -> Arch:
    """A uniformly random architecture (each edge's op uniform and independent)."""
    return Arch(tuple(OPS[int(i)] for i in rng.integers(len(OPS), size=len(EDGES))))


def enumerate_archs() -> Iterator[Arch]:
    """All 15625 architectures: first edge varying slowest, ops in `OPS` order (not the official index order)."""
    return (Arch(ops) for ops in itertools.product(OPS, repeat=len(EDGES)))


def dead_operation_mask(archs: Iterable[str]) -> np.ndarray | None:
    """True for each cell with an op cut off by `none` edges (the 6180 "dead operation" cells); None when some
    string is not a NAS-Bench-201 cell (e.g. a table of other networks)."""
    try:
        return np.array([bool(Arch.parse(a).dead_edges) for a in archs], dtype=bool)
    except GradSignError:
        return None


def index_table_path() -> Path:
    """The CSV (columns `index`, `arch_str`) that maps official indices to architectures."""
    return data_root() / _INDEX_TABLE


@dataclasses.dataclass(frozen=True)
class _IndexTable:
    archs: tuple[Arch, ...]
    index_of: dict[Arch, int]


@functools.cache
def _index_table(path: Path) -> _IndexTable:
    """Read and check the official index table once per path."""
    if not path.is_file():
        raise FileNotFoundError(
            f"NAS-Bench-201 index table {str(path)!r} not found; set GRADSIGN_DATA to the folder "
            f"that holds {_INDEX_TABLE.as_posix()}"
        )
    by_index: dict[int, Arch] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"index", "arch_str"} - set(reader.fieldnames or ())
        if missing:
            raise GradSignError(f"{str(path)!r}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                index = int(row["index"])
                arch = Arch.parse(row["arch_str"])
            except (ValueError, TypeError) as exc:
                raise GradSignError(f"{str(path)!r} line {line}: {exc}") from exc
            if index in by_index:
                raise GradSignError(f"{str(path)!r} line {line}: index {index} appears twice")
            by_index[index] = arch
    if sorted(by_index) != list(range(NUM_ARCHS)):
        raise GradSignError(f"{str(path)!r}: expected indices 0..{NUM_ARCHS - 1} once each, got {len(by_index)} rows")
    archs = tuple(by_index[i] for i in range(NUM_ARCHS))
    index_of = {arch: i for i, arch in enumerate(archs)}
    if len(index_of) != NUM_ARCHS:
        raise GradSignError(f"{str(path)!r}: some architecture appears under two indices")
    return _IndexTable(archs, index_of)
