"""Small torch models for the parity tests: BatchNorm, residual adds, pooling, dead branches, MLPs."""

from __future__ import annotations

import torch
import torch.nn as nn


class ResidualCNN(nn.Module):
    """Conv-BN-ReLU stem, a residual block, max pooling, a branch multiplied by zero, a linear head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
        )
        self.dead = nn.Conv2d(16, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        h = self.stem(x)
        h = torch.relu(h + self.block(h)) + 0.0 * self.dead(h)
        h = self.pool(h)
        return self.head(h.mean(dim=(2, 3)))


class AffineFreeCNN(nn.Module):
    """BatchNorm with affine=False (exported as Constant scale/bias), average pooling, stride-2 conv, a skip."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8, affine=False, track_running_stats=False)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(16, affine=False)
        self.skip = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(8, 16, 1, bias=False))
        self.fc = nn.Linear(16 * 16 * 16, classes)

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        h = self.b2(self.c2(h)) + self.skip(h)
        return self.fc(torch.flatten(torch.relu(h), 1))


class MLP(nn.Module):
    """Flatten, Linear-ReLU, a Linear without bias (exported as MatMul), Tanh, a head.

    No BatchNorm1d: with batch 1 it has one value per channel, which torch refuses in training mode.
    """

    def __init__(self, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(3 * 32 * 32, 64),
            nn.ReLU(),
            nn.Linear(64, 32, bias=False),
            nn.Tanh(),
            nn.Linear(32, classes),
        )
        self.unused = nn.Linear(5, 5)  # never called: the exporter drops it; torch's grad stays None

    def forward(self, x):
        return self.net(x)


class PoolingCNN(nn.Module):
    """NAS-Bench-201's pooling: 3x3 average pool without counting padding, a 2x2 one, parallel branches summed."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8, affine=False))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.down = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(8, 16, 1, bias=False))
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        h = self.stem(x)
        h = self.conv(h) + self.pool(h) + self.pool(self.conv(h))
        return self.head(self.down(h).mean(dim=(2, 3)))


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return {"residual_cnn": ResidualCNN, "affine_free_cnn": AffineFreeCNN, "mlp": MLP, "pooling_cnn": PoolingCNN}[
        name
    ]()


NAMES = ("residual_cnn", "affine_free_cnn", "mlp", "pooling_cnn")
