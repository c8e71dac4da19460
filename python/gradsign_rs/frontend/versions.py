"""Bring a model's opset and IR version into what onnxruntime 1.19 trains (opset 13..21, IR <= 10)."""

from __future__ import annotations

import onnx
import onnx.version_converter

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import copy_model, default_opset

MAX_IR_VERSION = 10
MAX_OPSET = 21
# SoftmaxCrossEntropyLoss needs opset >= 13 for the integer-label form the loss node uses, and BatchNormalization
# has a training_mode attribute (the paper's per-sample statistics) from opset 14.
MIN_OPSET = 14


def normalize_versions(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """A copy of `model` at an opset in [MIN_OPSET, MAX_OPSET] and IR <= MAX_IR_VERSION.

    Opsets outside the range are converted by onnx.version_converter (opset 22 and 23 changed no op's float32
    meaning: they added types and new ops, which the converter refuses when used); a newer IR version is
    relabelled, since a model at opset <= 21 uses nothing IR 11 added.
    """
    opset = default_opset(model)
    if opset is None:
        raise GradSignError(
            f"{source}: the model imports no default-domain opset (ai.onnx); it is not a standard ONNX graph"
        )
    target = min(max(opset, MIN_OPSET), MAX_OPSET)
    out = model
    if target != opset:
        try:
            out = onnx.version_converter.convert_version(model, target)
        except Exception as exc:
            text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise GradSignError(
                f"{source}: opset {opset} is outside what onnxruntime 1.19 trains ({MIN_OPSET}..{MAX_OPSET}) and "
                f"onnx.version_converter could not convert it to {target} ({text}); re-export at opset {MAX_OPSET}"
            ) from exc
    if out.ir_version > MAX_IR_VERSION:
        out = copy_model(out)
        out.ir_version = MAX_IR_VERSION
    return out
