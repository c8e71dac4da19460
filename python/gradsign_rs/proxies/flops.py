"""flops: multiply-accumulate operations of one forward pass, read from the ONNX graph."""

from __future__ import annotations

import math

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import static_shapes
from gradsign_rs.frontend.pin import pin_batch
from gradsign_rs.proxies import graphs
from gradsign_rs.proxies.workspace import Workspace


def count_macs(network: graphs.Network) -> int:
    """Multiply-accumulates per sample in Conv, Gemm and MatMul (shapes inferred at batch 1).

    Conv: output elements x (input channels / groups) x kernel area; Gemm / MatMul: output elements x inner
    dimension. Element-wise ops, BatchNorm, pooling and biases are not counted (they are a small, near-constant
    share in convolutional networks).
    """
    proto = pin_batch(network.proto, network.data_input, network.logits, 1)
    shapes = static_shapes(proto)
    total = 0
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        out, a, w = shapes.get(node.output[0]), shapes.get(node.input[0]), shapes.get(node.input[1])
        if out is None or a is None or w is None:
            raise GradSignError(f"flops: cannot infer the shapes around node {node.name or node.output[0]!r}")
        if node.op_type == "Conv":
            inner = math.prod(w[1:])
        elif node.op_type == "Gemm":
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            inner = a[0] if trans_a else a[-1]
        else:
            inner = a[-1]
        total += math.prod(out) * inner
    return total


def flops(workspace: Workspace) -> float:
    """Multiply-accumulates per sample (a count; see `count_macs`)."""
    return float(count_macs(workspace.network))
