"""grad_norm (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS")."""

from __future__ import annotations

import numpy as np

from gradsign_rs.proxies.workspace import Workspace


def grad_norm(workspace: Workspace) -> float:
    """Σ_l ||∂L/∂W_l||_2 over the scored weights W_l (every Conv / fully connected weight).

    L is the mean softmax cross-entropy over one mini-batch, BatchNorm in training mode. Unitless (a sum of
    Euclidean norms of loss gradients); weights that do not reach the logits contribute 0.
    """
    gradients = workspace.weight_gradients(workspace.train_pass)
    return float(sum(np.linalg.norm(g.astype(np.float64).ravel()) for g in gradients.values()))
