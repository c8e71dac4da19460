"""Refuse, before any expensive work, a graph with an op on a weight-to-logits path that onnxruntime-training
cannot differentiate (after lowering): the gradient builder would fail after seconds and gigabytes with a C++
assertion instead."""

from __future__ import annotations

import onnx

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import is_default_domain, node_label
from gradsign_rs.frontend.weights import _differentiable_inputs, live_nodes


def gradient_path_nodes(model: onnx.ModelProto, sources: set[str], target: str) -> list[onnx.NodeProto]:
    """The nodes on a differentiable path from any tensor in `sources` to `target`, in graph order."""
    backward = live_nodes(model, target)
    reached = set(sources)
    on_path = []
    for index, node in enumerate(model.graph.node):
        if any(name in reached for name in _differentiable_inputs(node)):
            reached.update(node.output)
            if index in backward:
                on_path.append(node)
    return on_path


def check_differentiable(model: onnx.ModelProto, source: str, sources: set[str], target: str) -> None:
    """GradSignError naming the first node on a gradient path whose op has no onnxruntime-training gradient."""
    from gradsign_rs.frontend.gradient_ops import DIFFERENTIABLE_OPS

    for node in gradient_path_nodes(model, sources, target):
        if not is_default_domain(node) or node.op_type not in DIFFERENTIABLE_OPS:
            domain = f" (domain {node.domain})" if node.domain and not is_default_domain(node) else ""
            raise GradSignError(
                f"{source}: node {node_label(node)!r} is a {node.op_type}{domain}, which onnxruntime-training 1.19 "
                "cannot differentiate and gradsign-rs cannot lower to ops it can; it lies between the scored weights "
                "and the logits, so no gradient reaches them: replace the op in the model (or export it without it)"
            )
