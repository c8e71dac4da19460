"""An experiment not adopted: AveragePool rewritten as Pad + shifted Slices + Adds + Div, A/B against the engine.

onnxruntime-training's CPU AveragePoolGrad is a scalar loop with a division per window element; the rewrite

    y = Div(Σ_j Slice_W(Σ_i Slice_H(Pad(x), i), j), count)

gives the same values up to float rounding (the window is summed in another order) with gradients that are copies
and sums (SliceGrad, Add, Slice for Pad). This bench applies it to the pruned graph inside `engine.prepare` and
times both engines on the same networks, interleaved, best of 3, one lane. Results: bench_pool_rewrite_results.md.

    .venv/bin/python benches/bench_pool_rewrite.py [--archs 12] [--n 32]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import machine  # noqa: E402
from gradsign_rs.proxies.graphs import static_shapes  # noqa: E402


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    found = next((a for a in node.attribute if a.name == name), None)
    return helper.get_attribute_value(found) if found is not None else default


def _window_counts(size: int, out: int, kernel: int, stride: int, pad_begin: int, include_pad: bool) -> np.ndarray:
    """How many elements each output position's window sums along one axis (the divisor's factor)."""
    if include_pad:
        return np.full(out, kernel, dtype=np.int64)
    starts = np.arange(out) * stride - pad_begin
    return np.minimum(starts + kernel, size) - np.maximum(starts, 0)


def _rewritable(node: onnx.NodeProto, shape: tuple | None) -> bool:
    if node.op_type != "AveragePool" or len(node.output) != 1 or shape is None or len(shape) != 4:
        return False
    kernel = _attr(node, "kernel_shape", [])
    return (
        len(kernel) == 2
        and _attr(node, "ceil_mode", 0) == 0
        and all(d == 1 for d in _attr(node, "dilations", [1, 1]))
        and _attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )


class _Builder:
    """Collects the replacement nodes and constants of one pool, with names derived from its output."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []

    def constant(self, suffix: str, value: np.ndarray) -> str:
        name = f"{self.prefix}/{suffix}"
        self.constants.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], suffix: str, output: str | None = None) -> str:
        name = output or f"{self.prefix}/{suffix}"
        self.nodes.append(helper.make_node(op, inputs, [name], name=f"{self.prefix}/{suffix}"))
        return name

    def shifted_sum(self, source: str, axis: int, kernel: int, stride: int, out: int) -> str:
        """Σ_d source[..., d + stride * i, ...] over d < kernel, for i < out along `axis`."""
        axes, steps = self.constant(f"axes{axis}", np.array([axis])), self.constant(f"steps{axis}", np.array([stride]))
        parts = []
        for d in range(kernel):
            starts = self.constant(f"start{axis}_{d}", np.array([d]))
            ends = self.constant(f"end{axis}_{d}", np.array([d + stride * (out - 1) + 1]))
            parts.append(self.node("Slice", [source, starts, ends, axes, steps], f"slice{axis}_{d}"))
        total = parts[0]
        for d, part in enumerate(parts[1:], start=1):  # Add, not Sum: onnxruntime has no gradient for Sum
            total = self.node("Add", [total, part], f"add{axis}_{d}")
        return total


def _replacement(node: onnx.NodeProto, shape: tuple, elem_type: int) -> _Builder:
    _, _, height, width = shape
    kh, kw = _attr(node, "kernel_shape", [])
    sh, sw = _attr(node, "strides", [1, 1])
    top, left, bottom, right = _attr(node, "pads", [0, 0, 0, 0])
    include_pad = bool(_attr(node, "count_include_pad", 0))
    out_h, out_w = (height + top + bottom - kh) // sh + 1, (width + left + right - kw) // sw + 1
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    build = _Builder(f"{node.name or node.output[0]}/avgpool_as_slices")
    padded = node.input[0]
    if any((top, left, bottom, right)):
        pads = build.constant("pads", np.array([0, 0, top, left, 0, 0, bottom, right]))
        padded = build.node("Pad", [padded, pads], "pad")
    rows = build.shifted_sum(padded, 2, kh, sh, out_h)
    boxes = build.shifted_sum(rows, 3, kw, sw, out_w)
    counts = np.outer(
        _window_counts(height, out_h, kh, sh, top, include_pad), _window_counts(width, out_w, kw, sw, left, include_pad)
    )
    divisor = build.constant("count", counts.astype(dtype).reshape(1, 1, out_h, out_w))
    build.node("Div", [boxes, divisor], "div", output=node.output[0])
    return build


def rewrite_average_pools(model: onnx.ModelProto) -> int:
    """Replace every rewritable AveragePool of `model` (in place) by its Pad/Slice/Sum/Div form; returns how many."""
    graph = model.graph
    if not any(node.op_type == "AveragePool" for node in graph.node):
        return 0
    shapes = static_shapes(model)
    nodes, rewritten = [], 0
    for node in graph.node:
        shape = shapes.get(node.input[0]) if node.input else None
        if not _rewritable(node, shape):
            nodes.append(node)
            continue
        build = _replacement(node, shape, onnx.TensorProto.FLOAT)  # NAS-Bench-201 networks are float32
        nodes.extend(build.nodes)
        graph.initializer.extend(build.constants)
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--n", type=int, default=32)
    args = parser.parse_args()

    import gradsign_rs
    from gradsign_rs import engine
    from gradsign_rs.batch import resolve_archs
    from gradsign_rs.data import data_root
    from gradsign_rs.spaces import nb201

    x, y = gradsign_rs.load_images(data_root() / "images/cifar10_train4000.npz", n=args.n)
    plain = engine._pruned

    def rewritten(proto, weights, logits):
        pruned = plain(proto, weights, logits)
        rewrite_average_pools(pruned)
        return pruned

    rows, totals = [], {"engine": 0.0, "rewrite": 0.0}
    for job in resolve_archs(f"sample:{args.archs}", sample_seed=1):
        model = nb201.build_onnx(job.arch, num_classes=10, seed=42)
        best, scores = {}, {}
        for _ in range(3):
            for name, pruner in (("engine", plain), ("rewrite", rewritten)):
                engine._pruned = pruner
                engine._cache.clear()
                score = gradsign_rs.score(model, x, y, num_threads=1)
                best[name] = min(best.get(name, np.inf), score.timings["wall"] / args.n * 1e3)
                scores[name] = score.value
        engine._pruned = plain
        totals = {k: totals[k] + best[k] for k in totals}
        rows.append(
            f"| {job.index} | {str(job.arch).count('avg_pool')} | {best['engine']:.2f} | {best['rewrite']:.2f} | "
            f"{best['engine'] / best['rewrite']:.2f}x | {scores['rewrite'] - scores['engine']:+d} of {scores['engine']} |"
        )
        print(rows[-1], flush=True)
    lines = [
        "# AveragePool as Pad + shifted Slices (not adopted)",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()['cpu_model']}, N = {args.n}, "
        f"one lane, best of 3, interleaved. Command: `.venv/bin/python benches/bench_pool_rewrite.py --archs {args.archs}`",
        "",
        "| network | avg_pool edges | engine ms/sample | rewrite ms/sample | speed-up | score change |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Over the {len(rows)} networks: {totals['engine'] / totals['rewrite']:.2f}x. The reduction blocks' 2x2 pools are "
        "rewritten too, so networks without avg_pool edges change as well. Not adopted: the gain is small, and summing "
        "windows in another order flips the signs of a few near-zero gradients, so the committed tables would no "
        "longer reproduce bit for bit.",
        "",
    ]
    (HERE / "bench_pool_rewrite_results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
