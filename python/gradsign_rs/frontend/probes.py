"""Probes the proxies read through the gradient graph: channel probes on the scored layers' outputs (fisher) and
ReLUs whose rectification pattern is fed (grasp's finite differences)."""

from __future__ import annotations

import onnx
from onnx import helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import copy_model, static_shapes
from gradsign_rs.frontend.weights import ScoredWeight, node_weight

PROBE_SUFFIX = ".proxy_probe"
MASK_SUFFIX = ".proxy_relu_mask"


def insert_probes(model: onnx.ModelProto, weights: list[ScoredWeight], batch: int) -> tuple[onnx.ModelProto, dict]:
    """Multiply the output of every node that reads a scored weight (as its weight operand) by a ones input of
    shape (B, C, 1...); returns weight -> [(probe, shape)], one entry per such node (a shared weight has several).
    Returns the copy and that map."""
    model = copy_model(model)
    shapes = static_shapes(model)
    by_name = {w.name: w for w in weights}
    inits = {t.name: t for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    probes: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    nodes = []
    for node in model.graph.node:
        nodes.append(node)
        weight = by_name.get(node_weight(node, producers, inits) or "")
        if weight is None:
            continue
        output = node.output[0]
        shape = shapes.get(output)
        if shape is None or len(shape) < 2 or shape[0] != batch:
            label = node.name or output
            raise GradSignError(f"fisher: cannot infer the output shape of node {label!r} (got {shape})")
        probe = f"{weight.name}{PROBE_SUFFIX}.{len(probes.get(weight.name, []))}"
        probe_shape = (batch, shape[1]) + (1,) * (len(shape) - 2)
        unprobed = output + ".unprobed"
        node.output[0] = unprobed
        nodes.append(helper.make_node("Mul", [unprobed, probe], [output], name=probe + "/Mul"))
        model.graph.input.append(helper.make_tensor_value_info(probe, onnx.TensorProto.FLOAT, list(probe_shape)))
        probes.setdefault(weight.name, []).append((probe, probe_shape))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, probes


def relus_to_masks(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy with every Relu(x) replaced by x * mask (a fed float input shaped like x), and x -> mask name."""
    model = copy_model(model)
    # Concrete shapes: onnxruntime's pooling gradients corrupt memory when an input's shape is unknown.
    shapes = static_shapes(model)
    masks: dict[str, str] = {}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Relu":
            nodes.append(node)
            continue
        x = node.input[0]
        mask = masks.setdefault(x, x + MASK_SUFFIX)
        nodes.append(helper.make_node("Mul", [x, mask], [node.output[0]], name=(node.name or x) + "/masked"))
    for x, mask in masks.items():
        if x not in shapes:
            raise GradSignError(f"grasp: cannot infer the shape of ReLU input {x!r} to freeze its pattern")
        model.graph.input.append(helper.make_tensor_value_info(mask, onnx.TensorProto.FLOAT, list(shapes[x])))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, masks
