"""Name every node: onnxruntime's errors and ours name nodes, and an unnamed node makes a message useless."""

from __future__ import annotations

import onnx

from gradsign_rs.frontend._graph import copy_model


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every node has a unique name: unnamed or repeated names become `<op>_<index>`."""
    names = [node.name for node in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return model
    out = copy_model(model)
    taken = {node.name for node in out.graph.node if node.name}
    seen: set[str] = set()
    for index, node in enumerate(out.graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        name, k = f"{node.op_type}_{index}", 1
        while name in taken or name in seen:
            name, k = f"{node.op_type}_{index}_{k}", k + 1
        node.name = name
        seen.add(name)
    return out
