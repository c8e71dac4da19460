"""Where one per-sample gradient step spends its time: onnxruntime's own per-node profile, summed by op type.

    .venv/bin/python benches/profile_engine.py [--model nb201_medium] [--samples 16]

Exports a NAS-Bench-201 network (benches/_bench_models.py), prepares its gradient program as `gradsign_rs.score`
does, runs `--samples` single-sample steps with onnxruntime's profiler on (single-threaded, as the engine) and
writes the kernel time per op type to profile_engine_results.md. Profiling adds overhead per node, so the shares
matter, not the absolute times.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nb201_medium")
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()

    import gradsign_rs
    from _bench_models import build
    from bench_engine import load_data, machine
    from gradsign_rs import engine
    from gradsign_rs._ort import ort

    x, y = load_data(args.samples)
    program = engine.prepare(gradsign_rs.from_torch(build(args.model), x[:1]))
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.use_deterministic_compute = True
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(program.graph, options, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]
        feeds = dict(program.weight_values)
        for i in range(args.samples):
            feeds[program.data_input], feeds[engine.LABELS] = x[i : i + 1], y[i : i + 1]
            session.run(outputs, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    micros: collections.Counter[str] = collections.Counter()
    nodes: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            micros[event["args"]["op_name"]] += event["dur"]
            nodes[event["args"]["op_name"]] += 1
    total = sum(micros.values())
    lines = [
        f"# Per-sample gradient step profile: {args.model}, {program.n_weights:,} scored weights",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()['cpu_model']}, "
        f"{args.samples} samples. Command: `.venv/bin/python benches/profile_engine.py --model {args.model}`",
        "",
        f"Kernel time per sample: {total / args.samples / 1000:.1f} ms over {sum(nodes.values()) // args.samples} nodes.",
        "",
        "| op | ms per sample | share | nodes |",
        "|---|---:|---:|---:|",
    ]
    for op, spent in micros.most_common(12):
        lines.append(
            f"| {op} | {spent / args.samples / 1000:.2f} | {spent / total:.0%} | {nodes[op] // args.samples} |"
        )
    (HERE / "profile_engine_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
