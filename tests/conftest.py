from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("GRADSIGN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CIFAR10_TRAIN = DATA / "images" / "cifar10_train4000.npz"


@pytest.fixture(scope="session")
def cifar_batch():
    """32 real CIFAR-10 training images (normalised) and labels, or random data where the shared data is absent."""
    from gradsign_rs import load_images

    if CIFAR10_TRAIN.is_file():
        return load_images(CIFAR10_TRAIN, n=32)
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 32)
