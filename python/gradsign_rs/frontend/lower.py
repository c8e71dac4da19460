"""Rewrite the ops onnxruntime-training 1.19 cannot differentiate on CPU into exact equivalents it can.

See gradient_ops (what the probe found) and the lower_* modules (the math of each rewrite). Each pass rewrites
only its own op, so their order does not change the result; Mish is lowered inline (it leaves no Softplus). The
reductions run last: ReduceMax, ReduceMin and GlobalMaxPool need static shapes, which onnx shape inference finds
through the lowered forms of earlier ops but not always through the originals (GroupNormalization-21 has none).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from gradsign_rs.frontend._graph import copy_model, is_default_domain
from gradsign_rs.frontend.lower_activations import (
    lower_celu,
    lower_elu,
    lower_hard_sigmoid,
    lower_hard_swish,
    lower_mish,
    lower_prelu,
    lower_selu,
    lower_softplus,
    lower_thresholded_relu,
)
from gradsign_rs.frontend.lower_einsum import lower_einsum
from gradsign_rs.frontend.lower_normalization import lower_group_normalization, lower_instance_normalization
from gradsign_rs.frontend.lower_reductions import (
    lower_global_max_pool,
    lower_mean,
    lower_reduce_max,
    lower_reduce_min,
    lower_reduce_sum_square,
    lower_sum,
)
from gradsign_rs.frontend.lower_resize import lower_resize

# op_type (default domain) -> the pass that rewrites it, in the order `lower` applies them.
LOWERINGS: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "HardSwish": lower_hard_swish,
    "HardSigmoid": lower_hard_sigmoid,
    "Mish": lower_mish,
    "Softplus": lower_softplus,
    "PRelu": lower_prelu,
    "Elu": lower_elu,
    "Selu": lower_selu,
    "Celu": lower_celu,
    "ThresholdedRelu": lower_thresholded_relu,
    "InstanceNormalization": lower_instance_normalization,
    "GroupNormalization": lower_group_normalization,
    "Einsum": lower_einsum,
    "Resize": lower_resize,
    "Sum": lower_sum,
    "Mean": lower_mean,
    "ReduceSumSquare": lower_reduce_sum_square,
    "ReduceMax": lower_reduce_max,
    "ReduceMin": lower_reduce_min,
    "GlobalMaxPool": lower_global_max_pool,
}


def lower(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every default-domain node of an op in LOWERINGS rewritten (GradSignError, naming the
    node, for one a pass cannot handle; integer ReduceMax/ReduceMin, which carry no gradient, stay); the passes of
    absent ops do not run."""
    present = {node.op_type for node in model.graph.node if is_default_domain(node)}
    if not present & set(LOWERINGS):
        return model
    out = copy_model(model)
    for op_type, lower_pass in LOWERINGS.items():
        if op_type in present:
            out = lower_pass(out)
    return out
