"""Load an ONNX model from a path, bytes or a ModelProto, with external data confined to the model's folder.

The one place where model bytes enter the package: every initializer is checked (dims, data length) before any
onnxruntime code sees it, and external data is read only from regular files whose real path (symlinks followed)
lies inside the model's folder (or the `base_dir` given for bytes and ModelProtos).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

from gradsign_rs._core import GradSignError
from gradsign_rs.frontend._graph import copy_model


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in external_data_helper._get_all_tensors(model) if external_data_helper.uses_external_data(t)]


def _confined_location(tensor: onnx.TensorProto, base: Path, source: str) -> Path:
    """The real path of `tensor`'s external data file, refused unless it is a regular file inside `base`."""
    info = external_data_helper.ExternalDataInfo(tensor)
    location = info.location
    if not location or os.path.isabs(location):
        raise GradSignError(
            f"{source}: initializer {tensor.name!r} has external data at {location!r}; only paths "
            "relative to the model's folder are read"
        )
    real = (base / location).resolve()
    root = base.resolve()
    if real != root and root not in real.parents:
        raise GradSignError(
            f"{source}: initializer {tensor.name!r} has external data {location!r} that resolves "
            f"outside the model's folder {str(root)!r}; refused"
        )
    if not real.is_file():
        raise GradSignError(f"{source}: external data file {location!r} of initializer {tensor.name!r} does not exist")
    size = real.stat().st_size
    offset = int(info.offset or 0)
    length = info.length
    if offset < 0 or offset > size or (length is not None and (int(length) < 0 or offset + int(length) > size)):
        raise GradSignError(
            f"{source}: external data of initializer {tensor.name!r} (offset {offset}, length "
            f"{length}) lies beyond the end of {location!r} ({size} bytes)"
        )
    return real


def _load_external_data(model: onnx.ModelProto, base: Path | None, source: str) -> None:
    """Read every external tensor into the model (in place), confined to `base`."""
    tensors = _external_tensors(model)
    if not tensors:
        return
    if base is None:
        raise GradSignError(
            f"{source}: the model references external data ({tensors[0].name!r} in "
            f"{external_data_helper.ExternalDataInfo(tensors[0]).location!r}); pass base_dir= (the "
            "folder holding it) or give the model as a path"
        )
    for tensor in tensors:
        real = _confined_location(tensor, base, source)
        info = external_data_helper.ExternalDataInfo(tensor)
        with open(real, "rb") as handle:
            handle.seek(int(info.offset or 0))
            tensor.raw_data = handle.read() if info.length is None else handle.read(int(info.length))
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def check_initializers(model: onnx.ModelProto, source: str) -> None:
    """Refuse initializers whose dims are negative or whose data does not hold prod(dims) elements."""
    for tensor in model.graph.initializer:
        if any(d < 0 for d in tensor.dims):
            raise GradSignError(f"{source}: initializer {tensor.name!r} has negative dims {list(tensor.dims)}")
        if tensor.data_type == onnx.TensorProto.STRING:
            continue
        try:
            np_dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        except Exception as exc:
            raise GradSignError(
                f"{source}: initializer {tensor.name!r} has unknown data type {tensor.data_type}"
            ) from exc
        count = int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1
        if tensor.HasField("raw_data") or tensor.raw_data:
            itemsize = np.dtype(np_dtype).itemsize
            if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
                continue  # packed two per byte
            if len(tensor.raw_data) != count * itemsize:
                raise GradSignError(
                    f"{source}: initializer {tensor.name!r} of shape {list(tensor.dims)} needs "
                    f"{count * itemsize} bytes of data, has {len(tensor.raw_data)}"
                )
        else:
            field = helper.tensor_dtype_to_field(tensor.data_type)
            stored = len(getattr(tensor, field))
            if tensor.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128):
                stored //= 2
            if stored not in (count,) and not (count == 0 and stored == 0):
                # float16 & co. live in int32_data one per element; anything else is short or long data.
                raise GradSignError(
                    f"{source}: initializer {tensor.name!r} of shape {list(tensor.dims)} holds "
                    f"{stored} values, expected {count}"
                )


def check_finite_parameters(model: onnx.ModelProto, source: str, names: set[str]) -> None:
    """Refuse NaN or inf in the named initializers (the scored weights) and in every normalisation parameter: their
    gradients would be NaN, which count as 0, and the score would silently be a different number. (Other tensors may
    hold inf on purpose, e.g. attention masks.)"""
    from gradsign_rs.frontend.unshare import normalization_parameters

    wanted = names | normalization_parameters(model.graph)
    for tensor in model.graph.initializer:
        if tensor.name in wanted and tensor.data_type in (
            onnx.TensorProto.FLOAT,
            onnx.TensorProto.DOUBLE,
            onnx.TensorProto.FLOAT16,
        ):
            values = numpy_helper.to_array(tensor)
            if not np.isfinite(values).all():
                bad = int(np.size(values) - np.isfinite(values).sum())
                raise GradSignError(
                    f"{source}: initializer {tensor.name!r} holds {bad} NaN or inf value(s); a "
                    "network with non-finite parameters has no GradSign"
                )


def load_model(model: object, *, base_dir: str | os.PathLike[str] | None = None) -> tuple[onnx.ModelProto, str]:
    """A private copy of `model` (path, os.PathLike, bytes or ModelProto) with external data read in, and a short
    description of where it came from for error messages. Relative external-data locations resolve against the
    model file's folder (or `base_dir`) and must stay inside it."""
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(model, onnx.ModelProto):
        # Copied only if external data must be read in: passes never mutate their argument.
        proto, source = (copy_model(model) if _external_tensors(model) else model), "<ModelProto>"
    elif isinstance(model, (bytes, bytearray, memoryview)):
        source = "<bytes>"
        try:
            proto = onnx.load_from_string(bytes(model))
        except Exception as exc:
            raise GradSignError(f"<bytes>: not an ONNX model ({type(exc).__name__}: {exc})") from exc
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        source = str(path)
        if not path.exists():
            raise GradSignError(f"model file {source!r} does not exist")
        if not path.is_file():
            raise GradSignError(f"model path {source!r} is not a file")
        try:
            proto = onnx.load(source, load_external_data=False)
        except PermissionError as exc:
            raise GradSignError(f"model file {source!r} is not readable ({exc.strerror})") from exc
        except Exception as exc:
            raise GradSignError(f"{source!r} is not an ONNX model ({type(exc).__name__}: {exc})") from exc
        base = base if base is not None else path.resolve().parent
    else:
        raise GradSignError(
            f"model must be a path, os.PathLike, onnx.ModelProto, bytes or torch.nn.Module, got {type(model).__name__}"
        )
    if not proto.graph.node:
        raise GradSignError(f"{source}: not an ONNX model (it parses to an empty graph)")
    _load_external_data(proto, base, source)
    check_initializers(proto, source)
    return proto, source
