"""Ground truth of NAS-Bench-201 (trained accuracies), read from the shared data by a configurable root."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.data import data_root

TRUTH_FILES = {
    "cifar10": "nb201/nb201_cifar10.csv",
    "cifar100_imagenet16": "nb201/nb201_cifar100_imagenet16.csv",
}


def read_table(path: str | os.PathLike[str], *, on: str = "index", columns: list[str] | None = None) -> pd.DataFrame:
    """A CSV indexed by `on`, checking that the named columns exist."""
    path = Path(path)
    if not path.is_file():
        raise GradSignError(f"table {str(path)!r} does not exist")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise GradSignError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in [on, *(columns or [])] if c not in frame.columns]
    if missing:
        raise GradSignError(f"{path}: no column(s) {missing}; columns are {list(frame.columns)}")
    if frame[on].duplicated().any():
        raise GradSignError(f"{path}: column {on!r} has duplicate values, e.g. {frame[on][frame[on].duplicated()].iloc[0]}")
    return frame.set_index(on)


def nb201_truth(which: str = "cifar10") -> pd.DataFrame:
    """The NAS-Bench-201 accuracy table for `which` (cifar10 or cifar100_imagenet16), indexed by arch index."""
    return read_table(data_root() / TRUTH_FILES[which])
