"""Load and validate an ONNX classifier and pick the scored weight set K.

Everything here is pure graph surgery on `onnx.ModelProto`; nothing runs a session.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.version_converter
from onnx import helper, numpy_helper

from gradsign_rs._core import GradSignError

# What onnxruntime 1.19 reads (DESIGN.md): newer models are converted down or refused.
MAX_IR_VERSION = 10
MAX_OPSET = 21
# SoftmaxCrossEntropyLoss needs opset >= 13 for the integer-label form the loss node uses.
MIN_OPSET = 13

# Ops a weight may pass through on its way to a Conv/Gemm/MatMul (exporters insert them, e.g. a pre-transposed Linear).
_PASS_THROUGH = {"Identity", "Transpose"}

ModelLike = "str | os.PathLike[str] | onnx.ModelProto | bytes"


@dataclasses.dataclass(frozen=True)
class ScoredWeight:
    """One weight tensor in K: the initializer, the node that consumes it as a weight, and its size."""

    name: str
    node: str
    op_type: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def load_model(model: object) -> tuple[onnx.ModelProto, str]:
    """Return a ModelProto and a short description of where it came from (for error messages)."""
    if isinstance(model, onnx.ModelProto):
        return model, "<ModelProto>"
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(model)), "<bytes>"
        except Exception as exc:
            raise GradSignError(f"<bytes>: not an ONNX model ({exc})") from exc
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise GradSignError(f"model file {str(path)!r} does not exist")
        if not path.is_file():
            raise GradSignError(f"model path {str(path)!r} is not a file")
        try:
            proto = onnx.load(str(path))
        except PermissionError as exc:
            raise GradSignError(f"model file {str(path)!r} is not readable ({exc.strerror})") from exc
        except Exception as exc:
            raise GradSignError(f"{str(path)!r} is not an ONNX model ({type(exc).__name__}: {exc})") from exc
        if not proto.graph.node:
            raise GradSignError(f"{str(path)!r} is not an ONNX model (it parses to an empty graph)")
        return proto, str(path)
    raise GradSignError(
        f"model must be a path, os.PathLike, onnx.ModelProto, bytes or torch.nn.Module, got {type(model).__name__}"
    )


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise GradSignError("the model imports no default-domain opset (ai.onnx); it is not a standard ONNX graph")


def normalize_versions(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """Bring IR version and opset into what onnxruntime 1.19 training reads; refuse what cannot be converted."""
    opset = default_opset(model)
    target = min(max(opset, MIN_OPSET), MAX_OPSET)
    if target != opset:
        try:
            model = onnx.version_converter.convert_version(model, target)
        except Exception as exc:
            raise GradSignError(
                f"{source}: opset {opset} is outside what onnxruntime 1.19 trains ({MIN_OPSET}..{MAX_OPSET}) and "
                f"onnx.version_converter could not convert it to {target}: {exc}"
            ) from exc
    if model.ir_version > MAX_IR_VERSION:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.ir_version = MAX_IR_VERSION
    return model


def constants_to_initializers(model: onnx.ModelProto) -> list[str]:
    """Turn tensor-valued Constant nodes into initializers (in place); returns their names.

    BatchNorm with affine=False exports Constant scale/bias, which makes the gradient builder fail with
    "Duplicate definition"; as frozen initializers they are harmless.
    """
    graph = model.graph
    kept, converted = [], []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            converted.append(tensor.name)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return converted


def pin_batch_to_one(model: onnx.ModelProto, data: str, logits: str) -> None:
    """Declare batch size 1 on the data input and the logits (in place); drop stale intermediate shapes.

    The engine always runs one sample at a time. With a symbolic batch ("N"), onnxruntime's AveragePoolGrad takes
    its output shape from the static graph shapes as batch 0, which silently corrupts gradients or crashes the
    process (SIGFPE); with the batch pinned, every gradient shape is concrete.
    """
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in (data, logits) and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if len(dims) > 0:
                dims[0].Clear()
                dims[0].dim_value = 1
    del model.graph.value_info[:]


def unshare_batchnorm_parameters(model: onnx.ModelProto) -> None:
    """Give every BatchNormalization its own scale/bias/mean/var initializers (in place).

    torch's exporter merges equal initializers (the ones/zeros of fresh BatchNorms), and onnxruntime's gradient
    builder then defines `<scale>_grad` once per BatchNorm: "Duplicate definition". Copies keep the values.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    seen: set[str] = set()
    for node in graph.node:
        if node.op_type != "BatchNormalization":
            continue
        for position in range(1, min(len(node.input), 5)):
            name = node.input[position]
            if name not in inits:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}.{node.name or node.output[0]}.{position}"
                graph.initializer.append(copy)
                node.input[position] = copy.name
            else:
                seen.add(name)


def batchnorm_as_exported(model: onnx.ModelProto) -> None:
    """Rewrite inference-mode BatchNormalization as its fixed affine map (in place), so it stays inference-mode.

    onnxruntime's training transformer turns every BatchNormalization into a training-mode one; written as
    Mul + Add with frozen initializers it keeps the exported running statistics.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        mode = next((a.i for a in node.attribute if a.name == "training_mode"), 0)
        if node.op_type != "BatchNormalization" or mode == 1:
            nodes.append(node)
            continue
        missing = [name for name in node.input[1:5] if name not in inits]
        if missing:
            raise GradSignError(
                f"BatchNormalization node {node.name!r}: cannot keep it in inference mode, its inputs {missing} are not initializers"
            )
        scale, bias, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in node.input[1:5])
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        mul = scale / np.sqrt(var + eps)
        add = bias - mean * mul
        x = node.input[0]
        # Broadcast (C,) over N x C x spatial: shape (C, 1, ..., 1) with one 1 per spatial axis (unknown rank: use 2).
        rank = _known_rank(model, x)
        bshape = (-1,) + (1,) * max((rank or 4) - 2, 0)
        tag = node.name or node.output[0]
        mul_name, add_name = f"{tag}.as_exported.mul", f"{tag}.as_exported.add"
        graph.initializer.append(numpy_helper.from_array(mul.astype(np.float32).reshape(bshape), mul_name))
        graph.initializer.append(numpy_helper.from_array(add.astype(np.float32).reshape(bshape), add_name))
        scaled = f"{tag}.as_exported.scaled"
        nodes.append(helper.make_node("Mul", [x, mul_name], [scaled], name=f"{tag}.as_exported/Mul"))
        nodes.append(helper.make_node("Add", [scaled, add_name], [node.output[0]], name=f"{tag}.as_exported/Add"))
    del graph.node[:]
    graph.node.extend(nodes)


def _known_rank(model: onnx.ModelProto, name: str) -> int | None:
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return None
    for vi in inferred.graph.value_info:
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    return None


def data_input(model: onnx.ModelProto, source: str) -> onnx.ValueInfoProto:
    """The one graph input that is not an initializer: the images/features."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in inits]
    if len(inputs) != 1:
        raise GradSignError(
            f"{source}: expected exactly one data input, found {len(inputs)}: {[vi.name for vi in inputs]}"
        )
    return inputs[0]


def logits_output(model: onnx.ModelProto, source: str, output: str | None) -> str:
    """The output used as logits: `output` if named, else the first graph output."""
    names = [o.name for o in model.graph.output]
    if output is None:
        if not names:
            raise GradSignError(f"{source}: the model has no outputs")
        return names[0]
    if output not in names:
        raise GradSignError(f"{source}: no output named {output!r}; outputs are {names}")
    return output


def check_logits_shape(model: onnx.ModelProto, source: str, logits: str) -> None:
    """Refuse an output whose inferred shape is not (N, classes); unknown shapes are checked at run time."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return  # shape inference is best effort; the loss node still insists on rank 2
    for vi in inferred.graph.output:
        if vi.name == logits and vi.type.tensor_type.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim)
            if len(dims) != 2:
                shown = "(" + ", ".join(str(d) for d in dims) + ")"
                raise GradSignError(f"{source}: output {logits!r} has shape {shown}; GradSign needs (N, classes) logits")


def _weight_source(name: str, producers: dict[str, onnx.NodeProto], inits: set[str]) -> str | None:
    """Follow Identity/Transpose back to an initializer, or None."""
    seen = 0
    while name not in inits:
        node = producers.get(name)
        if node is None or node.op_type not in _PASS_THROUGH or seen > 8:
            return None
        name, seen = node.input[0], seen + 1
    return name


def node_weight(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], inits: dict[str, onnx.TensorProto]) -> str | None:
    """The float32 initializer that a Conv, Gemm or MatMul node uses as its weight (possibly through a Transpose or
    similar), or None: Conv/Gemm read it as input 1; MatMul as its first initializer operand."""
    if node.op_type in ("Conv", "Gemm"):
        candidates = [node.input[1]] if len(node.input) > 1 else []
    elif node.op_type == "MatMul":
        candidates = list(node.input[:2])
    else:
        return None
    for operand in candidates:
        source = _weight_source(operand, producers, set(inits))
        if source is not None and inits[source].data_type == onnx.TensorProto.FLOAT:
            return source
    return None


def scored_weights(model: onnx.ModelProto, weights: str | list[str] = "conv_linear") -> list[ScoredWeight]:
    """K: the weight tensor of every Conv, Gemm, and MatMul with an initializer operand, in graph order.

    `weights` may also be an explicit list of initializer names.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    found: dict[str, ScoredWeight] = {}
    for node in graph.node:
        source = node_weight(node, producers, inits)
        if source is not None and source not in found:
            found[source] = ScoredWeight(source, node.name or node.output[0], node.op_type, tuple(inits[source].dims))
    if weights == "conv_linear":
        return list(found.values())
    if isinstance(weights, str):
        raise GradSignError(f"weights must be 'conv_linear' or a list of initializer names, got {weights!r}")
    chosen = []
    for name in weights:
        if name not in inits:
            raise GradSignError(f"scored weight {name!r} is not an initializer of the model")
        if inits[name].data_type != onnx.TensorProto.FLOAT:
            raise GradSignError(f"scored weight {name!r} is not float32")
        chosen.append(found.get(name) or ScoredWeight(name, "", "", tuple(inits[name].dims)))
    return chosen


# Inputs through which no gradient flows: shapes, indices, masks. Ops not listed pass gradient through every input.
_NO_GRADIENT_OPS = {
    "Shape", "Size", "ConstantOfShape", "EyeLike", "NonZero", "ArgMax", "ArgMin", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round",
    "RandomNormalLike", "RandomUniformLike", "Range", "OneHot",
}
_DATA_INPUTS_ONLY = {
    "Reshape": (0,), "Expand": (0,), "Tile": (0,), "Slice": (0,), "Pad": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
    "Gather": (0,), "GatherElements": (0,), "GatherND": (0,), "Resize": (0,), "Upsample": (0,), "TopK": (0,),
    "ReduceSum": (0,), "ReduceMean": (0,), "ReduceMax": (0,), "ReduceMin": (0,), "Split": (0,), "Where": (1, 2),
    "Dropout": (0,), "CumSum": (0,),
}


def _differentiable_inputs(node: onnx.NodeProto) -> list[str]:
    if node.op_type in _NO_GRADIENT_OPS:
        return []
    positions = _DATA_INPUTS_ONLY.get(node.op_type)
    inputs = list(node.input) if positions is None else [node.input[i] for i in positions if i < len(node.input)]
    return [name for name in inputs if name]


def live_nodes(model: onnx.ModelProto, target: str) -> set[int]:
    """Indices of the nodes that `target` depends on differentiably (not only through shapes or indices)."""
    producers = {out: i for i, node in enumerate(model.graph.node) for out in node.output}
    live: set[int] = set()
    stack = [target]
    while stack:
        index = producers.get(stack.pop())
        if index is None or index in live:
            continue
        live.add(index)
        stack.extend(_differentiable_inputs(model.graph.node[index]))
    return live


def reachable_weights(model: onnx.ModelProto, weights: list[ScoredWeight], logits: str) -> set[str]:
    """The scored weights that the logits depend on; the rest have gradient 0 (a dead branch)."""
    used: set[str] = set()
    for index in live_nodes(model, logits):
        used.update(_differentiable_inputs(model.graph.node[index]))
    # A weight may reach its consumer through Identity/Transpose: those nodes are live too, so their inputs count.
    return {w.name for w in weights if w.name in used}
