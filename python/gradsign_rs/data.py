"""Labelled images in: the `.npz` format of `shared/data/images` (uint8 NHWC `x`, int `y`) to normalised NCHW float32."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gradsign_rs._core import GradSignError

# Per-channel (mean, std) on the 0..255 scale, as NAS-Bench-201 normalises each dataset.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
    "imagenet16": ((122.68, 116.66, 104.01), (63.22, 61.26, 65.09)),
}


def data_root() -> Path:
    """Where the shared reference data lives: $GRADSIGN_DATA, else `../shared/data` beside the checkout."""
    env = os.environ.get("GRADSIGN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def load_images(
    path: str | os.PathLike[str],
    *,
    n: int | None = None,
    normalize: str | None = "cifar10",
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Read images and labels from an `.npz` with `x` (uint8, N x H x W x C) and `y` (int).

    Returns `(inputs, labels)`: float32 `(n, C, H, W)` scaled to [0, 1] then normalised per channel with the
    named dataset's statistics (None: only scaled), and int64 `(n,)`. `n` takes the first n after `offset`
    (the paper's protocol: one fixed batch shared by all networks).
    """
    path = Path(path)
    if not path.is_file():
        raise GradSignError(f"image file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise GradSignError(f"{path}: expected arrays 'x' (images) and 'y' (labels), found {sorted(archive.files)}")
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError) as exc:
        if isinstance(exc, GradSignError):
            raise
        raise GradSignError(f"{path}: not a readable .npz archive ({exc})") from exc
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise GradSignError(f"{path}: 'x' must be N x H x W x C images with C in (1, 3), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise GradSignError(f"{path}: 'y' has shape {y.shape}, expected ({x.shape[0]},) to match 'x'")
    stop = x.shape[0] if n is None else offset + n
    if n is not None and (n < 1 or stop > x.shape[0]):
        raise GradSignError(f"{path}: asked for {n} images from offset {offset}, the file has {x.shape[0]}")
    x, y = x[offset:stop], y[offset:stop]
    images = x.astype(np.float32) / np.float32(255.0)
    if normalize is not None:
        if normalize not in NORMALIZATION:
            raise GradSignError(f"unknown normalisation {normalize!r}; choose one of {sorted(NORMALIZATION)} or None")
        mean, std = (np.asarray(v, np.float32) / np.float32(255.0) for v in NORMALIZATION[normalize])
        images = (images - mean) / std
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), y.astype(np.int64)
