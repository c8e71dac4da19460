"""An independent plain-torch GradSign (the authors' per-sample loop), written without the package under test."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def scored_parameters(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weight of every nn.Conv2d and nn.Linear: the authors' scored set."""
    return [
        (f"{name}.weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]


def protocol_modes(model: nn.Module) -> nn.Module:
    """BatchNorm in training mode, every other layer (Dropout, stochastic depth) in eval mode."""
    model.eval()
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            module.train()
    return model


def gradsign_torch(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, *, random_layers: bool = True) -> int:
    """Σ_k |Σ_i sign(∂CE_i/∂θ_k)| with batch-1 forward/backward passes in training mode; NaN counts as 0.
    random_layers=False keeps Dropout and stochastic depth inactive (BatchNorm still in training mode)."""
    model = model.train() if random_layers else protocol_modes(model)
    params = scored_parameters(model)
    counts = [torch.zeros_like(p, dtype=torch.int64) for _, p in params]
    x = torch.from_numpy(np.asarray(inputs, np.float32))
    y = torch.from_numpy(np.asarray(labels, np.int64))
    for i in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        loss.backward()
        for count, (_, p) in zip(counts, params):
            if p.grad is not None:
                count += torch.nan_to_num(torch.sign(p.grad), nan=0.0).to(torch.int64)
    return int(sum(c.abs().sum() for c in counts))
