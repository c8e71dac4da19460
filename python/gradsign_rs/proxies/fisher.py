"""fisher (Theis et al. 2018, Turner et al. 2020), as the zero-cost proxy of Abdelfattah et al. (2021)."""

from __future__ import annotations

import numpy as np

from gradsign_rs.proxies.workspace import Workspace


def fisher(workspace: Workspace) -> float:
    """Σ_l Σ_c F_lc · (|W_l| / C_l), with F_lc = ½ · mean_n (Σ_spatial A_lnc · ∂L/∂A_lnc)².

    A_l is the output of scored layer l (Conv / fully connected, before any BatchNorm), C_l its channels, n the
    samples of one mini-batch, L the mean cross-entropy over that batch. The reference implementation broadcasts
    each channel's F_lc to the channel's |W_l| / C_l weights before summing; so does this.
    ONNX has no activation hooks: Σ_spatial A · ∂L/∂A is read as the gradient of L with respect to a ones-valued
    scale inserted after each layer (`graphs`, channel probes), which equals it exactly.
    """
    program = workspace.train_session.program
    result = workspace.train_pass
    sizes = {w.name: w.size for w in program.weights}
    total = 0.0
    for weight, node_probes in program.probes.items():
        # A weight read by several nodes adds each node's term, as the reference's hook does once per call.
        for probe, shape in node_probes:
            per_sample = result.gradients[probe].reshape(shape[0], shape[1]).astype(np.float64)
            per_channel = 0.5 * np.mean(per_sample**2, axis=0)
            total += float(per_channel.sum()) * (sizes[weight] / shape[1])
    return total
