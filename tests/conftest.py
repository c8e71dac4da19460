from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("GRADSIGN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CIFAR10_TRAIN = DATA / "images" / "cifar10_train4000.npz"
# A committed row reproduces bit for bit on the CPU family that wrote it, and within these relative tolerances on
# another (measured between "amd" and "intel": GradSign 3e-6 to 6.4e-4, the proxies 1e-5).
ACROSS_KERNEL_FAMILIES = {"gradsign": 2e-3, "proxies": 1e-4}  # about 3x the largest measured


def assert_reproduces(value: float, written: str, *, written_on: str, quantity: str, what: str) -> None:
    """`value`, computed here, against the text a committed table holds: exactly as written (an integer, or a float
    to 10 significant digits) where this machine's kernel family (`gradsign_rs._ort.cpu_kernels`) wrote it, else
    within `ACROSS_KERNEL_FAMILIES[quantity]`."""
    from gradsign_rs._ort import cpu_kernels

    if cpu_kernels() == written_on:
        assert (str(value) if isinstance(value, int) else f"{value:.10g}") == written, what
    else:
        assert math.isclose(value, float(written), rel_tol=ACROSS_KERNEL_FAMILIES[quantity]), what


@pytest.fixture(scope="session")
def cifar_batch():
    """32 real CIFAR-10 training images (normalised) and labels, or random data where the shared data is absent."""
    from gradsign_rs import load_images

    if CIFAR10_TRAIN.is_file():
        return load_images(CIFAR10_TRAIN, n=32)
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 32)
