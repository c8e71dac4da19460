"""The committed NAS-Bench-101 tables reproduce exactly: they are scored over several sessions, and every row must be
the number today's code gives (GradSign bit for bit; the proxies as written, to 10 significant digits)."""

from __future__ import annotations

from pathlib import Path

import gradsign_rs
import pandas as pd
import pytest
from conftest import CIFAR10_TRAIN
from gradsign_rs import proxies
from gradsign_rs.spaces import nb101_onnx

RESULTS = Path(__file__).resolve().parents[1] / "results" / "nb101"
GRADSIGN = RESULTS / "gradsign_cifar10.csv"
PEER = RESULTS / "proxies_peer500.csv"
PEER_PROXIES = ("synflow", "live_params", "params", "flops", "nwot", "jacob_cov")


def _needs(table: Path):
    return pytest.mark.skipif(
        not (table.is_file() and CIFAR10_TRAIN.is_file()), reason=f"needs {table.name} and the shared images"
    )


def _smallest(table: Path, column: str, count: int) -> pd.DataFrame:
    """The `count` cells with the fewest weights (the fast ones), every value as the text written."""
    frame = pd.read_csv(table, dtype=str)
    return frame.loc[frame[column].astype(int).sort_values(kind="stable").index[:count]]


def _model(arch: str):
    return nb101_onnx.build_onnx(arch, num_classes=10, seed=42, image_size=32)


@_needs(GRADSIGN)
def test_committed_gradsign_rows_reproduce_bit_for_bit():
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=128)
    for _, row in _smallest(GRADSIGN, "n_weights", 2).iterrows():
        result = gradsign_rs.score(_model(row["arch"]), x, y, num_threads=1)
        assert (result.value, result.n_weights) == (int(row["score"]), int(row["n_weights"])), row["arch"]


@_needs(PEER)
def test_committed_proxy_rows_reproduce_as_written():
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=128)
    (_, row), *_ = _smallest(PEER, "params", 1).iterrows()
    values = proxies.compute(PEER_PROXIES, _model(row["arch"]), x, y, batch_size=64)
    assert {name: f"{value:.10g}" for name, value in values.items()} == {p: row[p] for p in PEER_PROXIES}
