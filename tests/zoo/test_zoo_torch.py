"""torchvision and timm architectures through both torch export routes, against a plain-torch per-sample GradSign
(batch 1, BatchNorm in training mode, random layers off): relative difference <= 1e-3."""

from __future__ import annotations

import gradsign_rs
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("torchvision")

import torch_zoo  # noqa: E402
from torch_reference import gradsign_torch  # noqa: E402

# One of each kind the issue names as failing before: a ViT, a Swin, a ConvNeXt (LayerNorm), a MobileNetV3
# (HardSwish, HardSigmoid); fast enough for CI. The rest of the zoo runs with -m slow.
FAST = ("timm_vit_tiny_patch16_224", "timm_swin_tiny_patch4_window7_224", "timm_convnext_atto", "tv_mobilenet_v3_small")
# Refused by torch and by us alike: EfficientViT-M0's classifier BatchNorm1d sees one value per channel per sample.
REFUSED = {"timm_efficientvit_m0": "more than 1 value per channel"}
SLOW = tuple(name for name in torch_zoo.ARCHITECTURES if name not in FAST and name not in REFUSED)
N = 4


def _parity(name: str) -> None:
    module, size = torch_zoo.build(name)
    x, y = torch_zoo.images(size, N)
    ours = gradsign_rs.score(module, x, y, num_threads=2)
    want = gradsign_torch(module, x, y, random_layers=False)
    assert ours.protocol == "paper", ours.protocol_reasons
    assert abs(ours.value - want) <= 1e-3 * want, (ours.value, want)


@pytest.mark.parametrize("name", FAST)
def test_architecture_matches_the_torch_reference(name):
    _parity(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_architecture_matches_the_torch_reference_slow(name):
    _parity(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_architecture_that_torch_refuses_is_refused_with_the_reason(name):
    module, size = torch_zoo.build(name)
    x, y = torch_zoo.images(size, 2)
    with pytest.raises(gradsign_rs.GradSignError, match=REFUSED[name]):
        gradsign_rs.score(module, x, y)


@pytest.mark.parametrize(("name", "folded"), [("timm_resnet10t", True), ("timm_vit_tiny_patch16_224", False)])
def test_eval_mode_default_export_is_flagged_exactly_when_batchnorm_was_folded(name, folded):
    pytest.importorskip("onnxscript")
    module, size = torch_zoo.build(name)
    x, y = torch_zoo.images(size, 2)
    result = gradsign_rs.score(torch_zoo.export_default(module, size), x, y)
    assert (result.protocol == "flagged") == folded, result.protocol_reasons
    if folded:
        assert "folded" in result.protocol_reasons[0] and "training mode" in result.protocol_reasons[0]
    else:  # a network without BatchNorm loses nothing in an eval-mode export
        assert result.value == gradsign_rs.score(module, x, y).value


def test_training_export_with_dropout_and_stochastic_depth_is_repeatable_and_matches_from_torch():
    import io
    import warnings

    module, size = torch_zoo.build("tv_efficientnet_b0")
    x, y = torch_zoo.images(size, 2)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.train(),
            (torch.zeros(1, 3, size, size),),
            buffer,
            dynamo=False,
            training=torch.onnx.TrainingMode.TRAINING,
            do_constant_folding=False,
            opset_version=17,
            dynamic_axes={"input": {0: "N"}},
            input_names=["input"],
        )
    first = gradsign_rs.score(buffer.getvalue(), x, y)
    assert first.value == gradsign_rs.score(buffer.getvalue(), x, y).value
    assert first.value == gradsign_rs.score(module, x, y).value
    assert any("Dropout" in note for note in first.protocol_notes)
    assert any("Bernoulli" in note for note in first.protocol_notes)


def test_imagenet_network_at_32_px_is_refused_naming_the_batchnorm():
    from onnx import TensorProto, helper, numpy_helper

    module, _ = torch_zoo.build("timm_resnet10t")
    x, y = torch_zoo.images(32, 2)
    with pytest.raises(gradsign_rs.GradSignError, match="more than 1 value per channel"):
        gradsign_rs.score(module, x, y)  # torch's exporter refuses it while tracing
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        gradsign_torch(module, x, y, random_layers=False)
    # The same degenerate BatchNorm in an ONNX file (the last stage of a network at 1 x 1): refused by node.
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in [("w", (4, 3, 32, 32)), ("s", (4,)), ("b", (4,)), ("m", (4,)), ("v", (4,)), ("h", (4, 10))]
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="stage4_conv"),
            helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="stage4_bn"),
            helper.make_node("Flatten", ["n"], ["f"]),
            helper.make_node("MatMul", ["f", "h"], ["logits"]),
        ],
        "degenerate",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(gradsign_rs.GradSignError, match=r"node 'stage4_bn' sees input of shape \[1, 4, 1, 1\]"):
        gradsign_rs.score(model, x, y)


def test_scores_do_not_depend_on_the_thread_count():
    module, size = torch_zoo.build("timm_convnext_atto")
    x, y = torch_zoo.images(size, 4)
    model = gradsign_rs.from_torch(module, x[:1])
    assert len({gradsign_rs.score(model, x, y, num_threads=t).value for t in (1, 2, 3)}) == 1
    assert np.isfinite(gradsign_rs.score(model, x, y).mean)
