"""Small helpers every front-end pass shares: copies, attributes, fresh names, initializers, static shapes.

One place for each rule: a pass imports these instead of writing its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gradsign_rs._core import GradSignError

DEFAULT_DOMAINS = ("", "ai.onnx")


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy: passes never mutate the model they are given (CopyFrom: 7x faster than a serialise round trip)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


# protobuf cannot serialise a message of 2 GiB or more, and onnxruntime takes its graph serialised.
MAX_PROTO_BYTES = 2**31 - 1


def serialize(model: onnx.ModelProto, source: str) -> bytes:
    """`model` as bytes for onnxruntime; a model past protobuf's 2 GiB limit is refused by size, not with a raw
    EncodeError (or a MemoryError) from protobuf."""
    from gradsign_rs._core import GradSignError

    size = model.ByteSize()
    if size > MAX_PROTO_BYTES:
        raise GradSignError(
            f"{source}: the prepared graph is {size / 2**30:.2f} GiB, past protobuf's 2 GiB limit for one "
            "message; onnxruntime-training takes its graph as one message, so this model cannot be scored"
        )
    try:
        return model.SerializeToString()
    except MemoryError as exc:
        raise MemoryError(
            f"{source}: serialising the {size / 2**30:.2f} GiB graph for onnxruntime ran out of memory"
        ) from exc


def is_default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in DEFAULT_DOMAINS


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of attribute `name` of `node` (int, float, string, ints, floats, tensor...) or `default`."""
    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's default-domain (ai.onnx) opset, or None when it imports none."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return entry.version
    return None


class Names:
    """Fresh tensor and node names that collide with nothing in the graph (nor with each other)."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self._used = (
            {t.name for t in graph.initializer} | {v.name for v in graph.input} | {v.name for v in graph.output}
        )
        for node in graph.node:
            self._used.update(node.input)
            self._used.update(node.output)
            self._used.add(node.name)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}.{k}", k + 1
        self._used.add(name)
        return name


def add_initializer(model: onnx.ModelProto, array: np.ndarray, name: str) -> str:
    """Append `array` as an initializer called `name` (which must be fresh); returns the name."""
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    return name


def initializer_arrays(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def constant_value(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of `name` when it is an initializer (after the constants pass, Constant nodes are too)."""
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    return None


def rewrite_nodes(
    model: onnx.ModelProto, rewrite: Callable[[onnx.NodeProto], Iterable[onnx.NodeProto] | None]
) -> onnx.ModelProto:
    """A copy of `model` where every node for which `rewrite` returns nodes is replaced by them, in place in the
    topological order (the replacement must compute the node's outputs under the same names)."""
    out = copy_model(model)
    nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        replacement = rewrite(node)
        nodes.extend([node] if replacement is None else replacement)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def static_shapes(model: onnx.ModelProto, *, symbolic: bool = False) -> dict[str, tuple]:
    """Every tensor whose shape onnx shape inference resolves to integers (best effort: {} if inference fails).
    symbolic=True also keeps shapes with named dims (the name stands for the same size wherever it appears)."""
    try:
        # data_prop carries Shape values into ConstantOfShape/Reshape (NAS-Bench-201's all-`none` zeros).
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return {}
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        tensor_type = vi.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim)
        if None not in dims and (symbolic or all(isinstance(d, int) for d in dims)):
            shapes[vi.name] = dims
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return shapes


def ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every tensor whose rank onnx shape inference knows (even with symbolic dims)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    found = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        if vi.type.tensor_type.HasField("shape"):
            found[vi.name] = len(vi.type.tensor_type.shape.dim)
    for tensor in model.graph.initializer:
        found[tensor.name] = len(tensor.dims)
    return found


def node_label(node: onnx.NodeProto) -> str:
    """How errors name a node: its name, or its first output when it has none."""
    return node.name or (node.output[0] if node.output else node.op_type)


def _inferred_value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    return list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)


def known_dims(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """Every tensor whose rank shape inference knows, with its dims (None where a dim is symbolic or unknown)."""
    found: dict[str, tuple[int | None, ...]] = {}
    for vi in _inferred_value_infos(model):
        tensor_type = vi.type.tensor_type
        if tensor_type.HasField("shape"):
            found[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    for tensor in model.graph.initializer:
        found[tensor.name] = tuple(tensor.dims)
    return found


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """The element type (onnx.TensorProto enum) of every tensor whose type shape inference knows."""
    found = {vi.name: vi.type.tensor_type.elem_type for vi in _inferred_value_infos(model)}
    found = {name: elem for name, elem in found.items() if elem}
    found.update({tensor.name: tensor.data_type for tensor in model.graph.initializer})
    return found


def refusal(node: onnx.NodeProto, reason: str, remedy: str) -> GradSignError:
    """The error a pass raises for a node it cannot handle: names the node and its op, says why and what to do."""
    return GradSignError(f"node {node_label(node)!r} ({node.op_type}): {reason}; {remedy}")


def numpy_dtype(types: dict[str, int], name: str) -> np.dtype:
    """The numpy dtype of tensor `name` given elem_types(); float32 when unknown."""
    return np.dtype(helper.tensor_dtype_to_np_dtype(types.get(name, onnx.TensorProto.FLOAT)))


class Emitter:
    """Builds the nodes that replace one node: nodes named `<label>/<op>`, tensors `<label>/<what>` (all fresh,
    `label` being node_label of the replaced node); constants become initializers.

    `reduce`, `unsqueeze` and `squeeze` write the form the model's opset wants: axes moved from an attribute to an
    input at opset 13 (ReduceSum, Squeeze, Unsqueeze) and 18 (the other reductions).
    """

    def __init__(self, names: Names, node: onnx.NodeProto, opset: int):
        self._names = names
        self.label = node_label(node)
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def fresh(self, what: str) -> str:
        return self._names.fresh(f"{self.label}/{what}")

    def op(
        self,
        op_type: str,
        inputs: Iterable[str],
        what: str | None = None,
        *,
        output: str | None = None,
        **attrs: Any,
    ) -> str:
        """Append one single-output node; returns its output (`output`, or a fresh `<label>/<what>`)."""
        out = output or self.fresh(what or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.fresh(op_type), **attrs))
        return out

    def const(self, value: object, what: str, dtype: np.dtype | type = np.float32) -> str:
        """A fresh initializer holding `value` as `dtype`."""
        name = self.fresh(what)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values: Iterable[int], what: str) -> str:
        """A fresh 1-D int64 initializer (shapes, axes, pads)."""
        return self.const(list(values), what, np.int64)

    def reduce(
        self,
        op_type: str,
        x: str,
        axes: Iterable[int],
        *,
        keepdims: bool,
        what: str | None = None,
        output: str | None = None,
    ) -> str:
        axes = list(axes)
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.op(op_type, [x, self.ints(axes, "axes")], what, output=output, keepdims=int(keepdims))
        return self.op(op_type, [x], what, output=output, axes=axes, keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: Iterable[int], what: str | None = None, *, output: str | None = None) -> str:
        axes = list(axes)
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.ints(axes, "axes")], what, output=output)
        return self.op("Unsqueeze", [x], what, output=output, axes=axes)

    def squeeze(self, x: str, axes: Iterable[int], what: str | None = None, *, output: str | None = None) -> str:
        axes = list(axes)
        if self.opset >= 13:
            return self.op("Squeeze", [x, self.ints(axes, "axes")], what, output=output)
        return self.op("Squeeze", [x], what, output=output, axes=axes)


def rewrite_op(
    model: onnx.ModelProto, op_type: str, lower_node: Callable[[Emitter, onnx.NodeProto], None]
) -> onnx.ModelProto:
    """A copy of `model` where every default-domain `op_type` node is replaced by the nodes `lower_node` emits
    (which must write the node's outputs under their names); other nodes are untouched."""
    names = Names(model)
    opset = default_opset(model) or 1
    initializers: list[onnx.TensorProto] = []

    def rewrite(node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
        if node.op_type != op_type or not is_default_domain(node):
            return None
        emit = Emitter(names, node, opset)
        lower_node(emit, node)
        initializers.extend(emit.initializers)
        return emit.nodes

    out = rewrite_nodes(model, rewrite)
    out.graph.initializer.extend(initializers)
    return out
