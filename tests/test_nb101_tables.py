"""The committed NAS-Bench-101 tables reproduce: they are scored over several sessions, on whatever CPU each session
had, and every row must be the number today's code gives. onnxruntime's CPU kernels come in families that round
differently (`gradsign_rs._ort.cpu_kernels`), so a row reproduces bit for bit (GradSign; the proxies as written, to
10 significant digits) on the family that wrote it, and to float rounding on the other."""

from __future__ import annotations

from pathlib import Path

import gradsign_rs
import pandas as pd
import pytest
from conftest import CIFAR10_TRAIN, assert_reproduces
from gradsign_rs import proxies
from gradsign_rs.spaces import nb101_onnx

RESULTS = Path(__file__).resolve().parents[1] / "results" / "nb101"
GRADSIGN = RESULTS / "gradsign_cifar10.csv"
PEER = RESULTS / "proxies_peer500.csv"
PEER_PROXIES = ("synflow", "live_params", "params", "flops", "nwot", "jacob_cov")
# Which kernel family wrote which data rows of gradsign_cifar10.csv, one stretch per run of sessions on one family
# (checked by re-scoring rows of each stretch on both families, results/nb101/README.md); the whole peer table was
# written by "amd". A session that appends rows adds its stretch here, under the family `cpu_kernels()` names on its
# machine.
GRADSIGN_WRITTEN_ON = (("amd", slice(0, 1472)), ("intel", slice(1472, 1750)), ("amd", slice(1750, 2000)))
PEER_WRITTEN_ON = "amd"


def _needs(table: Path):
    return pytest.mark.skipif(
        not (table.is_file() and CIFAR10_TRAIN.is_file()), reason=f"needs {table.name} and the shared images"
    )


def _smallest(frame: pd.DataFrame, column: str) -> pd.Series:
    """The cell with the fewest weights (the fast one), every value as the text written."""
    return frame.loc[frame[column].astype(int).sort_values(kind="stable").index[0]]


def _model(arch: str):
    return nb101_onnx.build_onnx(arch, num_classes=10, seed=42, image_size=32)


@_needs(GRADSIGN)
@pytest.mark.parametrize(
    "family, stretch",
    GRADSIGN_WRITTEN_ON,
    ids=[f"{family}-rows{stretch.start}-{stretch.stop - 1}" for family, stretch in GRADSIGN_WRITTEN_ON],
)
def test_committed_gradsign_rows_reproduce(family, stretch):
    rows = pd.read_csv(GRADSIGN, dtype=str).iloc[stretch]
    if rows.empty:
        pytest.skip(f"{GRADSIGN.name} has no data row in {stretch.start}-{stretch.stop - 1} yet")
    row = _smallest(rows, "n_weights")
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=128)
    result = gradsign_rs.score(_model(row["arch"]), x, y, num_threads=1)
    assert result.n_weights == int(row["n_weights"]), row["arch"]
    assert_reproduces(result.value, row["score"], written_on=family, quantity="gradsign", what=row["arch"])


@_needs(PEER)
def test_committed_proxy_rows_reproduce():
    row = _smallest(pd.read_csv(PEER, dtype=str), "params")
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=128)
    values = proxies.compute(PEER_PROXIES, _model(row["arch"]), x, y, batch_size=64)
    for name in PEER_PROXIES:
        assert_reproduces(values[name], row[name], written_on=PEER_WRITTEN_ON, quantity="proxies", what=name)
