"""The torch front end: export a torch.nn.Module to ONNX with the settings that keep BatchNorm training semantics."""

from __future__ import annotations

import copy
import io
import warnings
from typing import Any

import numpy as np
import onnx

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.protocol import EXPORT_MARK


def protocol_mode(module: Any) -> Any:
    """`module` with its BatchNorm layers in training mode (per-sample statistics, the paper's setting) and every
    other layer in eval mode (Dropout, stochastic depth and other random layers inactive); returns it."""
    import torch

    module.eval()
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.train()
    return module


def from_torch(module: object, example_input: object, *, opset: int = 17) -> onnx.ModelProto:
    """Export `module` as GradSign scores it to an ONNX ModelProto: BatchNorm in training mode, random layers off.

    Uses the TorchScript exporter (`dynamo=False`, `TrainingMode.PRESERVE` on a copy in `protocol_mode`, no
    constant folding): eval-mode and dynamo exports fold BatchNorm into the convolutions, and a plain training-mode
    export keeps Dropout and stochastic depth drawing random numbers. The input is named "input", the output
    "logits", and the batch dimension is dynamic. The caller's module is not modified.
    """
    try:
        import torch
    except ImportError as exc:
        raise GradSignError("from_torch needs torch: pip install 'gradsign-rs[torch]'") from exc
    if not isinstance(module, torch.nn.Module):
        raise GradSignError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    example = (
        torch.as_tensor(np.asarray(example_input)) if not isinstance(example_input, torch.Tensor) else example_input
    )
    # Exporting in training mode runs forward passes that update BatchNorm running statistics: export a copy.
    clone = protocol_mode(copy.deepcopy(module))
    try:
        return _export(torch, clone, example, opset, dynamic_batch=True)
    except Exception as first:
        # Some symbolics (BatchNorm without running stats) need a static batch; batch 1 is all GradSign runs.
        try:
            return _export(torch, clone, example[:1], opset, dynamic_batch=False)
        except Exception:
            raise GradSignError(f"torch.onnx.export failed for {type(module).__name__}: {first}") from first


def _export(torch, module, example, opset: int, *, dynamic_batch: bool) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter warns about deprecation and BN buffer mutation on every call: expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}} if dynamic_batch else None,
        )
    model = onnx.load_from_string(buffer.getvalue())
    # The front end trusts this mark: a training-mode export folds nothing, even in a network without BatchNorm.
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, EXPORT_MARK: "training"})
    return model
