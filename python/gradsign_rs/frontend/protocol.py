"""The paper's protocol for normalisation: BatchNorm in training mode with each sample's own statistics.

Three things live here: whether a graph can follow the protocol at all (an eval-mode export folds BatchNorm into
the convolutions, and no pass can unfold it), the check that per-sample statistics are not degenerate (one value
per channel normalises everything to 0, and torch refuses it), and the two BatchNorm rewrites (training mode for
forward-only graphs; the fixed affine map for batchnorm="as_exported").
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import attribute, copy_model, default_opset, node_label, ranks, static_shapes

# metadata_props key written by gradsign_rs.from_torch: a training-mode export folds nothing.
EXPORT_MARK = "gradsign_rs.export"
NORMALIZATION_OPS = {"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"}
# Ops between a Conv and the normalisation that follows it in exported graphs (bias adds, layout changes).
_BETWEEN = {"Identity", "Add", "Transpose", "Reshape", "Flatten", "Concat", "Cast"}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Whether a score follows the paper's protocol; `reasons` say why not, `notes` what was adapted exactly."""

    follows_paper: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """ "paper" or "flagged" (the value of the `protocol` column of batch tables)."""
        return "paper" if self.follows_paper else "flagged"


def _inference_mode(node: onnx.NodeProto) -> bool:
    return attribute(node, "training_mode", 0) != 1 and len([o for o in node.output if o]) == 1


def _is_normalised(conv: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]) -> bool:
    """Whether a normalisation reads the Conv's output, possibly through a bias Add or a layout change: a
    normalisation node, or statistics taken with ReduceMean (BatchNorm written out in primitive ops by tf2onnx)."""
    frontier, seen = [conv.output[0]], set[str]()
    while frontier:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if node.op_type in NORMALIZATION_OPS or node.op_type == "ReduceMean":
                return True
            if node.op_type in _BETWEEN and node.output and node.output[0] not in seen and len(seen) < 8:
                seen.add(node.output[0])
                frontier.append(node.output[0])
    return False


# How exporters name a Conv that absorbed a BatchNorm: tf2onnx keeps the BatchNorm's name ("bn0/batchnorm/mul_1"),
# torch's dynamo exporter records the folded module in the node's metadata ("bn1: ...BatchNorm2d").
_BATCHNORM_NAME = re.compile(r"batch_?norm|\bbn\d*\b", re.IGNORECASE)


def _named_after_batchnorm(node: onnx.NodeProto) -> bool:
    return bool(_BATCHNORM_NAME.search(node.name)) or any(_BATCHNORM_NAME.search(p.value) for p in node.metadata_props)


def assess(
    model: onnx.ModelProto,
    *,
    batchnorm: str = "train",
    shapes: dict[str, tuple[int, ...]] | None = None,
    notes: tuple[str, ...] = (),
) -> Protocol:
    """Judge an exported graph (before lowering) against the protocol. Convolutions whose output is a single
    position per channel (squeeze-excite, heads) never carry BatchNorm and are not counted."""
    graph = model.graph
    shapes = shapes if shapes is not None else static_shapes(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    convs = [n for n in graph.node if n.op_type == "Conv" and math.prod(shapes.get(n.output[0], (1, 1, 2))[2:]) > 1]
    norms = [n for n in graph.node if n.op_type in NORMALIZATION_OPS]
    batchnorms = [n for n in norms if n.op_type == "BatchNormalization"]
    bare = [n for n in convs if not _is_normalised(n, consumers)]
    reasons: list[str] = []
    adaptations = list(notes)
    # A training-mode export folds nothing: from_torch marks its exports, other exporters keep training-mode BN.
    training_export = any(p.key == EXPORT_MARK and p.value == "training" for p in model.metadata_props)
    training_export = training_export or any(not _inference_mode(n) for n in batchnorms)
    folded = [n for n in bare if _named_after_batchnorm(n)]
    if folded and not training_export:
        reasons.append(
            f"BatchNorm was folded into {len(folded)} Conv layer(s) at export (first: {node_label(folded[0])!r}, which "
            "the exporter names after a BatchNorm; an eval-mode export): this is not the paper's quantity; export in "
            "training mode (gradsign_rs.from_torch; see the README for Keras and JAX)"
        )
    elif bare and len(bare) == len(convs) and not norms and not training_export:
        reasons.append(
            f"no normalisation after any of the {len(convs)} Conv layer(s): if the network has BatchNorm, it was "
            "folded into the convolutions at export (an eval-mode export) and this is not the paper's quantity; "
            "export in training mode (gradsign_rs.from_torch; see the README for Keras and JAX)"
        )
    elif bare and any(_inference_mode(n) for n in batchnorms) and not training_export:
        reasons.append(
            f"BatchNorm looks partly folded: {len(bare)} of the {len(convs)} Conv layer(s) (first: "
            f"{node_label(bare[0])!r}) have no normalisation after them in a graph exported in inference mode; export "
            "in training mode (gradsign_rs.from_torch)"
        )
    if batchnorms and batchnorm == "as_exported":
        reasons.append(
            "batchnorm='as_exported': BatchNorm runs on the exported running statistics, not on each "
            "sample's own (the paper's setting)"
        )
    elif any(_inference_mode(n) for n in batchnorms) and not reasons:
        adaptations.append("BatchNorm exported in inference mode: run in training mode with per-sample statistics")
    return Protocol(follows_paper=not reasons, reasons=tuple(reasons), notes=tuple(adaptations))


def check_statistics(model: onnx.ModelProto, source: str, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse a training-mode BatchNorm whose per-sample statistics have one value per channel (`shapes` at batch
    1): it normalises every value to 0, so every gradient upstream is 0 (torch raises here too)."""
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        shape = shapes.get(node.input[0])
        if shape is not None and math.prod(shape[2:]) == 1:
            raise GradSignError(
                f"{source}: BatchNormalization node {node_label(node)!r} sees input of shape {list(shape)} per sample: "
                "one value per channel, so per-sample statistics normalise it to 0 (torch refuses this in training "
                "mode too); use larger inputs (e.g. --size) or a network that keeps spatial positions there"
            )


def batchnorm_as_exported(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every inference-mode BatchNormalization is its fixed affine map (Mul + Add with frozen
    initializers): onnxruntime's training transformer would otherwise turn it into a training-mode one."""
    out = copy_model(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    known_ranks = ranks(out)
    nodes = []
    for node in graph.node:
        if node.op_type != "BatchNormalization" or attribute(node, "training_mode", 0) == 1:
            nodes.append(node)
            continue
        missing = [name for name in node.input[1:5] if name not in inits]
        if missing:
            raise GradSignError(
                f"BatchNormalization node {node_label(node)!r}: cannot keep it in inference mode, its inputs "
                f"{missing} are not initializers"
            )
        scale, bias, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in node.input[1:5])
        eps = attribute(node, "epsilon", 1e-5)
        mul = scale / np.sqrt(var + eps)
        add = bias - mean * mul
        x = node.input[0]
        # Broadcast (C,) over N x C x spatial: shape (C, 1, ..., 1) with one 1 per spatial axis (unknown rank: 4).
        bshape = (-1,) + (1,) * max(known_ranks.get(x, 4) - 2, 0)
        tag = node_label(node)
        mul_name, add_name = f"{tag}.as_exported.mul", f"{tag}.as_exported.add"
        graph.initializer.append(numpy_helper.from_array(mul.astype(np.float32).reshape(bshape), mul_name))
        graph.initializer.append(numpy_helper.from_array(add.astype(np.float32).reshape(bshape), add_name))
        scaled = f"{tag}.as_exported.scaled"
        nodes.append(helper.make_node("Mul", [x, mul_name], [scaled], name=f"{tag}.as_exported/Mul"))
        nodes.append(helper.make_node("Add", [scaled, add_name], [node.output[0]], name=f"{tag}.as_exported/Add"))
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def batchnorm_training_mode(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy with training_mode=1 on every BatchNormalization (each sample's own statistics), declaring the
    running-statistics outputs training mode requires; None when the opset predates the attribute (13)."""
    if all(
        attribute(n, "training_mode", 0) == 1 and len(n.output) >= 3
        for n in model.graph.node
        if n.op_type == "BatchNormalization"
    ):
        return model
    if (default_opset(model) or 0) < 14:
        return None
    out = copy_model(model)
    batchnorms = [node for node in out.graph.node if node.op_type == "BatchNormalization"]
    for node in batchnorms:
        kept = [a for a in node.attribute if a.name != "training_mode"]  # epsilon and momentum stay
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("training_mode", 1)])
        # Training mode requires the updated running statistics as outputs; nothing reads them.
        while len(node.output) < 3:
            node.output.append(f"{node.output[0]}.unused_statistic{len(node.output)}")
    return out
