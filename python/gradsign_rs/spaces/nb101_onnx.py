"""Build the NAS-Bench-101 network of one cell as an ONNX graph (onnx.helper only, no torch or TensorFlow).

The network follows the benchmark's `model_builder.py` (google-research/nasbench): a conv3x3-BN-ReLU stem with
`stem_channels` (128) channels; `num_stacks` (3) stacks of `num_cells_per_stack` (3) cells, with a 2x2 max-pool of
stride 2 and the channels doubled before every stack but the first; global average pool; a dense layer. Inside a
cell (pruned first, as the benchmark's ModelSpec), vertex t sums its inputs: earlier vertices truncated to its
channel count (first channels kept) and, when the input feeds it, a 1x1 conv-BN-ReLU projection of the cell input;
then applies its op (conv-BN-ReLU with 'same' padding, or a 3x3 max-pool of stride 1). The cell output concatenates
the vertices feeding it (channels split by `compute_vertex_channels`) plus, when the input feeds the output
directly, a projection of the input to the full width (added; or the whole output when no vertex feeds it).

Initializer names mirror a PyTorch version of that network (`stem.0.weight`, `cells.4.projections.2.0.weight`,
`cells.4.ops.3.1.bias`, `classifier.weight`; `cells` counts all cells of all stacks). Weights are PyTorch's default
initialisation drawn from one seed in module order: convs and the dense layer U(-1/sqrt(fan_in), 1/sqrt(fan_in))
(kaiming_uniform with a=sqrt(5)), BN scale 1 and bias 0 (the benchmark's TF initialisers differ; GradSign scores
networks at initialisation, so the torch convention of the project's other spaces is kept). BatchNormalization runs
in training mode as in `nb201_onnx` (epsilon 1e-5 as the benchmark; its momentum 0.997 only moves running statistics,
which nothing reads here, so the shared builder's momentum attribute is left as it is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from gradsign_rs._core import GradSignError
from gradsign_rs.spaces.nb201_onnx import (
    BN_EPSILON,
    INPUT_NAME,
    IR_VERSION,
    OPSET,
    OUTPUT_NAME,
    _batch_norm,
    _conv,
    _GraphWriter,
    _sum,
)

if TYPE_CHECKING:
    from gradsign_rs.spaces.nb101 import Cell

__all__ = ["BN_EPSILON", "IR_VERSION", "OPSET", "build_onnx", "compute_vertex_channels", "parameter_count"]

_CONV_KERNEL = {"conv1x1-bn-relu": 1, "conv3x3-bn-relu": 3}
# Initializers that are state, not trainable variables (TF's moving_mean / moving_variance).
_NOT_TRAINABLE = (".running_mean", ".running_var")


def compute_vertex_channels(input_channels: int, output_channels: int, matrix: np.ndarray) -> tuple[int, ...]:
    """nasbench `model_builder.compute_vertex_channels`: channels of every vertex of a pruned cell.

    The output channels are split evenly among the vertices feeding the output (the first ones by index get one
    extra channel when the division is uneven); every other interior vertex gets the largest channel count among
    the interior vertices it feeds. Vertex 0 has `input_channels`, the output `output_channels`.
    """
    matrix = np.asarray(matrix)
    num_vertices = matrix.shape[0]
    channels = [0] * num_vertices
    channels[0] = input_channels
    channels[-1] = output_channels
    if num_vertices == 2:
        return tuple(channels)  # input straight to output: no interior vertex
    in_degree = np.sum(matrix[1:], axis=0)  # in-degree ignoring the input vertex
    fan_in = int(in_degree[-1])
    if fan_in == 0 or output_channels < fan_in:
        raise GradSignError(
            f"cannot split {output_channels} output channels among {fan_in} vertices feeding the cell output"
        )
    interior, correction = divmod(output_channels, fan_in)
    for v in range(1, num_vertices - 1):
        if matrix[v, -1]:
            channels[v] = interior + (1 if correction else 0)
            correction -= 1 if correction else 0
    # Backwards, so every destination is settled first; vertex num_vertices - 2 can only feed the output.
    for v in range(num_vertices - 3, 0, -1):
        if not matrix[v, -1]:
            for dst in range(v + 1, num_vertices - 1):
                if matrix[v, dst]:
                    channels[v] = max(channels[v], channels[dst])
    for v in range(1, num_vertices - 1):
        if channels[v] <= 0 or any(channels[v] < channels[d] for d in range(v + 1, num_vertices - 1) if matrix[v, d]):
            raise GradSignError(
                f"vertex channels {channels} of cell matrix {matrix.tolist()} break the benchmark's rules"
            )
    return tuple(channels)


class _CountingWriter(_GraphWriter):
    """A writer that records each initializer's size instead of drawing it: parameter counts without the weights."""

    def __init__(self) -> None:
        super().__init__(0)
        self.sizes: dict[str, int] = {}

    def constant(self, name: str, value: np.ndarray) -> str:
        self.sizes[name] = int(np.size(value))
        return name

    def uniform(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        self.sizes[name] = int(np.prod(shape))
        return name


def _conv_bn_relu(w: _GraphWriter, x: str, prefix: str, c_in: int, c_out: int, kernel: int) -> str:
    """nasbench `conv_bn_relu`: Conv(kernel, stride 1, 'same', no bias) -> BN -> ReLU as modules `<prefix>.0/1/2`."""
    conv = _conv(w, x, f"{prefix}.0", c_in, c_out, kernel, 1, pad=kernel // 2)
    bn = _batch_norm(w, conv, f"{prefix}.1", c_out, affine=True)
    return w.node("Relu", [bn], f"{prefix}.2")


def _truncate(w: _GraphWriter, x: str, name: str, channels: int) -> str:
    """The first `channels` channels of `x` (nasbench `truncate`, when a source has one channel more)."""
    # Slice takes its bounds as tensors: int64 initializers (not Constant nodes, as everywhere in these graphs).
    for suffix, value in (("starts", 0), ("ends", channels), ("axes", 1)):
        w.initializers.append(numpy_helper.from_array(np.array([value], dtype=np.int64), f"{name}.{suffix}"))
    return w.node("Slice", [x, f"{name}.starts", f"{name}.ends", f"{name}.axes"], name)


def _cell(w: _GraphWriter, x: str, prefix: str, cell: Cell, c_in: int, c_out: int) -> str:
    """One pruned cell on input `x` (c_in channels) with c_out output channels; returns its output tensor."""
    matrix = cell.matrix
    last = cell.num_vertices - 1
    channels = compute_vertex_channels(c_in, c_out, matrix)
    tensors = [x]
    concat_in = []
    for t in range(1, last):
        add_in = []
        for src in range(1, t):
            if matrix[src, t]:
                if channels[src] == channels[t]:
                    add_in.append(tensors[src])
                else:
                    add_in.append(_truncate(w, tensors[src], f"{prefix}.vertex{t}.from{src}", channels[t]))
        if matrix[0, t]:
            add_in.append(_conv_bn_relu(w, x, f"{prefix}.projections.{t}", c_in, channels[t], 1))
        vertex_input = _sum(w, add_in, f"{prefix}.vertex{t}.sum")
        op = cell.ops[t]
        if op in _CONV_KERNEL:
            value = _conv_bn_relu(w, vertex_input, f"{prefix}.ops.{t}", channels[t], channels[t], _CONV_KERNEL[op])
        else:  # maxpool3x3: TF 'same' max-pooling ignores the padding, as ONNX MaxPool's padding does
            value = w.node(
                "MaxPool", [vertex_input], f"{prefix}.ops.{t}", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]
            )
        tensors.append(value)
        if matrix[t, last]:
            concat_in.append(value)
    if not concat_in:  # only input -> output: the output is the projected input
        return _conv_bn_relu(w, x, f"{prefix}.projections.{last}", c_in, c_out, 1)
    out = concat_in[0] if len(concat_in) == 1 else w.node("Concat", concat_in, f"{prefix}.concat", axis=1)
    if matrix[0, last]:
        projected = _conv_bn_relu(w, x, f"{prefix}.projections.{last}", c_in, c_out, 1)
        out = w.node("Add", [out, projected], f"{prefix}.output")
    return out


def _check_options(**options: int) -> None:
    for name, value in options.items():
        least = 0 if name == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise GradSignError(f"build_onnx: {name} must be an int >= {least}, got {value!r}")
    reductions = 2 ** (options["num_stacks"] - 1)
    if options["image_size"] % reductions:
        # The benchmark's 'same' 2x2 pooling pads odd sizes; 32x32 CIFAR never needs it, so it is not lowered.
        raise GradSignError(
            f"build_onnx: image_size must be a multiple of {reductions} for {options['num_stacks']} stacks, "
            f"got {options['image_size']}"
        )


def _network(
    w: _GraphWriter, cell: Cell, num_classes: int, stem_channels: int, num_stacks: int, num_cells_per_stack: int
) -> None:
    """Write the whole network into `w`, from the data input to the logits."""
    x = _conv_bn_relu(w, INPUT_NAME, "stem", 3, stem_channels, 3)
    channels = stem_channels
    index = 0
    for stack in range(num_stacks):
        c_in = channels
        if stack > 0:
            x = w.node("MaxPool", [x], f"downsample.{stack}", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])
            channels *= 2
        for _ in range(num_cells_per_stack):
            x = _cell(w, x, f"cells.{index}", cell, c_in, channels)
            c_in = channels
            index += 1
    x = w.node("GlobalAveragePool", [x], "global_pooling")
    x = w.node("Flatten", [x], "flatten", axis=1)
    weight = w.uniform("classifier.weight", (num_classes, channels), fan_in=channels)
    bias = w.uniform("classifier.bias", (num_classes,), fan_in=channels)
    w.node("Gemm", [x, weight, bias], OUTPUT_NAME, transB=1)


def _as_cell(cell: Cell | str) -> Cell:
    from gradsign_rs.spaces.nb101 import Cell  # deferred: nb101 imports this module

    if isinstance(cell, str):
        return Cell.parse(cell)
    if not isinstance(cell, Cell):
        raise GradSignError(f"expected an NB101 Cell or its string, got {type(cell).__name__}")
    return cell


def build_onnx(
    cell: Cell | str,
    *,
    num_classes: int = 10,
    seed: int = 0,
    stem_channels: int = 128,
    num_stacks: int = 3,
    num_cells_per_stack: int = 3,
    image_size: int = 32,
) -> onnx.ModelProto:
    """The NAS-Bench-101 network of `cell` (pruned first) with input "input" (N, 3, image_size, image_size) float32
    and output "logits" (N, num_classes); opset 17, IR 8; weights drawn from `np.random.default_rng(seed)` in module
    order, so one cell and seed always give identical bytes."""
    cell = _as_cell(cell).pruned()
    _check_options(
        num_classes=num_classes,
        seed=seed,
        stem_channels=stem_channels,
        num_stacks=num_stacks,
        num_cells_per_stack=num_cells_per_stack,
        image_size=image_size,
    )
    w = _GraphWriter(int(seed))
    _network(w, cell, num_classes, stem_channels, num_stacks, num_cells_per_stack)
    return w.model(
        "nb101_network",
        image_size,
        num_classes,
        f"NAS-Bench-101 network stem={stem_channels} stacks={num_stacks}x{num_cells_per_stack} seed={seed} "
        f"cell {cell} (hash {cell.hash})",
        {"nb101.cell": str(cell), "nb101.hash": cell.hash, "seed": str(seed)},
    )


def parameter_count(
    cell: Cell | str,
    *,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    num_cells_per_stack: int = 3,
) -> int:
    """Trainable parameters of `build_onnx(cell, ...)` as the benchmark's `trainable_parameters` counts them (TF
    trainable variables): every conv kernel (convs have no bias), BN gamma and beta (not the moving statistics),
    and the dense kernel and bias. Computed by writing the graph without drawing any weight (milliseconds)."""
    cell = _as_cell(cell).pruned()
    _check_options(
        num_classes=num_classes,
        stem_channels=stem_channels,
        num_stacks=num_stacks,
        num_cells_per_stack=num_cells_per_stack,
        image_size=2 ** (num_stacks - 1),
    )
    w = _CountingWriter()
    _network(w, cell, num_classes, stem_channels, num_stacks, num_cells_per_stack)
    return sum(size for name, size in w.sizes.items() if not name.endswith(_NOT_TRAINABLE))
