"""The differentiable-op table is what scripts/probe_gradient_ops.py measures on this onnxruntime, and it agrees
with what the lowering passes rely on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from gradsign_rs.frontend import gradient_ops
from gradsign_rs.frontend.gradient_ops import (
    DIFFERENTIABLE_OPS,
    NEEDS_ALL_OUTPUTS,
    NON_DIFFERENTIABLE_BUT_HARMLESS,
    NOT_DIFFERENTIABLE,
)
from gradsign_rs.frontend.lower import LOWERINGS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "probe_gradient_ops.py"


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("probe_gradient_ops", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_generated_table_is_what_the_probe_measures_now(probe):
    ok, needs_outputs, harmless, reasons = probe.summarise({opset: probe.probe(opset) for opset in probe.OPSETS})
    assert ok == DIFFERENTIABLE_OPS
    assert needs_outputs == NEEDS_ALL_OUTPUTS
    assert harmless == NON_DIFFERENTIABLE_BUT_HARMLESS
    assert reasons == NOT_DIFFERENTIABLE
    assert probe.render(ok, needs_outputs, harmless, reasons) == Path(gradient_ops.__file__).read_text()


def test_the_sets_are_consistent():
    assert not DIFFERENTIABLE_OPS & set(NOT_DIFFERENTIABLE)
    assert NEEDS_ALL_OUTPUTS <= DIFFERENTIABLE_OPS
    assert NON_DIFFERENTIABLE_BUT_HARMLESS <= set(NOT_DIFFERENTIABLE)


def test_what_the_brief_expects():
    assert {
        "Conv",
        "Gemm",
        "MatMul",
        "Relu",
        "Add",
        "Mul",
        "Reshape",
        "Transpose",
        "ReduceMean",
        "Softmax",
        "BatchNormalization",
        "Gather",
        "Expand",
        "Clip",
        "Tanh",
        "Exp",
        "Log",
    } <= DIFFERENTIABLE_OPS
    assert {"Shape", "Size", "ConstantOfShape", "NonZero", "ArgMax", "Equal", "Less"} <= NON_DIFFERENTIABLE_BUT_HARMLESS
    assert NOT_DIFFERENTIABLE["Resize"] == "no CPU kernel: ResizeGrad"


def test_every_lowered_op_needs_its_lowering():
    for op in LOWERINGS:
        assert op not in DIFFERENTIABLE_OPS and op in NOT_DIFFERENTIABLE, op
