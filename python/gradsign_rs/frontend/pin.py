"""Pin the batch dimension: onnxruntime's pooling gradients need concrete shapes."""

from __future__ import annotations

import onnx

from gradsign_rs.frontend._graph import copy_model


def pin_batch(model: onnx.ModelProto, data: str, logits: str, batch: int) -> onnx.ModelProto:
    """A copy with batch size `batch` declared on the data input and the logits, and stale intermediate shapes
    dropped. With a symbolic batch ("N"), onnxruntime's AveragePoolGrad takes its output shape from the static graph
    shapes as batch 0, which silently corrupts gradients or crashes the process (SIGFPE)."""
    out = copy_model(model)
    for value in list(out.graph.input) + list(out.graph.output):
        if value.name in (data, logits) and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if len(dims) > 0:
                dims[0].Clear()
                dims[0].dim_value = batch
    del out.graph.value_info[:]
    return out
