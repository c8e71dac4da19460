"""zico (Li et al., ICLR 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients")."""

from __future__ import annotations

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.proxies.workspace import Workspace


def zico(workspace: Workspace) -> float:
    """Σ_l log( Σ_{k: σ_k > 0} mean_b |g_bk| / σ_k ) over the scored layers l (layers whose sum is 0 are skipped).

    g_bk is ∂L_b/∂θ_k for mini-batch b (mean cross-entropy over that batch, BatchNorm in training mode), σ_k the
    population standard deviation over batches. Uses every full batch of the samples (at least 2: the paper uses two).
    The paper's definition is followed: each batch's gradient is its own; the authors' script never zeroes the
    gradients between batches, so there batch b holds the running sum of batches 1..b.
    """
    if workspace.n_batches < 2:
        raise GradSignError(
            f"zico needs at least 2 batches of {workspace.batch_size} samples, got {workspace.inputs.shape[0]} samples"
        )
    per_batch = [workspace.weight_gradients(result) for result in workspace.batch_passes]
    total = 0.0
    for name in per_batch[0]:
        stacked = np.stack([g[name].ravel() for g in per_batch]).astype(np.float64)
        sigma = stacked.std(axis=0)
        varying = sigma > 0
        ratio = float((np.abs(stacked[:, varying]).mean(axis=0) / sigma[varying]).sum())
        if ratio > 0:
            total += np.log(ratio)
    return float(total)
