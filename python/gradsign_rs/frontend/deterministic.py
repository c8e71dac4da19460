"""Random ops made deterministic and inactive, so that a score is the same on every run (the protocol pass).

Training-mode exports keep Dropout active and stochastic depth drawing a Bernoulli mask. The paper's quantity is
the gradient of the network itself, so every random op is replaced by what an inactive layer computes: Dropout by
its input (and an all-true mask), a Bernoulli draw by its expectation p, which turns the stochastic-depth idiom
x * Bernoulli(p) / p into x exactly. A Bernoulli draw is the Bernoulli op, or torch's training export of
`bernoulli_(p)`: Cast(Less(RandomUniformLike(x), p)). Other random generators have no inactive form and are
refused.
"""

from __future__ import annotations

import onnx
from onnx import helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import Names, attribute, copy_model, is_default_domain, node_label

_GENERATORS = {"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial"}


def make_deterministic(model: onnx.ModelProto, source: str) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """A copy with Dropout and Bernoulli made inactive; notes say what was replaced. Other random ops refused."""
    if not any(node.op_type in ("Dropout", "Bernoulli", *_GENERATORS) for node in model.graph.node):
        return model, ()
    out = copy_model(model)
    names = Names(out)
    read = {name for node in out.graph.node for name in node.input} | {o.name for o in out.graph.output}
    draws = _uniform_bernoulli_draws(out)
    nodes: list[onnx.NodeProto] = []
    dropouts, bernoullis = 0, 0
    for index, node in enumerate(out.graph.node):
        if index in draws:
            replacement = draws[index]
            bernoullis += bool(replacement)
            nodes.extend(replacement)
        elif not is_default_domain(node):
            nodes.append(node)
        elif node.op_type == "Dropout":
            dropouts += 1
            label = node_label(node)
            nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=f"{label}/inactive"))
            if len(node.output) > 1 and node.output[1] in read:  # the mask of an inactive Dropout keeps everything
                shape = names.fresh(f"{label}.shape")
                nodes.append(helper.make_node("Shape", [node.input[0]], [shape], name=f"{label}/mask_shape"))
                nodes.append(
                    helper.make_node(
                        "ConstantOfShape",
                        [shape],
                        [node.output[1]],
                        name=f"{label}/mask",
                        value=helper.make_tensor("true", onnx.TensorProto.BOOL, [1], [True]),
                    )
                )
        elif node.op_type == "Bernoulli":
            bernoullis += 1
            label = node_label(node)
            dtype = attribute(node, "dtype", None)
            if dtype is None:
                nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=f"{label}/mean"))
            else:
                nodes.append(
                    helper.make_node("Cast", [node.input[0]], [node.output[0]], to=int(dtype), name=f"{label}/mean")
                )
        elif node.op_type in _GENERATORS:
            raise GradSignError(
                f"{source}: node {node_label(node)!r} is a random op ({node.op_type}): its value changes on every run "
                "and it has no inactive form; export the model with its random layers in eval mode "
                "(gradsign_rs.from_torch does this for torch modules)"
            )
        else:
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    notes = []
    if dropouts:
        notes.append(f"{dropouts} Dropout node(s) made inactive")
    if bernoullis:
        notes.append(f"{bernoullis} Bernoulli node(s) (stochastic depth) replaced by their expectation")
    return out, tuple(notes)


def _uniform_bernoulli_draws(model: onnx.ModelProto) -> dict[int, list[onnx.NodeProto]]:
    """torch's `bernoulli_(p)` (RandomUniformLike -> Less(u, p) -> Cast): node id -> its replacement, the Cast's
    output as p expanded to the draw's shape (the draw's expectation); [] for the Less and the generator. Nodes are
    keyed by position: protobuf wrappers are not stable objects."""
    nodes = list(model.graph.node)
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    found: dict[int, list[onnx.NodeProto]] = {}
    for position, node in enumerate(nodes):
        if (
            node.op_type != "RandomUniformLike"
            or attribute(node, "low", 0.0) != 0.0
            or attribute(node, "high", 1.0) != 1.0
        ):
            continue
        less_at = consumers.get(node.output[0], [])
        if len(less_at) != 1 or nodes[less_at[0]].op_type != "Less" or nodes[less_at[0]].input[0] != node.output[0]:
            continue
        cast_at = consumers.get(nodes[less_at[0]].output[0], [])
        if len(cast_at) != 1 or nodes[cast_at[0]].op_type != "Cast":
            continue
        less, cast = [nodes[less_at[0]]], [nodes[cast_at[0]]]
        label = node_label(cast[0])
        shape = f"{label}.draw_shape"
        expanded = f"{label}.expectation"
        found[position] = []
        found[less_at[0]] = []
        found[cast_at[0]] = [
            helper.make_node("Shape", [node.input[0]], [shape], name=f"{label}/draw_shape"),
            helper.make_node("Expand", [less[0].input[1], shape], [expanded], name=f"{label}/expectation"),
            helper.make_node("Cast", [expanded], [cast[0].output[0]], to=int(attribute(cast[0], "to")), name=label),
        ]
    return found
