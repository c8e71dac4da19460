"""The loss node on top of the logits, and the tensors fed as inputs on every run (the last passes before the
gradient builder)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs.frontend._graph import copy_model

LABELS = "gradsign.labels"
LOSS = "gradsign.loss"
LOG_PROB = "gradsign.log_prob"
# A fed scalar multiplying a sum_logits loss, and so every gradient (synflow's overflow guard).
LOSS_SCALE = "proxy.loss_scale"


def _logits_info(graph: onnx.GraphProto, logits: str) -> onnx.ValueInfoProto:
    found = next((o for o in graph.output if o.name == logits), None)
    return found if found is not None else helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None)


def add_cross_entropy(
    model: onnx.ModelProto, logits: str, batch: int, *, name: str = "gradsign/loss"
) -> onnx.ModelProto:
    """A copy with integer labels (shape (batch,)) and the mean softmax cross-entropy of the logits as the scalar
    output LOSS; the outputs become [LOSS, logits]. The node declares its log-probabilities output, which the
    gradient builder reads."""
    out = copy_model(model)
    graph = out.graph
    graph.input.append(helper.make_tensor_value_info(LABELS, onnx.TensorProto.INT64, [batch]))
    graph.node.append(helper.make_node("SoftmaxCrossEntropyLoss", [logits, LABELS], [LOSS, LOG_PROB], name=name))
    info = _logits_info(graph, logits)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(LOSS, onnx.TensorProto.FLOAT, []), info])
    return out


def add_sum_logits(model: onnx.ModelProto, logits: str) -> onnx.ModelProto:
    """A copy whose scalar output LOSS is LOSS_SCALE * Σ of the whole logits tensor (jacob_cov, synflow); the
    outputs become [LOSS, logits]."""
    out = copy_model(model)
    graph = out.graph
    total = LOSS + ".unscaled"
    graph.node.append(helper.make_node("ReduceSum", [logits], [total], keepdims=0, name="proxy/sum"))
    graph.node.append(helper.make_node("Mul", [total, LOSS_SCALE], [LOSS], name="proxy/loss"))
    graph.input.append(helper.make_tensor_value_info(LOSS_SCALE, onnx.TensorProto.FLOAT, []))
    info = _logits_info(graph, logits)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(LOSS, onnx.TensorProto.FLOAT, []), info])
    return out


def feed_as_inputs(model: onnx.ModelProto, names: set[str]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A copy with the named initializers moved to graph inputs, and their values (to be fed on every run).

    Fed: the differentiated weights, and every normalisation parameter, because onnxruntime merges equal
    initializers (fresh BatchNorm scales are all ones) and two nodes sharing one parameter break its gradient
    builder ("Duplicate definition")."""
    out = copy_model(model)
    graph = out.graph
    values, kept = {}, []
    for tensor in graph.initializer:
        if tensor.name in names:
            values[tensor.name] = numpy_helper.to_array(tensor).copy()
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        else:
            kept.append(tensor)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return out, values
