"""Pick the logits output: the float (N, classes) scores that the cross-entropy of the paper is taken on.

Exporters put other things first or on top: a label output (sklearn, some Keras exports), a ZipMap of class
probabilities (sklearn), a final Softmax (Keras `activation="softmax"`). The cross-entropy of the paper is
log-softmax of the logits; so a final Softmax is skipped (its input is the logits), log-probabilities are used as
they are (log-softmax of log-probabilities is themselves), and probabilities without their logits are scored as
log-probabilities through a Log (softmax(log p) = p when p sums to 1).
"""

from __future__ import annotations

import onnx
from onnx import helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import Names, attribute, copy_model, node_label, ranks
from gradsign_rs.frontend.prune import keep_outputs

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
_PASS_THROUGH = {"Identity", "Cast"}


def _is_float_tensor(value: onnx.ValueInfoProto) -> bool:
    return value.type.HasField("tensor_type") and value.type.tensor_type.elem_type in _FLOAT_TYPES


def _producer(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    return next((node for node in graph.node if name in node.output), None)


def _is_zipmap(node: onnx.NodeProto | None) -> bool:
    return node is not None and node.op_type == "ZipMap"


def select_logits(
    model: onnx.ModelProto, source: str, *, output: str | None = None
) -> tuple[onnx.ModelProto, str, tuple[str, ...]]:
    """A copy of `model` whose only output is the logits (other outputs and what only they read removed), the
    logits' name, and notes on what was done (for the Score's protocol notes)."""
    out = model  # copied only if a node is added
    graph = model.graph
    names = [o.name for o in graph.output]
    if not names:
        raise GradSignError(f"{source}: the model has no outputs")
    if output is not None and output not in names:
        raise GradSignError(f"{source}: no output named {output!r}; outputs are {names}")
    notes: list[str] = []
    chosen = output
    if chosen is None:
        usable = [o for o in graph.output if _is_float_tensor(o) or _is_zipmap(_producer(graph, o.name))]
        if not usable:
            raise GradSignError(f"{source}: no floating-point output among {names}; GradSign needs (N, classes) logits")
        chosen = usable[0].name
        if chosen != names[0]:
            notes.append(f"output {names[0]!r} is not a float score tensor: scored on output {chosen!r}")
    tensor, producer = chosen, _producer(graph, chosen)
    probabilities = False
    if producer is not None and producer.op_type == "ZipMap":
        tensor, probabilities = producer.input[0], True
        notes.append(f"output {chosen!r} is a ZipMap of probabilities: scored on the tensor {tensor!r} it wraps")
    # Walk back through Identity/Cast to a final Softmax or LogSoftmax.
    walk = tensor
    producer = _producer(graph, walk)
    while producer is not None and producer.op_type in _PASS_THROUGH:
        walk = producer.input[0]
        producer = _producer(graph, walk)
    is_softmax = producer is not None and producer.op_type in ("Softmax", "LogSoftmax")
    rank = ranks(model).get(walk) if is_softmax else None
    last_axis = producer is not None and is_softmax and attribute(producer, "axis", -1) in (-1, (rank or 2) - 1)
    if producer is not None and producer.op_type == "Softmax" and last_axis:
        tensor = producer.input[0]
        notes.append(f"scored on the logits {tensor!r} before the final Softmax (node {node_label(producer)!r})")
    elif producer is not None and producer.op_type == "LogSoftmax" and last_axis:
        tensor = walk  # log-softmax of log-probabilities is themselves: the loss is unchanged
    elif probabilities:
        out = copy_model(model)
        logp = Names(out).fresh(f"{tensor}.log")
        out.graph.node.append(helper.make_node("Log", [tensor], [logp], name=f"{logp}/Log"))
        notes.append(f"probabilities {tensor!r} have no Softmax to undo: scored on their logarithm (log-probabilities)")
        tensor = logp
    kept = next((o for o in out.graph.output if o.name == tensor), None)
    kept = kept if kept is not None else helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
    return keep_outputs(out, [kept]), tensor, tuple(notes)


def check_logits_rank(source: str, logits: str, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse logits whose static shape (`shapes`, inferred at batch 1) is not (1, classes); an unknown shape is
    checked on the first forward pass."""
    shape = shapes.get(logits)
    if shape is not None and len(shape) != 2:
        shown = "(N" + "".join(f", {d}" for d in shape[1:]) + ")" if shape else "()"
        raise GradSignError(f"{source}: output {logits!r} has shape {shown}; GradSign needs (N, classes) logits")
