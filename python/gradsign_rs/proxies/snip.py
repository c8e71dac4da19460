"""snip (Lee et al., ICLR 2019, connection sensitivity), as the zero-cost proxy of Abdelfattah et al. (2021)."""

from __future__ import annotations

import numpy as np

from gradsign_rs.proxies.workspace import Workspace


def snip(workspace: Workspace) -> float:
    """Σ_k |θ_k · ∂L/∂θ_k| over every scored weight element.

    This is the gradient of L with respect to a multiplicative mask m = 1 on each weight (the reference code's
    `weight_mask`), since ∂L/∂m_k = θ_k ∂L/∂θ_k. L: mean cross-entropy over one mini-batch, BatchNorm in training mode.
    """
    weights = workspace.weights()
    gradients = workspace.weight_gradients(workspace.train_pass)
    return float(sum(np.abs(weights[n].astype(np.float64) * gradients[n]).sum() for n in weights))
