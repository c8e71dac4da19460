"""The front end as one composition of passes: any exported classifier in, one prepared `Network` out.

`score()`, every proxy and `gradsign batch` consume the Network this builds; nothing else prepares a graph.
Order matters where a pass reads what another writes: outputs are chosen before versions are converted (a
sklearn label branch of ai.onnx.ml ops is dropped first), the protocol is judged before lowering (lowered norms
would hide what the exporter wrote), and K is chosen before lowering (an Einsum weight stays in K).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import onnx

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend import weights as weights_module
from gradsign_rs.frontend._graph import static_shapes
from gradsign_rs.frontend.constants import constants_to_initializers
from gradsign_rs.frontend.deterministic import make_deterministic
from gradsign_rs.frontend.differentiable import check_differentiable
from gradsign_rs.frontend.inputs import select_data_input
from gradsign_rs.frontend.load import check_finite_parameters, load_model
from gradsign_rs.frontend.lower import lower
from gradsign_rs.frontend.names import name_nodes
from gradsign_rs.frontend.optional_outputs import declare_optional_outputs
from gradsign_rs.frontend.outputs import check_logits_rank, select_logits
from gradsign_rs.frontend.padding import explicit_padding
from gradsign_rs.frontend.pin import pin_batch
from gradsign_rs.frontend.protocol import (
    Protocol,
    assess,
    batchnorm_as_exported,
    batchnorm_training_mode,
    check_statistics,
)
from gradsign_rs.frontend.unshare import unshare_parameters
from gradsign_rs.frontend.versions import normalize_versions
from gradsign_rs.frontend.weights import ScoredWeight

NUMPY_OF_ONNX = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
}
BATCHNORM_MODES = ("train", "as_exported")


@dataclasses.dataclass(frozen=True)
class Network:
    """A prepared classifier: one data input, one logits output, only ops onnxruntime-training differentiates."""

    proto: onnx.ModelProto
    source: str
    data_input: str
    input_dims: tuple[int | str | None, ...]
    input_dtype: type
    logits: str
    weights: tuple[ScoredWeight, ...]
    protocol: Protocol
    # Initializers that were Constant nodes in the model: values, not parameters.
    constants: frozenset[str] = frozenset()


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)


def prepare_network(
    model: object,
    *,
    weights: str | list[str] = "conv_linear",
    batchnorm: str = "train",
    input: str | None = None,
    output: str | None = None,
    constant_inputs: dict[str, np.ndarray] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Network:
    """Run every front-end pass on `model` (path, os.PathLike, bytes or ModelProto; see the module docstring).

    batchnorm: "train" (BatchNorm in training mode on each sample's statistics, the paper's setting) or
    "as_exported" (inference-mode BatchNorm kept on its running statistics; flagged as not the paper's protocol).
    input / output: the data input and logits output by name (default: the one unfixed input; the first float
    output, past a final Softmax). constant_inputs: values for other graph inputs.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise GradSignError(f"batchnorm must be 'train' or 'as_exported', got {batchnorm!r}")
    proto, source = load_model(model, base_dir=base_dir)
    proto = name_nodes(proto)
    before = {t.name for t in proto.graph.initializer}
    proto = constants_to_initializers(proto)
    constants = frozenset(t.name for t in proto.graph.initializer) - before
    proto, data = select_data_input(proto, source, input=input, constant_inputs=constant_inputs)
    proto, logits, output_notes = select_logits(proto, source, output=output)
    proto = name_nodes(normalize_versions(proto, source))
    data_info = next(vi for vi in proto.graph.input if vi.name == data)
    elem = data_info.type.tensor_type.elem_type
    if elem not in NUMPY_OF_ONNX:
        raise GradSignError(
            f"{source}: data input {data!r} has element type {onnx.TensorProto.DataType.Name(elem)}; "
            "gradients need a floating-point input"
        )
    proto, random_notes = make_deterministic(proto, source)
    shapes = static_shapes(pin_batch(proto, data, logits, 1))
    check_logits_rank(source, logits, shapes)
    check_statistics(proto, source, shapes)
    protocol = assess(proto, batchnorm=batchnorm, shapes=shapes, notes=output_notes + random_notes)
    chosen = weights_module.scored_weights(proto, weights)
    if not chosen:
        foreign = next((n for n in proto.graph.node if n.domain and n.domain not in ("ai.onnx",)), None)
        hint = (
            (
                f"; its node {foreign.name!r} is a {foreign.domain} {foreign.op_type}, whose weights are attributes "
                "that no gradient reaches (export the model with standard ONNX layers)"
            )
            if foreign is not None
            else ""
        )
        raise GradSignError(
            f"{source}: no scored weights: the model has no Conv, Gemm, MatMul or Einsum whose weight is a float32 "
            f"initializer{hint}"
        )
    check_finite_parameters(proto, source, {w.name for w in chosen})
    proto = declare_optional_outputs(unshare_parameters(proto))
    proto = explicit_padding(lower(proto), source)
    # Inference-mode BatchNorm nodes (tf2onnx, jax2onnx, eval exports) get training_mode=1 explicitly: onnxruntime's
    # gradient builder keeps the mode a node declares.
    if batchnorm == "as_exported":
        proto = batchnorm_as_exported(proto)
    else:
        trained = batchnorm_training_mode(proto)
        assert trained is not None, "normalize_versions brings every model to opset >= 14"
        proto = trained
    check_differentiable(proto, source, {w.name for w in chosen}, logits)
    return Network(
        proto=proto,
        source=source,
        data_input=data,
        input_dims=_dims(data_info),
        input_dtype=NUMPY_OF_ONNX[elem],
        logits=logits,
        weights=tuple(chosen),
        protocol=protocol,
        constants=constants,
    )
