"""onnxruntime's errors in one sentence: the raw text carries a C++ source path, a lambda signature and a status
code; users need the node, its op and what to do. Every place that calls onnxruntime turns its exceptions into a
GradSignError here."""

from __future__ import annotations

import re

import onnx

from gradsign_rs._core import GradSignError

# "<path>.cc:123 <C++ signature> [ONNXRuntimeError] : 1 : FAIL : <message>": the message is the last segment.
_STATUS = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*(.*)", re.S)
_CPP_LOCATION = re.compile(r"^\S+\.(?:cc|h|cpp):\d+\s+[^\n]*?\)\s*", re.S)
_NODE_NAME = re.compile(r"[Nn]ode(?: name)?\s*[:(]?\s*'?\"?([\w./:\-]+)")
_NO_BUILDER = re.compile(r"gradient builder has not been registered: (\S+) for node (.+?)\s*$", re.M)
_ADVICE = {
    "Duplicate definition": "a parameter is shared between nodes in a way the gradient builder cannot accumulate",
    "OutputDefs().size()": "a node is missing optional outputs that its gradient needs",
}


def _message(text: str) -> str:
    """The human part of an onnxruntime error text, on one line."""
    match = _STATUS.search(text)
    message = match.group(1) if match else _CPP_LOCATION.sub("", text.strip())
    return " ".join(message.split())[:400]


def _op_of(model: onnx.ModelProto | None, name: str) -> str | None:
    if model is None:
        return None
    return next((node.op_type for node in model.graph.node if node.name == name), None)


def explain(
    exc: BaseException, *, source: str, what: str, model: onnx.ModelProto | bytes | None = None
) -> GradSignError:
    """A GradSignError for an onnxruntime failure while doing `what`, naming the node and op when the text allows."""
    text = str(exc)
    if isinstance(model, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(model))
        except Exception:
            model = None
    missing = _NO_BUILDER.search(text)
    if missing:
        return GradSignError(
            f"{source}: onnxruntime-training cannot differentiate op {missing.group(1)} (node {missing.group(2)!r}); "
            "replace it or export the model without it"
        )
    message = _message(text)
    node = None
    if model is not None:  # every node is named by the front end: find the first one the text mentions
        node = next((n.name for n in model.graph.node if n.name and n.name in text), None)
    if node is None:
        found = _NODE_NAME.search(message)
        node = found.group(1) if found else None
    where = ""
    if node is not None:
        op = _op_of(model if isinstance(model, onnx.ModelProto) else None, node)
        where = f" at node {node!r}" + (f" (op {op})" if op else "")
    advice = next((hint for key, hint in _ADVICE.items() if key in text), None)
    hint = f"; {advice}" if advice else ""
    return GradSignError(
        f"{source}: onnxruntime failed while {what}{where}: {message}{hint}. If the model runs in onnxruntime for "
        "inference, please report this with the model attached"
    )
