"""The committed NAS-Bench-201 CIFAR-10 table reproduces bit for bit: the front end changes nothing for NB201."""

from __future__ import annotations

from pathlib import Path

import gradsign_rs
import pandas as pd
import pytest
from conftest import CIFAR10_TRAIN
from gradsign_rs.spaces import nb201

TABLE = Path(__file__).resolve().parents[1] / "results" / "nb201" / "gradsign_cifar10.csv"


@pytest.mark.skipif(not (TABLE.is_file() and CIFAR10_TRAIN.is_file()), reason="needs the table and the shared images")
def test_committed_rows_reproduce_exactly():
    table = pd.read_csv(TABLE)
    # Three cells of different kinds: with dead ops, all convolutions, pooling and skips; the smaller ones are fast.
    rows = table.sort_values("n_weights").iloc[[2000, 6000, 9000]]
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=128)
    for _, row in rows.iterrows():
        model = nb201.build_onnx(nb201.Arch.parse(row["arch"]), num_classes=10, seed=42)
        assert gradsign_rs.score(model, x, y, num_threads=2).value == row["score"], row["arch"]
