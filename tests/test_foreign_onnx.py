"""Models that torch did not make: a hand-built opset-13 graph against a torch twin with the same weights."""

from __future__ import annotations

import gradsign_rs
import numpy as np
import pytest
from onnx_builders import conv_head, nhwc_matmul_classifier

torch = pytest.importorskip("torch")


class TorchTwin(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(weights["head.w"].shape[0], weights["head.w"].shape[1])
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(weights["conv.w"]))
            self.conv.bias.copy_(torch.from_numpy(weights["conv.b"]))
            self.head.weight.copy_(torch.from_numpy(weights["head.w"].T.copy()))
            self.head.bias.copy_(torch.from_numpy(weights["head.b"]))

    def forward(self, images):
        return self.head(torch.flatten(torch.relu(self.conv(images.permute(0, 3, 1, 2))), 1))


def test_nhwc_matmul_opset13_matches_torch_twin():
    from torch_reference import gradsign_torch

    model, weights = nhwc_matmul_classifier()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    ours = gradsign_rs.score(model, x, y)
    want = gradsign_torch(TorchTwin(weights), x, y)
    assert abs(ours.value - want) / want <= 1e-3
    assert set(ours.per_layer) == {"conv.w", "head.w"}, "MatMul with an initializer operand is scored; biases are not"
    assert ours.n_weights == weights["conv.w"].size + weights["head.w"].size


def test_new_ir_version_is_brought_down():
    model = conv_head(ir_version=11)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = np.arange(4)
    assert gradsign_rs.score(model, x, y).value == gradsign_rs.score(conv_head(), x, y).value


def test_old_opset_is_converted_up():
    model, _ = nhwc_matmul_classifier(opset=11)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
    assert gradsign_rs.score(model, x, np.arange(4)).value > 0
