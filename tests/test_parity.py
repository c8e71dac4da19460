"""Differential tests: the package's GradSign against an independent plain-torch per-sample loop."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import gradsign_rs  # noqa: E402
import small_models as zoo  # noqa: E402
from torch_reference import gradsign_torch  # noqa: E402


@pytest.mark.parametrize("name", zoo.NAMES)
def test_matches_torch_reference(name, cifar_batch):
    x, y = cifar_batch
    model = zoo.make(name)
    onnx_model = gradsign_rs.from_torch(model, x[:1])
    ours = gradsign_rs.score(onnx_model, x, y)
    want = gradsign_torch(model, x, y)
    assert want > 0
    assert abs(ours.value - want) / want <= 1e-3, (ours.value, want)
    assert ours.n_samples == len(y)
    assert sum(ours.per_layer.values()) == ours.value
    assert ours.mean == ours.value / ours.n_weights


def test_torch_module_is_accepted_directly(cifar_batch):
    x, y = cifar_batch
    model = zoo.make("residual_cnn")
    direct = gradsign_rs.score(model, x[:8], y[:8])
    exported = gradsign_rs.score(gradsign_rs.from_torch(model, x[:1]), x[:8], y[:8])
    assert direct.value == exported.value


def test_export_leaves_the_module_untouched(cifar_batch):
    x, _ = cifar_batch
    model = zoo.make("residual_cnn").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradsign_rs.from_torch(model, x[:1])
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_scored_set_is_conv_and_linear_weights(cifar_batch):
    x, y = cifar_batch
    model = zoo.make("residual_cnn")
    score = gradsign_rs.score(model, x[:2], y[:2])
    want = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    assert set(score.per_layer) == want
    assert score.n_weights == sum(model.get_parameter(n).numel() for n in want)
    assert score.per_layer["dead.weight"] == 0, "a branch multiplied by zero has zero gradient"


def test_one_sample_scores_every_nonzero_gradient(cifar_batch):
    x, y = cifar_batch
    model = zoo.make("mlp")
    score = gradsign_rs.score(model, x[:1], y[:1])
    assert score.value == gradsign_torch(model, x[:1], y[:1])
    assert score.value <= score.n_weights
