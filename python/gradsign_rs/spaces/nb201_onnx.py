"""Build the NAS-Bench-201 TinyNetwork for one cell architecture as an ONNX graph (onnx.helper only, no torch).

Macro structure (Dong & Yang, ICLR 2020): stem Conv3x3 + BN; three stages of `cells_per_stage` cells with
C, 2C, 4C channels, a ResNet basic block with stride 2 between stages; BN + ReLU + global average pool +
Linear. Initializer names mirror the PyTorch module names of that network (`stem.0.weight`,
`cells.3.edges.2<-0.op.1.weight`, `cells.5.conv_a.op.1.weight`, `classifier.weight`, ...); `cells` counts the
reduction blocks too (with N=5 they are cells.5 and cells.11), as in the benchmark's TinyNetwork.

BatchNormalization runs in training mode (per-batch statistics), because the scoring engine normalises each
sample with its own statistics; ONNX requires a training-mode BN to also output its updated running statistics,
so each BN has two unused outputs `<bn>.updated_running_mean` / `<bn>.updated_running_var`.
Cell BNs are affine=False as in the GradSign authors' networks: their scale and bias are frozen initializers
`<bn>.frozen_scale` (ones) and `<bn>.frozen_bias` (zeros), never Constant nodes. The authors' cell convs also
carry a bias (`bias=not affine`); it is left out here, since a training-mode BN right after cancels it exactly
and GradSign does not score biases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gradsign_rs._core import GradSignError

if TYPE_CHECKING:
    from gradsign_rs.spaces.nb201 import Arch, Edge

__all__ = ["BN_EPSILON", "BN_MOMENTUM", "IR_VERSION", "OPSET", "build_onnx"]

OPSET = 17
IR_VERSION = 8
BN_EPSILON = 1e-5
# ONNX momentum weighs the old running value; torch's BatchNorm2d default momentum 0.1 is 0.9 here.
BN_MOMENTUM = 0.9
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


class _GraphWriter:
    """Collects nodes and initializers; draws random weights from one generator in call (= module) order."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def uniform(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        """PyTorch's default Conv/Linear init: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        bound = 1.0 / np.sqrt(fan_in)
        return self.constant(name, self.rng.uniform(-bound, bound, size=shape))

    def node(
        self, op_type: str, inputs: list[str], output: str, *, unused_outputs: tuple[str, ...] = (), **attributes
    ) -> str:
        """Append one node; its (first) output tensor and the node itself share the name `output`."""
        self.nodes.append(helper.make_node(op_type, inputs, [output, *unused_outputs], name=output, **attributes))
        return output

    def model(self, name: str, image_size: int, num_classes: int, doc: str, props: dict[str, str]) -> onnx.ModelProto:
        """The classifier written so far: images (N, 3, size, size) in, logits (N, classes) out."""
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, image_size, image_size])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", num_classes])],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="gradsign_rs", doc_string=doc
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, props)
        return model


def _conv(w: _GraphWriter, x: str, prefix: str, c_in: int, c_out: int, kernel: int, stride: int, pad: int) -> str:
    weight = w.uniform(f"{prefix}.weight", (c_out, c_in, kernel, kernel), fan_in=c_in * kernel * kernel)
    return w.node("Conv", [x, weight], prefix, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)


def _batch_norm(w: _GraphWriter, x: str, prefix: str, channels: int, *, affine: bool) -> str:
    # affine=False BNs have no parameters in torch: the ONNX scale/bias they still need are named as frozen.
    scale_suffix, bias_suffix = ("weight", "bias") if affine else ("frozen_scale", "frozen_bias")
    inputs = [
        x,
        w.constant(f"{prefix}.{scale_suffix}", np.ones(channels)),
        w.constant(f"{prefix}.{bias_suffix}", np.zeros(channels)),
        w.constant(f"{prefix}.running_mean", np.zeros(channels)),
        w.constant(f"{prefix}.running_var", np.ones(channels)),
    ]
    # ONNX requires the updated running statistics as outputs in training mode; nothing reads them.
    updated = (f"{prefix}.updated_running_mean", f"{prefix}.updated_running_var")
    return w.node(
        "BatchNormalization",
        inputs,
        prefix,
        unused_outputs=updated,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        training_mode=1,
    )


def _relu_conv_bn(
    w: _GraphWriter, x: str, prefix: str, c_in: int, c_out: int, kernel: int, stride: int, *, affine: bool
) -> str:
    """ReLU -> Conv(kernel, pad kernel//2, no bias) -> BN, as modules `<prefix>.op.0/1/2`."""
    relu = w.node("Relu", [x], f"{prefix}.op.0")
    conv = _conv(w, relu, f"{prefix}.op.1", c_in, c_out, kernel, stride, pad=kernel // 2)
    return _batch_norm(w, conv, f"{prefix}.op.2", c_out, affine=affine)


def _edge_op(w: _GraphWriter, x: str, prefix: str, op: str, channels: int) -> str:
    """The output of one live (non-`none`) edge applied to node tensor `x`."""
    if op == "skip_connect":
        return x
    if op == "avg_pool_3x3":
        return w.node(
            "AveragePool",
            [x],
            f"{prefix}.op",
            kernel_shape=[3, 3],
            strides=[1, 1],
            pads=[1, 1, 1, 1],
            count_include_pad=0,
        )
    if op in _CONV_KERNEL:
        return _relu_conv_bn(w, x, prefix, channels, channels, _CONV_KERNEL[op], 1, affine=False)
    raise GradSignError(f"{prefix}: op {op!r} has no ONNX lowering")


def _sum(w: _GraphWriter, terms: list[str], output: str) -> str:
    """terms[0] + terms[1] + ..., left to right, the last Add named `output`."""
    total = terms[0]
    for k, term in enumerate(terms[1:], start=1):
        total = w.node("Add", [total, term], output if k == len(terms) - 1 else f"{output}.partial{k}")
    return total


def _cell(w: _GraphWriter, x: str, prefix: str, edges: tuple[Edge, ...], channels: int) -> str:
    """One searched cell on input `x`; returns the name of its output (node 3)."""
    nodes = [x]
    input_shape = None
    for target in range(1, 4):
        terms = [
            _edge_op(w, nodes[e.source], f"{prefix}.edges.{e.name}", e.op, channels)
            for e in edges
            if e.target == target and e.op != "none"
        ]
        if terms:
            nodes.append(_sum(w, terms, f"{prefix}.node{target}"))
            continue
        # Every input edge is `none`: the node is zeros shaped like the cell input (stride 1, same channels).
        if input_shape is None:
            input_shape = w.node("Shape", [x], f"{prefix}.input_shape")
        zero = numpy_helper.from_array(np.zeros(1, dtype=np.float32))
        nodes.append(w.node("ConstantOfShape", [input_shape], f"{prefix}.node{target}", value=zero))
    return nodes[-1]


def _reduction_block(w: _GraphWriter, x: str, prefix: str, c_in: int, c_out: int) -> str:
    """ResNet basic block with stride 2: ReLUConvBN(s2) -> ReLUConvBN, plus AvgPool2x2 -> Conv1x1 shortcut."""
    conv_a = _relu_conv_bn(w, x, f"{prefix}.conv_a", c_in, c_out, 3, 2, affine=True)
    conv_b = _relu_conv_bn(w, conv_a, f"{prefix}.conv_b", c_out, c_out, 3, 1, affine=True)
    pooled = w.node(
        "AveragePool", [x], f"{prefix}.downsample.0", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]
    )
    shortcut = _conv(w, pooled, f"{prefix}.downsample.1", c_in, c_out, 1, 1, pad=0)
    return w.node("Add", [shortcut, conv_b], f"{prefix}.add")


def _check_options(num_classes: int, seed: int, channels: int, cells_per_stage: int, input_size: int) -> None:
    for name, value, least in (
        ("num_classes", num_classes, 1),
        ("seed", seed, 0),
        ("channels", channels, 1),
        ("cells_per_stage", cells_per_stage, 1),
        ("input_size", input_size, 4),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise GradSignError(f"build_onnx: {name} must be an int >= {least}, got {value!r}")
    if input_size % 4:
        # Two stride-2 reductions: an odd size makes the shortcut (floor) and the conv path (ceil) disagree.
        raise GradSignError(f"build_onnx: input_size must be a multiple of 4, got {input_size}")


def build_onnx(
    arch: Arch | str,
    *,
    num_classes: int = 10,
    seed: int = 42,
    channels: int = 16,
    cells_per_stage: int = 5,
    input_size: int = 32,
) -> onnx.ModelProto:
    """The TinyNetwork of `arch` with input "input" (N, 3, input_size, input_size) float32 and output "logits"
    (N, num_classes); opset 17, IR 8; weights drawn from `np.random.default_rng(seed)` in module order, so one
    arch and seed always give identical bytes."""
    if isinstance(arch, str):
        from gradsign_rs.spaces.nb201 import Arch  # deferred: nb201 imports this module

        arch = Arch.parse(arch)
    _check_options(num_classes, seed, channels, cells_per_stage, input_size)
    w = _GraphWriter(int(seed))
    x = _conv(w, INPUT_NAME, "stem.0", 3, channels, 3, 1, pad=1)
    x = _batch_norm(w, x, "stem.1", channels, affine=True)
    stage_channels = [channels, 2 * channels, 4 * channels]
    index = 0
    for stage, width in enumerate(stage_channels):
        if stage > 0:
            x = _reduction_block(w, x, f"cells.{index}", stage_channels[stage - 1], width)
            index += 1
        for _ in range(cells_per_stage):
            x = _cell(w, x, f"cells.{index}", arch.edges, width)
            index += 1
    width = stage_channels[-1]
    x = _batch_norm(w, x, "lastact.0", width, affine=True)
    x = w.node("Relu", [x], "lastact.1")
    x = w.node("GlobalAveragePool", [x], "global_pooling")
    x = w.node("Flatten", [x], "flatten", axis=1)
    weight = w.uniform("classifier.weight", (num_classes, width), fan_in=width)
    bias = w.uniform("classifier.bias", (num_classes,), fan_in=width)
    w.node("Gemm", [x, weight, bias], OUTPUT_NAME, transB=1)

    return w.model(
        "nb201_tiny_network",
        input_size,
        num_classes,
        f"NAS-Bench-201 TinyNetwork C={channels} N={cells_per_stage} seed={seed} cell {arch}",
        {"nb201.arch": str(arch), "seed": str(seed)},
    )
