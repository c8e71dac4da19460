"""gradsign (Zhang & Jia, ICLR 2022): the project's engine, as a proxy."""

from __future__ import annotations

from gradsign_rs.proxies.workspace import Workspace
from gradsign_rs.score import score


def gradsign(workspace: Workspace) -> float:
    """Σ_k |Σ_i sign(∂CE_i/∂θ_k)| over the scored weights, per-sample gradients over every sample (batch 1 each).

    See `gradsign_rs.score`: an exact integer, returned as float for a uniform proxy table.
    """
    result = score(
        workspace.network.proto,
        workspace.inputs,
        workspace.labels,
        provider=workspace.provider,
        num_threads=1,
        output=workspace.output,
    )
    return float(result.value)
