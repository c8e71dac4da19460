"""Explicit padding: `auto_pad` written out as `pads`.

onnxruntime's ConvGrad (and the pooling gradients) read the `pads` attribute only: with auto_pad="SAME_UPPER"
(jax2onnx writes it for every "SAME" convolution) the forward pass pads but the gradient is computed as if it did
not, and every upstream weight gets a wrong gradient. Written out from the static input shape, the node computes
the same function and its gradient is right.
"""

from __future__ import annotations

import math

import onnx
from onnx import helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import attribute, copy_model, node_label, static_shapes

PADDED_OPS = ("Conv", "MaxPool", "AveragePool", "LpPool")


def same_pads(sizes: list[int], kernel: list[int], strides: list[int], dilations: list[int], mode: str) -> list[int]:
    """ONNX's SAME_UPPER / SAME_LOWER padding as explicit [begin..., end...]: output size ceil(in / stride); the
    odd pixel goes at the end (UPPER) or the beginning (LOWER)."""
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def explicit_padding(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """A copy where every Conv/pooling node with auto_pad SAME_UPPER, SAME_LOWER or VALID has explicit `pads`."""
    if not any(n.op_type in PADDED_OPS and attribute(n, "auto_pad", "NOTSET") != "NOTSET" for n in model.graph.node):
        return model
    out = copy_model(model)
    shapes = static_shapes(out, symbolic=True)
    for node in out.graph.node:
        mode = attribute(node, "auto_pad", "NOTSET")
        if node.op_type not in PADDED_OPS or mode == "NOTSET":
            continue
        spatial = shapes.get(node.input[0], ())[2:]
        kernel = attribute(node, "kernel_shape", None)
        if kernel is None and node.op_type == "Conv":
            kernel = list(shapes.get(node.input[1], ())[2:]) or None
        if kernel is None or not spatial or not all(isinstance(d, int) for d in spatial):
            raise GradSignError(
                f"{source}: node {node_label(node)!r} ({node.op_type}) pads with auto_pad={mode}, which onnxruntime's "
                "gradient ignores, and its input's spatial size is not known statically to write the padding out; "
                "export with explicit padding or a static image size"
            )
        rank = len(kernel)
        strides = list(attribute(node, "strides", [1] * rank))
        dilations = list(attribute(node, "dilations", [1] * rank))
        pads = [0] * (2 * rank) if mode == "VALID" else same_pads(list(spatial), list(kernel), strides, dilations, mode)
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", pads)])
    return out
