"""Does folding the batch into groups speed up per-sample gradients in onnxruntime? (DESIGN.md's "fold" lever.)

    .venv/bin/python benches/bench_fold.py [--samples 32] [--folds 4,8,16]

The engine runs one sample per onnxruntime call (batch 1, so BatchNorm uses that sample's statistics). The fold
runs B samples per call and stays exact: the input (B, 3, H, W) is reshaped to (1, B*3, H, W), every Conv gets
its weight tiled B times and group=B, every BatchNorm its parameters tiled B times (so each sample keeps its own
per-channel statistics), and the classifier becomes a batched MatMul against B tiled copies of its weight.
The gradient of each tiled weight is then the B per-sample gradients, and the loss is summed, not averaged.
This is an experiment on NAS-Bench-201 graphs (`build_onnx`), not an engine path: it measures whether the lever
is worth building. Per method and network the best of `--repeats` timings is kept, and the per-sample gradients
are compared with the batch-1 ones (max abs difference, sign flips).
Writes bench_fold_results.md beside this file.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ARCHS = {
    "conv-heavy": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "mixed": "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|",
    "light": "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
}


def _set_batch(value_info: onnx.ValueInfoProto, batch: int) -> None:
    dim = value_info.type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = batch


def fold(model: onnx.ModelProto, batch: int, input_size: int) -> None:
    """Rewrite an NB201 graph (in place) to run `batch` samples as groups of one sample (see the docstring)."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def tile(name: str, reps: tuple[int, ...]) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.tile(numpy_helper.to_array(inits[name]), reps), name))

    def shape(name: str, dims: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(dims, np.int64), name))
        return name

    nodes = [
        helper.make_node("Reshape", ["input", shape("fold.in", [1, -1, input_size, input_size])], ["input.folded"])
    ]
    for node in graph.node:
        node.input[:] = ["input.folded" if x == "input" else x for x in node.input]
        if node.op_type == "Conv":
            tile(node.input[1], (batch, 1, 1, 1))
            node.attribute.append(helper.make_attribute("group", batch))
            nodes.append(node)
        elif node.op_type == "BatchNormalization":
            for name in node.input[1:5]:
                tile(name, (batch,))
            nodes.append(node)
        elif node.op_type == "Flatten":
            nodes.append(
                helper.make_node("Reshape", [node.input[0], shape("fold.head", [batch, 1, -1])], [node.output[0]])
            )
        elif node.op_type == "Gemm":  # x (B, 1, C) @ W_i^T (C, K) per sample, W tiled to (B, K, C)
            tile(node.input[1], (batch, 1, 1))
            nodes += [
                helper.make_node("Transpose", [node.input[1]], ["fold.wt"], perm=[0, 2, 1]),
                helper.make_node("MatMul", [node.input[0], "fold.wt"], ["fold.mm"]),
                helper.make_node("Add", ["fold.mm", node.input[2]], ["fold.mmb"]),
                helper.make_node("Reshape", ["fold.mmb", shape("fold.out", [batch, -1])], [node.output[0]]),
            ]
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def session(arch: str, batch: int | None, input_size: int = 32):
    """A gradient session over `batch` folded samples, or the engine's batch-1 program when batch is None."""
    from gradsign_rs import engine
    from gradsign_rs.frontend import loss
    from gradsign_rs.frontend.pipeline import prepare_network
    from gradsign_rs.frontend.unshare import normalization_parameters
    from gradsign_rs.spaces.nb201_onnx import build_onnx

    network = prepare_network(build_onnx(arch))
    model = network.proto
    weights = list(network.weights)
    if batch is not None:
        fold(model, batch, input_size)
    rows = batch or 1
    graph = model.graph
    _set_batch(graph.input[0], rows)
    _set_batch(graph.output[0], rows)
    graph.input.append(helper.make_tensor_value_info(engine.LABELS, onnx.TensorProto.INT64, [rows]))
    graph.node.append(
        helper.make_node(
            "SoftmaxCrossEntropyLoss", ["logits", engine.LABELS], [loss.LOSS, loss.LOG_PROB], reduction="sum"
        )
    )
    logits = graph.output[0]
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(engine.LOSS, onnx.TensorProto.FLOAT, []), logits])
    names = {w.name for w in weights}
    model, fed = loss.feed_as_inputs(model, names | normalization_parameters(graph))
    built = engine.gradient_graph(model.SerializeToString(), names, "bench_fold")
    return engine.deterministic_session(built, "cpu", "bench_fold"), fed, [f"{w.name}_grad" for w in weights]


def per_sample_gradients(arch: str, batch: int | None, x: np.ndarray, y: np.ndarray, repeats: int):
    """(best seconds per sample, N x P gradients) over all samples, `batch` (or 1) per call."""
    from gradsign_rs import engine

    sess, fed, outputs = session(arch, batch)
    rows = batch or 1
    best, grads = np.inf, None
    for _ in range(repeats + 1):  # the first pass warms up
        blocks = []
        start = time.perf_counter()
        for lo in range(0, x.shape[0], rows):
            feeds = dict(fed, input=x[lo : lo + rows])
            feeds[engine.LABELS] = y[lo : lo + rows]
            blocks.append(sess.run(outputs, feeds))
        elapsed = time.perf_counter() - start
        if grads is not None:
            best = min(best, elapsed)
        grads = np.concatenate([np.concatenate([g.reshape(rows, -1) for g in b], axis=1) for b in blocks])
    return best / x.shape[0], grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--folds", default="4,8,16")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from bench_engine import load_data, machine

    folds = [int(f) for f in args.folds.split(",")]
    x, y = load_data(args.samples)
    header = "| network | batch-1 ms/sample | " + " | ".join(f"fold {b}: ms/sample (speed-up)" for b in folds)
    lines = [
        "# Folding the batch into groups (bench_fold.py)",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()['cpu_model']}, "
        f"{args.samples} CIFAR-10 samples, single-threaded onnxruntime, best of {args.repeats}. "
        "Command: `.venv/bin/python benches/bench_fold.py`",
        "",
        header + " | max abs diff | sign flips |",
        "|---|---:|" + "---:|" * len(folds) + "---:|---:|",
    ]
    for label, arch in ARCHS.items():
        base, reference = per_sample_gradients(arch, None, x, y, args.repeats)
        cells, diff, flips = [], 0.0, 0
        for b in folds:
            seconds, grads = per_sample_gradients(arch, b, x, y, args.repeats)
            cells.append(f"{seconds * 1e3:.2f} ({base / seconds:.2f}x)")
            diff = max(diff, float(np.abs(grads - reference).max()))
            flips = max(flips, int((np.sign(grads) != np.sign(reference)).sum()))
        row = (
            f"| {label} | {base * 1e3:.2f} | " + " | ".join(cells) + f" | {diff:.2g} | {flips} of {reference.size:,} |"
        )
        lines.append(row)
        print(row, flush=True)
    lines += [
        "",
        "Folding is exact (differences are float32 rounding; a flip is a near-zero gradient changing sign), but "
        "onnxruntime's grouped Conv/ConvGrad run one GEMM per group, the same sizes as batch 1, so only the "
        "per-call overhead is saved.",
    ]
    (HERE / "bench_fold_results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
