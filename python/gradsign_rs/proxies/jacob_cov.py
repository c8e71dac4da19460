"""jacob_cov (Mellor et al. 2020, v1 of "Neural Architecture Search without Training"), as in zero-cost-nas/NASLib."""

from __future__ import annotations

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.proxies.workspace import Workspace

EPSILON = 1e-5


def jacob_cov(workspace: Workspace) -> float:
    """−Σ_i [log(λ_i + k) + 1 / (λ_i + k)], k = 1e-5, λ the eigenvalues of the correlation matrix of J.

    J (B x input size) holds, per sample of one mini-batch, the gradient of the sum of its logits with respect to
    its input (BatchNorm in training mode, so samples interact through batch statistics as in the reference).
    The reference uses `np.linalg.eig`; the matrix is symmetric, so `eigvalsh` gives the same eigenvalues, real.
    NaN where a sample's Jacobian is constant (its correlation is undefined) or an eigenvalue is below −k.
    """
    if workspace.batch_size < 2:
        raise GradSignError(
            f"jacob_cov correlates the samples of a mini-batch: batch_size must be >= 2, got {workspace.batch_size}"
        )
    jacobian = workspace.input_jacobian.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.corrcoef(jacobian)
        if not np.isfinite(correlation).all():
            return float("nan")
        eigenvalues = np.linalg.eigvalsh(correlation)
        return float(-np.sum(np.log(eigenvalues + EPSILON) + 1.0 / (eigenvalues + EPSILON)))
