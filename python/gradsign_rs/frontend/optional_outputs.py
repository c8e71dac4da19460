"""Declare the optional outputs that onnxruntime's gradient builders read (LayerNormalization's mean and inverse
standard deviation): exporters write one-output nodes, and the builder then fails an assertion on OutputDefs()."""

from __future__ import annotations

import onnx

from gradsign_rs.frontend._graph import Names, copy_model, node_label

# op -> the number of outputs its gradient builder needs declared.
REQUIRED_OUTPUTS = {"LayerNormalization": 3}


def declare_optional_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every node of REQUIRED_OUTPUTS declares all its outputs (fresh names, read by nothing else)."""
    if not any(
        len(node.output) < REQUIRED_OUTPUTS.get(node.op_type, 0) or not all(node.output)
        for node in model.graph.node
        if node.op_type in REQUIRED_OUTPUTS
    ):
        return model
    out = copy_model(model)
    names = Names(out)
    for node in out.graph.node:
        wanted = REQUIRED_OUTPUTS.get(node.op_type, 0)
        for index in range(len(node.output), wanted):
            node.output.append(names.fresh(f"{node_label(node)}.output{index}"))
        for index in range(wanted):
            if not node.output[index]:
                node.output[index] = names.fresh(f"{node_label(node)}.output{index}")
    return out
