"""nwot: NASWOT (Mellor et al., ICML 2021, "Neural Architecture Search without Training", v2 score)."""

from __future__ import annotations

import numpy as np

from gradsign_rs.proxies.workspace import Workspace


def nwot(workspace: Workspace) -> float:
    """log |det K_H|, K_H = Σ_r [c_r c_rᵀ + (1 − c_r)(1 − c_r)ᵀ] over every ReLU r.

    c_r (B x D_r) is the binary code (input > 0) of ReLU r for each sample of one mini-batch (BatchNorm in training
    mode, from a forward-only pass); K_H[i, j] counts the ReLU units on which samples i and j agree (D minus the
    Hamming distance). Natural log.
    """
    relus = workspace.forward_relu_inputs
    if not relus:
        return float("nan")  # no ReLU, no code: the score is undefined
    batch = relus[0].shape[0]
    kernel = np.zeros((batch, batch), np.float64)
    for values in relus:
        # float32 holds these counts exactly (D_r < 2**24); agreements = c cᵀ + (D - |c_i| - |c_j| + c cᵀ).
        codes = (values.reshape(batch, -1) > 0).astype(np.float32)
        ones = codes.sum(axis=1, dtype=np.float64)
        both = (codes @ codes.T).astype(np.float64)
        kernel += 2.0 * both + codes.shape[1] - ones[:, None] - ones[None, :]
    _, logdet = np.linalg.slogdet(kernel)
    return float(logdet)
