"""NAS-Bench-201-style CNNs (TinyNetwork with genotype cells) for the engine benchmark.

Faithful to NB201's inference network: a stem Conv3x3+BN, three stages of `cells` cells at C, 2C, 4C channels
separated by ResNet basic blocks (ReLU-Conv3x3/stride 2-BN, ReLU-Conv3x3-BN, shortcut AvgPool2d(2)+Conv1x1),
a final BN+ReLU, global average pooling and a linear head. Edge ops: none (x * 0), skip_connect,
nor_conv_1x1 / nor_conv_3x3 (ReLU-Conv-BN), avg_pool_3x3. PyTorch default init after torch.manual_seed(seed).
"""

from __future__ import annotations

import torch
import torch.nn as nn

# name -> (NB201 arch string, C, cells per stage); weight counts are of Conv/Linear weights (the scored set K).
MODELS: dict[str, tuple[str, int, int]] = {
    # ~0.13 M scored weights: conv1x1 edges, a pooling edge, skips and a dead ('none') edge
    "nb201_small": ("|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|", 16, 5),
    # ~0.58 M: two conv3x3 edges and one conv1x1 per cell
    "nb201_medium": (
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|",
        16,
        5,
    ),
    # ~1.5 M: every edge conv3x3 (the largest network of NAS-Bench-201's CIFAR-10 space)
    "nb201_large": (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        16,
        5,
    ),
}


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class ResNetBasicblock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def _op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(name)


def parse_arch(arch: str) -> list[list[tuple[str, int]]]:
    """'|op~0|+|op~0|op~1|+...' -> per node j>=1, its (op, input node) edges."""
    return [[(e.split("~")[0], int(e.split("~")[1])) for e in node.strip("|").split("|")] for node in arch.split("+")]


class InferCell(nn.Module):
    def __init__(self, arch: str, c: int):
        super().__init__()
        self.nodes = parse_arch(arch)
        self.edges = nn.ModuleList(_op(op, c) for node in self.nodes for op, _ in node)

    def forward(self, x):
        states, k = [x], 0
        for node in self.nodes:
            total = None
            for _, src in node:
                out = self.edges[k](states[src])
                k += 1
                total = out if total is None else total + out
            states.append(total)
        return states[-1]


class TinyNetwork(nn.Module):
    def __init__(self, arch: str, c: int = 16, cells: int = 5, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        c_prev = c
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                layers.append(ResNetBasicblock(c_prev, width))
            layers.extend(InferCell(arch, width) for _ in range(cells))
            c_prev = width
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, classes)

    def forward(self, x):
        h = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.global_pooling(h), 1))


def build(name: str, seed: int = 42) -> nn.Module:
    arch, c, cells = MODELS[name]
    torch.manual_seed(seed)
    return TinyNetwork(arch, c, cells).train()


def scored_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weight of every nn.Conv2d / nn.Linear, in module order (the authors' scored set)."""
    return [(f"{n}.weight", m.weight) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def n_scored(model: nn.Module) -> int:
    return sum(p.numel() for _, p in scored_weights(model))
