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
    _check_count("offset", offset, minimum=0)
    if n is not None:
        _check_count("n", n, minimum=1)
    if not path.exists():
        raise GradSignError(f"image file {str(path)!r} does not exist")
    if not path.is_file():
        raise GradSignError(f"image file {str(path)!r} is not a file")
    loaded = read_arrays(path)
    if isinstance(loaded, np.ndarray):
        raise GradSignError(f"{path}: a .npy array, not an .npz archive of images 'x' and labels 'y'")
    if "x" not in loaded or "y" not in loaded:
        raise GradSignError(f"{path}: expected arrays 'x' (images) and 'y' (labels), found {sorted(loaded)}")
    x, y = loaded["x"], loaded["y"]
    if x.dtype != np.uint8:
        raise GradSignError(
            f"{path}: 'x' holds {x.dtype} values, not uint8 pixels; preprocessed arrays are read "
            "as they are by gradsign_rs.data.load_arrays (CLI: the same --data, no --normalize)"
        )
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise GradSignError(f"{path}: 'x' must be N x H x W x C images with C in (1, 3), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise GradSignError(f"{path}: 'y' has shape {y.shape}, expected ({x.shape[0]},) to match 'x'")
    y = check_labels_array(y, str(path))
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
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), y


def read_arrays(path: str | os.PathLike[str]) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a .npy, or every array of an .npz by name, read now with our own handle (closed even when numpy
    gives up on a broken file). Pickles are never loaded."""
    try:
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return loaded
            with loaded as archive:
                return {name: archive[name] for name in archive.files}
    except Exception as exc:  # zipfile, EOF, pickle and OS errors alike: the file is not what it should be
        raise GradSignError(f"{path}: not a readable .npy/.npz file ({type(exc).__name__}: {exc})") from exc


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise GradSignError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_labels_array(labels: np.ndarray, where: str = "") -> np.ndarray:
    """Labels as int64 class indices: integers (never truncated floats, NaN or strings), >= 0, within int64.
    The one place for this rule: files (`where` names them) and `score`/proxy arguments alike."""
    prefix = f"{where}: " if where else ""
    if not np.issubdtype(labels.dtype, np.integer):
        raise GradSignError(f"{prefix}labels must be integer class indices, got dtype {labels.dtype}")
    if labels.size and int(labels.min()) < 0:
        raise GradSignError(f"{prefix}labels must be >= 0, found {int(labels.min())} at index {int(np.argmin(labels))}")
    if labels.size and int(labels.max()) > np.iinfo(np.int64).max:  # uint64 labels would wrap to negative int64
        raise GradSignError(f"{prefix}label {int(labels.max())} (index {int(np.argmax(labels))}) does not fit int64")
    return labels.astype(np.int64)


LAYOUTS = ("nchw", "nhwc", "flat")


def arrange(images: np.ndarray, *, layout: str = "nchw", size: int | None = None) -> np.ndarray:
    """NCHW float images as a model takes them: resized to `size` x `size` (bilinear, scipy.ndimage.zoom with
    order 1), then laid out as NCHW, NHWC (Keras, TF, JAX) or flat rows of the NHWC values (an MLP, sklearn)."""
    if layout not in LAYOUTS:
        raise GradSignError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= 4096:
            raise GradSignError(f"size must be an int between 1 and 4096, got {size!r}")
        from scipy import ndimage

        factors = (1, 1, size / images.shape[2], size / images.shape[3])
        images = ndimage.zoom(images, factors, order=1, grid_mode=True, mode="nearest").astype(np.float32)
    if layout == "nchw":
        return np.ascontiguousarray(images)
    nhwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    return nhwc if layout == "nhwc" else nhwc.reshape(nhwc.shape[0], -1)


def is_preprocessed(path: str | os.PathLike[str]) -> bool:
    """Whether `path` holds model-ready arrays (a .npy, or a .npz whose 'x' is not uint8) rather than pixels."""
    path = Path(path)
    if path.suffix == ".npy":
        return True
    if not path.is_file():
        return False  # load_images reports what is wrong with the path
    try:
        loaded = read_arrays(path)
    except GradSignError:
        return False
    return isinstance(loaded, dict) and "x" in loaded and loaded["x"].dtype != np.uint8


def load_arrays(
    path: str | os.PathLike[str], *, labels: str | os.PathLike[str] | None = None, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready samples, read as they are: a .npz with float 'x' (any shape, batch first) and 'y', or a .npy of
    samples with `labels` a .npy of class indices. The first n are taken."""
    path = Path(path)
    if path.suffix == ".npy":
        if labels is None:
            raise GradSignError(f"{path}: a .npy holds samples only; give the labels (.npy) too (CLI: --labels)")
        x, y = read_arrays(path), read_arrays(labels)
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise GradSignError(f"{path}, {labels}: expected one .npy array each (samples, labels)")
    else:
        loaded = read_arrays(path)
        if isinstance(loaded, np.ndarray) or "x" not in loaded or "y" not in loaded:
            found = "one array" if isinstance(loaded, np.ndarray) else sorted(loaded)
            raise GradSignError(f"{path}: expected arrays 'x' (samples) and 'y' (labels), found {found}")
        x, y = loaded["x"], loaded["y"]
    if not np.issubdtype(x.dtype, np.floating):
        raise GradSignError(f"{path}: samples must be floating point, got {x.dtype}")
    if y.ndim != 1 or x.ndim < 1 or y.shape[0] != x.shape[0]:
        raise GradSignError(f"{path}: {x.shape[0] if x.ndim else 0} samples but labels of shape {y.shape}")
    y = check_labels_array(y, str(labels or path))
    if n is not None:
        _check_count("n", n, minimum=1)
        if n > x.shape[0]:
            raise GradSignError(f"{path}: asked for {n} samples, the file has {x.shape[0]}")
        x, y = x[:n], y[:n]
    return np.ascontiguousarray(x, np.float32 if x.dtype != np.float64 else np.float64), y
