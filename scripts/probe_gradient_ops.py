"""Probe which default-domain ONNX ops onnxruntime-training can differentiate on CPU; regenerate gradient_ops.py.

For every default-domain op schema (the latest version <= the probed opset) with a float input, a tiny model
`x -> op -> ReduceSum -> loss` is built (per-op recipes give the other inputs and the attributes), its gradient
w.r.t. `x` is built the way `gradsign_rs.engine` does (get_optimized_model with ORT_DISABLE_ALL, then
GradientGraphBuilder), and the gradient graph is run once in a CPU InferenceSession (which catches gradient ops
without a CPU kernel, such as ResizeGrad). Each op gets one verdict per probed opset:

    ok                           the gradient graph builds, runs and has an `x_grad` output
    ok (all outputs declared)    the same, once the node declares its optional outputs (its builder reads them)
    stops gradient               the builder treats the op as a gradient stop (x unreachable through it), accepts
                                 it next to a differentiable path, and its output does not move with x: harmless
    stops gradient (drops ...)   the same, but the output does move with x: a gradient would be silently lost
    no gradient builder          GradientGraphBuilder has no builder registered for the op; for ops with only
                                 integer outputs the probe also tries the op as a mere condition source
    no CPU kernel: <op>          the gradient graph builds but its <op> has no CPU kernel
    no CPU kernel (forward)      the op itself has no CPU kernel
    error: ...                   anything else

    OMP_NUM_THREADS=1 .venv/bin/python scripts/probe_gradient_ops.py            # print the table
    OMP_NUM_THREADS=1 .venv/bin/python scripts/probe_gradient_ops.py --write    # also rewrite gradient_ops.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from gradsign_rs._ort import capi, ort
from onnx import TensorProto, defs, helper, numpy_helper

OPSETS = (17, 21)
IR_VERSION = 10  # the newest onnxruntime 1.19 reads
TARGET = Path(__file__).resolve().parents[1] / "python" / "gradsign_rs" / "frontend" / "gradient_ops.py"
# Sequence, optional and control-flow ops take or give non-tensor values: not single-node probable, not in classifiers.
SKIPPED = {
    "If",
    "Loop",
    "Scan",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceErase",
    "SequenceInsert",
    "SequenceLength",
    "SequenceMap",
    "SplitToSequence",
    "ConcatFromSequence",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
    # Quantized integer ops (their float inputs are scales).
    "QLinearConv",
    "QLinearMatMul",
}
# Ops without a float input that exporters emit on shape paths: probed with their input computed from x.
EXTRA = ("ConstantOfShape",)
SHAPE_OF_X = "shape_of_x"  # an input spec: Shape(x)
X = "x"  # an input spec: the differentiated graph input

CPU = "CPUExecutionProvider"

ort.set_default_logger_severity(3)


@dataclasses.dataclass
class Case:
    """One probe model: the op's inputs in schema order (X, SHAPE_OF_X, an array for an initializer, or None for an
    omitted optional input), the shape and value range of x, its attributes and how many outputs it declares."""

    inputs: list[object]
    x_shape: tuple[int, ...] = (2, 3, 4, 5)
    attrs: dict[str, object] = dataclasses.field(default_factory=dict)
    outputs: int | None = None
    x_range: tuple[float, float] = (0.2, 0.8)


_RNG = np.random.default_rng(1)


def f32(*shape: int, low: float = 0.2, high: float = 0.8) -> np.ndarray:
    # Fresh values per call: onnxruntime merges equal initializers, which breaks BatchNormalization's builder.
    return _RNG.uniform(low, high, shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def reduce_case(op: str, version: int) -> Case:
    """Reduce ops take axes as an input from opset 18 (ReduceSum from 13), as an attribute before."""
    axes_as_input = version >= (13 if op == "ReduceSum" else 18)
    return Case([X, i64(1)]) if axes_as_input else Case([X], attrs={"axes": [1]})


def resize_case(version: int) -> Case:
    scales = np.array([1, 1, 2, 2], np.float32)
    return Case([X, None, scales] if version >= 11 else [X, scales], attrs={"mode": "nearest"})


def group_norm_case(version: int) -> Case:
    # Opset 18: scale/bias per group; opset 21: per channel.
    groups, channels = 2, 4
    n = channels if version >= 21 else groups
    return Case([X, f32(n), f32(n)], x_shape=(2, channels, 3, 3), attrs={"num_groups": groups})


# Recipes: op -> (schema since_version -> Case). Ops without a recipe get x of shape (2, 3, 4, 5) and a random
# float initializer of the same shape for every other required input of x's type.
RECIPES: dict[str, Callable[[int], Case]] = {
    "AffineGrid": lambda v: Case([X, i64(2, 1, 3, 3)], x_shape=(2, 2, 3)),
    "AveragePool": lambda v: Case([X], attrs={"kernel_shape": [2, 2]}),
    "MaxPool": lambda v: Case([X], attrs={"kernel_shape": [2, 2]}),
    "LpPool": lambda v: Case([X], attrs={"kernel_shape": [2, 2]}),
    "BatchNormalization": lambda v: Case([X, f32(3), f32(3), f32(3), f32(3)]),
    "Cast": lambda v: Case([X], attrs={"to": TensorProto.FLOAT}),
    "CastLike": lambda v: Case([X, f32(1)]),
    "CenterCropPad": lambda v: Case([X, i64(2, 3, 3, 3)]),
    "Clip": lambda v: Case([X, np.array(0.3, np.float32), np.array(0.7, np.float32)]),
    "Col2Im": lambda v: Case([X, i64(4, 4), i64(2, 2)], x_shape=(1, 4, 9)),
    "Compress": lambda v: Case([X, np.array([True, False, True])], attrs={"axis": 1}),
    "Concat": lambda v: Case([X, f32(2, 3, 4, 5)], attrs={"axis": 1}),
    "Conv": lambda v: Case([X, f32(4, 3, 3, 3), f32(4)], x_shape=(2, 3, 5, 5)),
    "ConvTranspose": lambda v: Case([X, f32(3, 4, 3, 3), f32(4)], x_shape=(2, 3, 5, 5)),
    "CumSum": lambda v: Case([X, np.array(1, np.int64)]),
    "DFT": lambda v: Case([X], x_shape=(2, 8, 1)),
    "DeformConv": lambda v: Case([X, f32(1, 1, 2, 2), f32(1, 8, 3, 3)], x_shape=(1, 1, 4, 4)),
    "DepthToSpace": lambda v: Case([X], x_shape=(1, 4, 2, 3), attrs={"blocksize": 2}),
    "DequantizeLinear": lambda v: Case([np.arange(6, dtype=np.int8), X], x_shape=()),
    "Det": lambda v: Case([X], x_shape=(2, 3, 3)),
    "Einsum": lambda v: Case([X, f32(4, 5)], x_shape=(3, 4), attrs={"equation": "ij,jk->ik"}),
    "EyeLike": lambda v: Case([X], x_shape=(3, 4)),
    "Expand": lambda v: Case([X, i64(2, 3, 4, 5)], x_shape=(3, 1, 5)),
    "GRU": lambda v: Case([X, f32(1, 12, 3), f32(1, 12, 4)], x_shape=(2, 1, 3), attrs={"hidden_size": 4}),
    "LSTM": lambda v: Case([X, f32(1, 16, 3), f32(1, 16, 4)], x_shape=(2, 1, 3), attrs={"hidden_size": 4}),
    "RNN": lambda v: Case([X, f32(1, 4, 3), f32(1, 4, 4)], x_shape=(2, 1, 3), attrs={"hidden_size": 4}),
    "Gather": lambda v: Case([X, i64(0, 2)], attrs={"axis": 1}),
    "GatherElements": lambda v: Case([X, np.zeros((2, 3, 4, 5), np.int64) + 1], attrs={"axis": 1}),
    "GatherND": lambda v: Case([X, np.array([[0], [1]], np.int64)]),
    "Gemm": lambda v: Case([X, f32(3, 4), f32(4)], x_shape=(2, 3)),
    "GridSample": lambda v: Case([X, f32(1, 3, 3, 2, low=-1, high=1)], x_shape=(1, 1, 4, 4)),
    "GroupNormalization": group_norm_case,
    "InstanceNormalization": lambda v: Case([X, f32(3), f32(3)]),
    "LayerNormalization": lambda v: Case([X, f32(5), f32(5)], attrs={"axis": -1}),
    "LRN": lambda v: Case([X], attrs={"size": 3}),
    "MatMul": lambda v: Case([X, f32(4, 5)], x_shape=(2, 3, 4)),
    "MaxRoiPool": lambda v: Case(
        [X, np.array([[0, 0, 0, 3, 3]], np.float32)], x_shape=(1, 1, 6, 6), attrs={"pooled_shape": [2, 2]}
    ),
    "MaxUnpool": lambda v: Case(
        [X, np.array([[[[0, 3], [9, 15]]]], np.int64)],
        x_shape=(1, 1, 2, 2),
        attrs={"kernel_shape": [2, 2], "strides": [2, 2]},
    ),
    "MelWeightMatrix": lambda v: Case(
        [np.array(4), np.array(16), np.array(16000), X, np.array(8000.0, np.float32)], x_shape=(), x_range=(10.0, 20.0)
    ),
    "Mod": lambda v: Case([X, f32(2, 3, 4, 5)], attrs={"fmod": 1}),
    "Multinomial": lambda v: Case([X], x_shape=(2, 3)),
    "NegativeLogLikelihoodLoss": lambda v: Case([X, i64(0, 2)], x_shape=(2, 3)),
    "NonMaxSuppression": lambda v: Case([X, f32(1, 1, 3)], x_shape=(1, 3, 4)),
    "OneHot": lambda v: Case([i64(0, 2), np.array(3, np.int64), X], x_shape=(2,)),
    "Pad": lambda v: Case([X, i64(0, 0, 1, 1, 0, 0, 1, 1)]),
    "Pow": lambda v: Case([X, f32(2, 3, 4, 5)]),
    "PRelu": lambda v: Case([X, f32(3, 1, 1)]),
    "QuantizeLinear": lambda v: Case([X, np.array(0.1, np.float32), np.array(0, np.uint8)]),
    "RandomNormalLike": lambda v: Case([X], attrs={"seed": 1.0}),
    "RandomUniformLike": lambda v: Case([X], attrs={"seed": 1.0}),
    "Range": lambda v: Case([X, np.array(5.0, np.float32), np.array(1.0, np.float32)], x_shape=()),
    "Reshape": lambda v: Case([X, i64(2, -1)]),
    "Resize": resize_case,
    "ReverseSequence": lambda v: Case([X, i64(4, 3)], x_shape=(4, 2, 3), attrs={"batch_axis": 1, "time_axis": 0}),
    "RoiAlign": lambda v: Case([X, np.array([[0, 0, 3, 3]], np.float32), i64(0)], x_shape=(1, 1, 6, 6)),
    "STFT": lambda v: Case([X, np.array(4, np.int64), None, np.array(8, np.int64)], x_shape=(1, 16, 1)),
    "ScatterElements": lambda v: Case([X, np.array([[1, 0]], np.int64), f32(1, 2)], x_shape=(3, 3)),
    "ScatterND": lambda v: Case([X, np.array([[1], [3]], np.int64), f32(2)], x_shape=(4,)),
    "Slice": lambda v: Case([X, i64(0), i64(2), i64(1), i64(1)]),
    "SoftmaxCrossEntropyLoss": lambda v: Case([X, i64(0, 2)], x_shape=(2, 3)),
    "SpaceToDepth": lambda v: Case([X], x_shape=(1, 1, 4, 4), attrs={"blocksize": 2}),
    "Split": lambda v: Case([X, i64(1, 2)], outputs=2, attrs={"axis": 1}),
    "Squeeze": lambda v: Case([X, i64(1)], x_shape=(2, 1, 4)),
    "Tile": lambda v: Case([X, i64(1, 2, 1, 1)]),
    "TopK": lambda v: Case([X, i64(2)]),
    "Transpose": lambda v: Case([X], attrs={"perm": [0, 2, 1, 3]}),
    "Trilu": lambda v: Case([X], x_shape=(3, 4)),
    "Unique": lambda v: Case([X], x_shape=(6,)),
    "Unsqueeze": lambda v: Case([X, i64(1)]),
    "Where": lambda v: Case([f32(2, 3, 4, 5) > 0.5, X, f32(2, 3, 4, 5)]),
    "ConstantOfShape": lambda v: Case([SHAPE_OF_X], attrs={"value": numpy_helper.from_array(np.ones(1, np.float32))}),
}
for _reduce in (
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
):
    RECIPES[_reduce] = lambda v, op=_reduce: reduce_case(op, v)


def float_input_index(schema: defs.OpSchema) -> int | None:
    """The first input whose type constraint admits float32."""
    allowed = {t.type_param_str: t.allowed_type_strs for t in schema.type_constraints}
    for i, formal in enumerate(schema.inputs):
        if "tensor(float)" in allowed.get(formal.type_str, [formal.type_str]):
            return i
    return None


def probed_schemas(opset: int) -> list[defs.OpSchema]:
    """Default-domain, non-deprecated schemas at `opset` with a float input (plus EXTRA), sorted by name."""
    found = []
    for name in sorted({s.name for s in defs.get_all_schemas() if s.domain == ""}):
        try:
            schema = defs.get_schema(name, opset, "")
        except defs.SchemaError:
            continue  # introduced after `opset`
        if schema.deprecated or name in SKIPPED:
            continue
        if float_input_index(schema) is not None or name in EXTRA:
            found.append(schema)
    return found


def default_case(schema: defs.OpSchema) -> Case:
    """x for the float input, random floats of x's shape for other required inputs of the same type."""
    wrt = float_input_index(schema)
    inputs: list[object] = []
    for i, formal in enumerate(schema.inputs):
        required = formal.option != defs.OpSchema.FormalParameterOption.Optional
        if i == wrt:
            inputs.append(X)
        elif required and formal.type_str == schema.inputs[wrt].type_str:
            inputs.append(f32(2, 3, 4, 5))
        elif required:
            raise LookupError(f"no recipe for required input {formal.name!r}")
        else:
            inputs.append(None)
    return Case(inputs)


@dataclasses.dataclass
class Probe:
    """A probe model, the value of x, and the op's first float output (None when all its outputs are integer)."""

    model: onnx.ModelProto
    x: np.ndarray
    float_output: str | None


def build_model(
    schema: defs.OpSchema, case: Case, opset: int, loss: str, all_outputs: bool = False, symbolic: bool = False
) -> Probe:
    """The probe model. `loss`: "output" (the sum of the op's first float output, or of its first output cast to
    float), "output+x" (that plus the sum of x: x stays reachable when the op stops the gradient) or "condition"
    (the op's first output only decides Where(cond, x, x), as shape/index outputs feed real graphs).
    `all_outputs` declares the optional outputs too (some gradient builders read them); `symbolic` gives x
    symbolic dims (else onnxruntime folds Shape(x) and everything after it into a constant loss)."""
    op = schema.name
    inits, names, pre = [], [], []
    for i, spec in enumerate(case.inputs):
        if spec is None:
            names.append("")
        elif isinstance(spec, str) and spec == X:
            names.append("x")
        elif isinstance(spec, str) and spec == SHAPE_OF_X:
            pre.append(helper.make_node("Shape", ["x"], ["x_shape"]))
            names.append("x_shape")
        else:
            inits.append(numpy_helper.from_array(np.asarray(spec), f"in{i}"))
            names.append(f"in{i}")
    while names and not names[-1]:
        names.pop()
    optional = defs.OpSchema.FormalParameterOption.Optional
    n_out = case.outputs or sum(1 for o in schema.outputs if all_outputs or o.option != optional)
    outs = [f"y{k}" for k in range(max(n_out, 1))]
    node = helper.make_node(op, names, outs, name=f"probe_{op}", **case.attrs)
    dims = [f"d{i}" for i in range(len(case.x_shape))] if symbolic else list(case.x_shape)
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    graph = helper.make_graph([*pre, node], "probe", [x_info], [], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info}
    float_out = next((o for o in outs if types.get(o) == TensorProto.FLOAT), None)
    if loss == "condition":
        tail = [
            helper.make_node("Cast", [outs[0]], ["yf"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMax", ["yf"], ["ym"], keepdims=0),
            helper.make_node("Cast", ["ym"], ["cond"], to=TensorProto.BOOL),
            helper.make_node("Where", ["cond", "x", "x"], ["w"]),
            helper.make_node("ReduceSum", ["w"], ["loss"], keepdims=0),
        ]
    else:
        summed = float_out or "yf"
        tail = [] if float_out else [helper.make_node("Cast", [outs[0]], ["yf"], to=TensorProto.FLOAT)]
        tail.append(helper.make_node("ReduceSum", [summed], ["ly" if loss == "output+x" else "loss"], keepdims=0))
        if loss == "output+x":
            tail.append(helper.make_node("ReduceSum", ["x"], ["lx"], keepdims=0))
            tail.append(helper.make_node("Add", ["ly", "lx"], ["loss"]))
    model.graph.node.extend(tail)
    model.graph.output.append(helper.make_tensor_value_info("loss", TensorProto.FLOAT, []))
    x = np.random.default_rng(0).uniform(*case.x_range, case.x_shape).astype(np.float32)
    return Probe(model, x, float_out)


def session_options(optimize: bool = False) -> object:
    """One thread; no graph optimisation unless `optimize` (the engine builds gradients unoptimised, then runs
    them optimised)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def forward_verdict(probe: Probe) -> str | None:
    """None when the forward model runs on CPU, else the failure."""
    try:
        session = ort.InferenceSession(probe.model.SerializeToString(), session_options(), providers=[CPU])
        session.run(None, {"x": probe.x})
    except Exception as exc:
        if "NOT_IMPLEMENTED" in str(exc):
            return "no CPU kernel (forward)"
        return f"error: forward: {last_line(exc)}"
    return None


def gradient_verdict(probe: Probe) -> str:
    """Build the gradient of `loss` w.r.t. x as gradsign_rs.engine does, then run it once on CPU."""
    options = session_options()
    try:
        optimized = capi.get_optimized_model(probe.model.SerializeToString(), {"x"}, options)
        builder = capi.GradientGraphBuilder(optimized, {"loss"}, {"x"}, "loss", options)
        builder.build()
        gradient = builder.get_model()
    except Exception as exc:
        if "gradient builder has not been registered" in str(exc):
            return "no gradient builder"
        if "unreachable from the output" in str(exc):
            return "unreachable"
        if "couldn't find the producer node" in str(exc):
            return "constant loss"
        return f"error: gradient builder: {last_line(exc)}"
    try:
        session = ort.InferenceSession(gradient, session_options(optimize=True), providers=[CPU])
    except Exception as exc:
        match = re.search(r"implementation for (\w+)", str(exc))
        return f"no CPU kernel: {match.group(1)}" if match else f"error: gradient session: {last_line(exc)}"
    if "x_grad" not in {o.name for o in session.get_outputs()}:
        return "error: no x_grad output"
    try:
        session.run(["x_grad"], {"x": probe.x})
    except Exception as exc:
        return f"error: gradient run: {last_line(exc)}"
    return "ok"


def depends_on_x(probe: Probe) -> bool:
    """Whether the op's float output moves when x does (a gradient stop then drops a real derivative)."""
    model = onnx.ModelProto.FromString(probe.model.SerializeToString())
    model.graph.output.append(helper.make_tensor_value_info(probe.float_output, TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=[CPU])
    before, after = (session.run([probe.float_output], {"x": x})[0] for x in (probe.x, probe.x + np.float32(0.01)))
    return before.shape != after.shape or not np.array_equal(before, after)


def last_line(exc: Exception) -> str:
    """The gist of an onnxruntime error: its last line without source paths, signatures and status codes."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    text = text.split(" was false. ")[-1]
    text = re.sub(r"^.*\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^/onnxruntime_src/\S+ .*?\) ", "", text)
    return text[:80]


@dataclasses.dataclass(frozen=True)
class Result:
    """One op's verdict at one opset; `harmless`: the op never passes a gradient but never blocks the builder
    where its output only feeds shapes, indices or conditions."""

    verdict: str
    harmless: bool = False


def probe_op(schema: defs.OpSchema, opset: int) -> Result:
    op = schema.name
    try:
        case = RECIPES[op](schema.since_version) if op in RECIPES else default_case(schema)
        direct = build_model(schema, case, opset, "output")
    except Exception as exc:
        return Result(f"error: recipe: {last_line(exc)}")
    failed = forward_verdict(direct)
    if failed:
        return Result(failed)
    verdict, symbolic = gradient_verdict(direct), False
    if verdict == "constant loss":
        direct, symbolic = build_model(schema, case, opset, "output", symbolic=True), True
        verdict = gradient_verdict(direct)
    if verdict.startswith("error: gradient builder"):
        # Some builders read optional outputs (LayerNormalization's mean and inverse std): declare them and retry.
        if gradient_verdict(build_model(schema, case, opset, "output", all_outputs=True, symbolic=symbolic)) == "ok":
            return Result("ok (all outputs declared)")
    if verdict == "unreachable":
        # The builder treats the op as a gradient stop: harmless when it does not refuse the graph and the output
        # does not depend differentiably on x (integer outputs, constants); otherwise a gradient is silently lost.
        accepted = gradient_verdict(build_model(schema, case, opset, "output+x", symbolic=symbolic))
        if accepted != "ok":
            return Result(accepted)
        if direct.float_output and depends_on_x(direct):
            return Result("stops gradient (drops a non-zero derivative)")
        return Result("stops gradient", harmless=True)
    if verdict == "no gradient builder" and direct.float_output is None:
        harmless = gradient_verdict(build_model(schema, case, opset, "condition", symbolic=symbolic)) == "ok"
        return Result(verdict + (" (accepted as a condition source)" if harmless else ""), harmless)
    return Result(verdict)


def probe(opset: int) -> dict[str, Result]:
    """op -> its Result at `opset`."""
    return {schema.name: probe_op(schema, opset) for schema in probed_schemas(opset)}


def summarise(by_opset: dict[int, dict[str, Result]]):
    """DIFFERENTIABLE_OPS and NEEDS_ALL_OUTPUTS (ok at every probed opset where the op exists), the harmless set,
    and the reasons for every other op."""
    ops = sorted({op for table in by_opset.values() for op in table})
    ok, needs_outputs, harmless, reasons = set(), set(), set(), {}
    for op in ops:
        seen = {opset: table[op] for opset, table in by_opset.items() if op in table}
        verdicts = {r.verdict for r in seen.values()}
        if verdicts == {"ok"}:
            ok.add(op)
            continue
        if verdicts <= {"ok", "ok (all outputs declared)"}:
            ok.add(op)
            needs_outputs.add(op)
            continue
        if all(r.harmless for r in seen.values()):
            harmless.add(op)
        if len(verdicts) == 1:
            reasons[op] = verdicts.pop()
        else:
            reasons[op] = "; ".join(f"opset {opset}: {r.verdict}" for opset, r in seen.items())
    return ok, needs_outputs, harmless, reasons


def render(ok: set[str], needs_outputs: set[str], harmless: set[str], reasons: dict[str, str]) -> str:
    def names(items) -> str:
        if not items:
            return "frozenset()"
        body = "".join(f'        "{op}",\n' for op in sorted(items))
        return f"frozenset(\n    {{\n{body}    }}\n)"

    def entry(op: str, text: str) -> str:
        line = f"    {json.dumps(op)}: {json.dumps(text)},\n"
        if len(line) <= 121:
            return line
        # Too long for one line: implicit concatenation of chunks that end at spaces.
        chunks = textwrap.wrap(text, 100, drop_whitespace=False)
        return f"    {json.dumps(op)}: (\n" + "".join(f"        {json.dumps(c)}\n" for c in chunks) + "    ),\n"

    reason_lines = "".join(entry(op, text) for op, text in sorted(reasons.items()))
    versions = f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, opsets {' and '.join(map(str, OPSETS))}"
    return f'''"""Which default-domain ONNX ops onnxruntime-training's GradientGraphBuilder can differentiate on CPU.

Measured, not assumed: `scripts/probe_gradient_ops.py` builds the gradient of a one-op model per op and runs it on
CPU (see its docstring). DIFFERENTIABLE_OPS: the gradient w.r.t. the op's first float input builds and runs at
every probed opset where the op exists (ops that pass gradients to only some inputs count); NEEDS_ALL_OUTPUTS of
them only with their optional outputs declared. NON_DIFFERENTIABLE_BUT_HARMLESS: ops that never pass a gradient
(integer/bool outputs, constants) but do not block the builder where their output only feeds shapes, indices or
conditions. NOT_DIFFERENTIABLE: the probe's verdict for every op not in DIFFERENTIABLE_OPS.
"""

# Generated by scripts/probe_gradient_ops.py ({versions}); do not edit by hand.
# Regenerate with:
#     OMP_NUM_THREADS=1 .venv/bin/python scripts/probe_gradient_ops.py --write

DIFFERENTIABLE_OPS: frozenset[str] = {names(ok)}

NEEDS_ALL_OUTPUTS: frozenset[str] = {names(needs_outputs)}

NON_DIFFERENTIABLE_BUT_HARMLESS: frozenset[str] = {names(harmless)}

NOT_DIFFERENTIABLE: dict[str, str] = {{
{reason_lines}}}
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {TARGET.name}")
    args = parser.parse_args(argv)
    by_opset = {opset: probe(opset) for opset in OPSETS}
    ops = sorted({op for table in by_opset.values() for op in table})
    for op in ops:
        cells = [by_opset[opset][op].verdict if op in by_opset[opset] else "-" for opset in OPSETS]
        print(f"{op:28s} " + " | ".join(cells))
    ok, needs_outputs, harmless, reasons = summarise(by_opset)
    print(f"\n{len(ok)} differentiable, {len(harmless)} harmless, {len(reasons) - len(harmless)} not differentiable")
    if args.write:
        TARGET.write_text(render(ok, needs_outputs, harmless, reasons))
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
