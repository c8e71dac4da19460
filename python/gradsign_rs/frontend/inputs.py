"""Pick the data input and fix every other graph input to a value, so the graph has exactly one fed tensor."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import copy_model


def _describe(value: onnx.ValueInfoProto) -> str:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        return f"{value.name!r} (not a tensor)"
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return f"{value.name!r} ({onnx.TensorProto.DataType.Name(tensor.elem_type).lower()} {dims})"


def select_data_input(
    model: onnx.ModelProto,
    source: str,
    *,
    input: str | None = None,
    constant_inputs: dict[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, str]:
    """A copy of `model` whose only fed input is the data input, and that input's name.

    Graph inputs with an initializer of the same name are defaults and stay fixed at it (unless named as `input`);
    `constant_inputs` fixes other inputs to given values (e.g. a Keras export's extra non-data inputs). Anything
    left over besides one data input is refused with the inputs listed.
    """
    defaults = {t.name for t in model.graph.initializer}
    fed = [vi for vi in model.graph.input if vi.name not in defaults]
    if input is None and not constant_inputs and len(model.graph.input) == 1 and len(fed) == 1:
        return model, fed[0].name  # the common case: nothing to choose or fix
    out = copy_model(model)
    graph = out.graph
    constant_inputs = dict(constant_inputs or {})
    names = [vi.name for vi in graph.input]
    unknown = [name for name in [input, *constant_inputs] if name is not None and name not in names]
    if unknown:
        raise GradSignError(f"{source}: no graph input named {unknown[0]!r}; inputs are {names}")
    if input is not None and input in constant_inputs:
        raise GradSignError(f"{source}: input {input!r} is both the data input and a constant input")
    if input is not None:  # a named data input with a default initializer: the default is not used
        kept = [t for t in graph.initializer if t.name != input]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    for name, value in constant_inputs.items():
        info = next(vi for vi in graph.input if vi.name == name)
        elem = info.type.tensor_type.elem_type
        array = np.asarray(value, dtype=onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else None)
        kept = [t for t in graph.initializer if t.name != name]
        del graph.initializer[:]
        graph.initializer.extend([*kept, numpy_helper.from_array(array, name)])
    defaults = {t.name for t in graph.initializer}
    fed = [vi for vi in graph.input if vi.name not in defaults]
    if input is None:
        if len(fed) != 1:
            listed = ", ".join(_describe(vi) for vi in fed) or "none"
            raise GradSignError(
                f"{source}: expected exactly one data input, found {len(fed)}: {listed}; name the data input "
                "(input=NAME, CLI --input) and fix the others (constant_inputs={NAME: value}, CLI --constant NAME=VALUE)"
            )
        input = fed[0].name
    others = [vi for vi in fed if vi.name != input]
    if others:
        listed = ", ".join(_describe(vi) for vi in others)
        raise GradSignError(
            f"{source}: graph inputs {listed} have no value; fix them with constant_inputs={{NAME: value}}"
        )
    # Inputs that are initializers are constants of the graph, not inputs (IR >= 4 allows dropping them).
    kept_inputs = [vi for vi in graph.input if vi.name == input]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    return out, input
