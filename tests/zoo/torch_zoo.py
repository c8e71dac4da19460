"""Real architectures from torchvision and timm (random initialisation, no downloads) and the two torch export
routes users take: `gradsign_rs.from_torch` (training-mode export, BatchNorm kept) and torch's default export of an
eval-mode model (BatchNorm folded into the convolutions). Used by the zoo tests and `benches/zoo_coverage.py`."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import torch

# name -> (family, builder, input size). Sizes keep every BatchNorm above one value per channel (torch refuses less).
ARCHITECTURES: dict[str, tuple[str, Callable[[], torch.nn.Module], int]] = {}


def _register(name: str, family: str, size: int):
    def wrap(builder: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
        ARCHITECTURES[name] = (family, builder, size)
        return builder

    return wrap


def _tv(name: str, **kwargs) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs)

    return build


def _timm(name: str, **kwargs) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=10, **kwargs)

    return build


for _name, _family, _size, _kwargs in [
    ("resnet18", "ResNet", 64, {}),
    ("mobilenet_v2", "MobileNetV2", 64, {}),
    ("mobilenet_v3_small", "MobileNetV3", 64, {}),
    ("efficientnet_b0", "EfficientNet", 64, {}),
    ("regnet_x_400mf", "RegNet", 64, {}),
    ("shufflenet_v2_x0_5", "ShuffleNet", 64, {}),
    ("densenet121", "DenseNet", 64, {}),
    # At 64 px GoogLeNet's inception5a pools a 2 x 2 map with a 3 x 3 window: a constant map, which per-sample
    # BatchNorm sends to exactly 0 (torch's reference then counts the signs of rounding noise); 128 px avoids it.
    ("googlenet", "GoogLeNet", 128, {"aux_logits": False, "init_weights": True}),
    ("mnasnet0_5", "MNASNet", 64, {}),
    ("squeezenet1_1", "SqueezeNet", 64, {}),
]:
    _register(f"tv_{_name}", _family, _size)(_tv(_name, **_kwargs))

for _name, _family, _size, _kwargs in [
    ("convnext_atto", "ConvNeXt", 64, {}),
    ("vit_tiny_patch16_224", "ViT", 32, {"img_size": 32, "patch_size": 8}),
    ("deit_tiny_patch16_224", "DeiT", 32, {"img_size": 32, "patch_size": 8}),
    (
        "swin_tiny_patch4_window7_224",
        "Swin",
        32,
        {"img_size": 32, "window_size": 4, "embed_dim": 24, "depths": (1, 1), "num_heads": (2, 2)},
    ),
    # At 64 px MobileViT's last transformer sees one token, whose attention has exactly zero q/k gradients (torch's
    # reference counts rounding noise there); 128 px gives it four.
    ("mobilevit_xxs", "MobileViT", 128, {}),
    ("ghostnet_050", "GhostNet", 64, {}),
    ("lcnet_050", "LCNet", 64, {}),
    ("mobilenetv3_small_050", "MobileNetV3", 64, {}),
    ("efficientvit_m0", "EfficientViT", 128, {}),
    ("efficientvit_b0", "EfficientViT", 64, {}),
    ("resnet10t", "ResNet", 64, {}),
]:
    _register(f"timm_{_name}", _family, _size)(_timm(_name, **_kwargs))


@_register("timm_mlp_mixer_small", "MLP-Mixer", 32)
def _mixer() -> torch.nn.Module:
    from timm.models.mlp_mixer import MlpMixer

    return MlpMixer(num_classes=10, img_size=32, patch_size=8, num_blocks=2, embed_dim=64)


def build(name: str, seed: int = 0) -> tuple[torch.nn.Module, int]:
    """A freshly initialised architecture (seeded) and its input size."""
    _, builder, size = ARCHITECTURES[name]
    torch.manual_seed(seed)
    return builder(), size


def images(size: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n real CIFAR-10 images resized to size x size (bilinear), normalised, NCHW; random ones without the data."""
    import gradsign_rs
    from conftest import CIFAR10_TRAIN

    if CIFAR10_TRAIN.is_file():
        x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=n)
    else:
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, n)
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear").numpy()
    return np.ascontiguousarray(x, np.float32), y


def export_default(module: torch.nn.Module, size: int) -> bytes:
    """torch's default route: `torch.onnx.export(model.eval(), x)` (the dynamo exporter in torch >= 2.9)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), (torch.zeros(1, 3, size, size),), dynamo=True, verbose=False)
    program.model_proto  # noqa: B018  (materialise before serialising)
    buffer.write(program.model_proto.SerializeToString())
    return buffer.getvalue()
