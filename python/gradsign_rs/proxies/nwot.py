"""nwot: NASWOT (Mellor et al., ICML 2021, "Neural Architecture Search without Training", v2 score)."""

from __future__ import annotations

import numpy as np

from gradsign_rs._core import hamming_matrix
from gradsign_rs.proxies.workspace import Workspace


def nwot(workspace: Workspace) -> float:
    """log |det K_H|, K_H = Σ_r [c_r c_rᵀ + (1 − c_r)(1 − c_r)ᵀ] over every ReLU r.

    c_r (B x D_r) is the binary code (input > 0) of ReLU r for each sample of one mini-batch (BatchNorm in training
    mode, from a forward-only pass); K_H[i, j] counts the ReLU units on which samples i and j agree: D minus the
    Hamming distance of their codes over all ReLUs, which the Rust core counts on bit-packed codes (exact
    integers). Natural log.
    """
    codes = workspace.forward_relu_codes
    if not codes:
        return float("nan")  # no ReLU, no code: the score is undefined
    batch = workspace.batch_size
    # Each ReLU's code is padded to whole bytes with zeros in every row: padding never differs, so it adds nothing.
    packed = np.concatenate([np.packbits(c.reshape(batch, -1), axis=1) for c in codes], axis=1)
    units = sum(c.size // batch for c in codes)
    # One thread: batch workers already run one network per core.
    kernel = units - hamming_matrix(packed, num_threads=1).astype(np.float64)
    _, logdet = np.linalg.slogdet(kernel)
    return float(logdet)
