"""Give every normalisation node its own parameter tensors.

Exporters share equal tensors between nodes (torch's default export shares LayerNorm scale/bias; fresh BatchNorm
scales are all ones), and onnxruntime's gradient builder defines `<param>_grad` once per normalisation node that
reads it: "Duplicate definition". torch's training export also writes a parameter equal to another as Identity(other).
Copies keep the values; the scored weights (Conv/MatMul) are never copied.
"""

from __future__ import annotations

import onnx

from gradsign_rs.frontend._graph import Names, copy_model, node_label

# Normalisation ops and the input positions that hold their parameters.
NORMALIZATION_PARAMETERS = {
    "BatchNormalization": (1, 2, 3, 4),
    "LayerNormalization": (1, 2),
    "InstanceNormalization": (1, 2),
    "GroupNormalization": (1, 2),
}


def unshare_parameters(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where no initializer is read as a parameter by two normalisation nodes, or by one twice."""
    reads = [
        node.input[p]
        for node in model.graph.node
        for p in NORMALIZATION_PARAMETERS.get(node.op_type, ())
        if p < len(node.input) and node.input[p]
    ]
    identity_outputs = {n.output[0] for n in model.graph.node if n.op_type == "Identity" and n.output}
    if len(set(reads)) == len(reads) and not set(reads) & identity_outputs:
        return model
    out = copy_model(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    identities = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input and n.output}
    names = Names(out)
    seen: set[str] = set()
    for node in graph.node:
        for position in NORMALIZATION_PARAMETERS.get(node.op_type, ()):
            if position >= len(node.input):
                continue
            name, hops = node.input[position], 0
            while name not in inits and name in identities and hops < 16:  # an Identity of a parameter
                name, hops = identities[name], hops + 1
            if name not in inits:
                continue
            if name in seen or hops:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = names.fresh(f"{name}.{node_label(node)}.{position}")
                graph.initializer.append(copy)
                node.input[position] = copy.name
            else:
                seen.add(name)
    return out


def normalization_parameters(graph: onnx.GraphProto) -> set[str]:
    """Every parameter tensor of a normalisation node (fed as inputs: onnxruntime merges equal initializers)."""
    return {
        node.input[p]
        for node in graph.node
        for p in NORMALIZATION_PARAMETERS.get(node.op_type, ())
        if p < len(node.input) and node.input[p]
    }
