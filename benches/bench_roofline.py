"""How far the whole-space GradSign run is from this machine's arithmetic limit (issue 4's throughput goal).

Scoring one network at N = 128 runs 128 batch-1 training steps. Each step's convolutions and linear layers do about
3x the forward multiply-accumulates (forward, input gradient, weight gradient). Only live operations count: the
engine prunes the ops that `none` edges cut off (their gradients are exactly 0), so a network's MACs are those of
the stem, reduction blocks and head plus those of its live conv edges (per-edge costs measured with the `flops`
proxy's counter on reference cells; a conv edge costs the same in every stage). So the arithmetic of the whole
table is known exactly. Measured in one run on this machine:
  sgemm peak   torch float32 matmul 2048^3 on one thread (MKL), GFLOP/s;
  NB201 GEMMs  torch float32 matmul at the im2col shapes of a batch-1 NB201 conv 3x3 (C = 16/32/64), one thread;
  onnxruntime  this engine's per-sample step on K sampled networks, one lane, conv/linear GFLOP/s achieved.
From these: hours for all 15625 networks on 2 cores at each rate, and the fraction of the sgemm peak that the
2-hour goal and the 1-hour stretch goal would need. Results go to bench_roofline_results.md/json.

    .venv/bin/python benches/bench_roofline.py [--archs 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_engine import machine  # noqa: E402

ALL = 15625
CORES = 2
STEP_MACS_PER_FORWARD_MAC = 3  # forward + input gradient + weight gradient of every conv / linear layer
GOALS_HOURS = {"goal (2 h)": 2.0, "stretch (1 h)": 1.0}


def gemm_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """float32 (m x k) @ (k x n) on one torch thread, best of repeated timed loops."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        reps = max(1, int(2e8 // (m * k * n)))
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * m * k * n / best / 1e9


class LiveMacs:
    """Forward MACs of a NAS-Bench-201 network's live part: the fixed skeleton plus each live conv edge's cost."""

    def __init__(self):
        from gradsign_rs.proxies.flops import count_macs
        from gradsign_rs.proxies.graphs import load_network
        from gradsign_rs.spaces import nb201

        def macs(ops: tuple[str, ...]) -> int:
            return count_macs(load_network(nb201.build_onnx(nb201.Arch(ops), num_classes=10, seed=0)))

        cells = 3 * 5  # the TinyNetwork's three stages of five cells (build_onnx's default)
        self.skeleton = macs(("none",) * 6)
        # One conv on edge 1<-0 (live whenever present) in every cell: its cost per cell.
        self.edge = {
            op: (macs((op,) + ("skip_connect",) * 5) - macs(("skip_connect",) * 6)) // cells
            for op in ("nor_conv_3x3", "nor_conv_1x1")
        }
        self.cells = cells

    def __call__(self, arch) -> int:
        return self.skeleton + self.cells * sum(self.edge.get(e.op, 0) for e in arch.live_edges)


def onnxruntime_gflops(archs: int, n: int, live_macs: LiveMacs) -> tuple[float, list[dict[str, float]]]:
    """Conv/linear GFLOP/s of this engine's per-sample steps on `archs` sampled networks (one lane)."""
    import gradsign_rs
    from gradsign_rs.batch import resolve_archs
    from gradsign_rs.data import data_root
    from gradsign_rs.spaces import nb201

    x, y = gradsign_rs.load_images(data_root() / "images/cifar10_train4000.npz", n=n)
    rows = []
    for job in resolve_archs(f"sample:{archs}", sample_seed=0):
        model = nb201.build_onnx(job.arch, num_classes=10, seed=42)
        macs = live_macs(nb201.Arch.parse(str(job.arch)))
        score = gradsign_rs.score(model, x, y, num_threads=1)
        per_sample = score.timings["wall"] / n
        rows.append(
            {
                "index": job.index,
                "forward_macs": macs,
                "seconds_per_sample": per_sample,
                "gflops": STEP_MACS_PER_FORWARD_MAC * 2 * macs / per_sample / 1e9,
            }
        )
        print(
            f"  network {job.index}: {macs / 1e6:.1f} M MACs, {per_sample * 1e3:.2f} ms per sample, "
            f"{rows[-1]['gflops']:.1f} GFLOP/s",
            flush=True,
        )
    total_flop = sum(STEP_MACS_PER_FORWARD_MAC * 2 * r["forward_macs"] for r in rows)
    return total_flop / sum(r["seconds_per_sample"] for r in rows) / 1e9, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--n", type=int, default=128)
    args = parser.parse_args()

    import pandas as pd
    import torch
    from gradsign_rs.spaces import nb201

    torch.set_num_threads(1)
    live_macs = LiveMacs()
    table = pd.read_csv(ROOT / "results/nb201/proxies/cheap_cifar10.csv", usecols=["index", "arch", "flops"])
    if len(table) != ALL:
        sys.exit(f"bench_roofline: cheap_cifar10.csv has {len(table)} of {ALL} networks (scripts/nb201_ensemble.sh)")
    archs = [nb201.Arch.parse(a) for a in table["arch"]]
    # The per-edge model must reproduce the counted MACs of every network with all its ops.
    modelled = [live_macs.skeleton + live_macs.cells * sum(live_macs.edge.get(op, 0) for op in a.ops) for a in archs]
    if not (table["flops"].to_numpy() == modelled).all():
        sys.exit("bench_roofline: per-edge MAC costs do not reproduce the flops column")
    live_total = float(sum(live_macs(a) for a in archs))
    space_flop = STEP_MACS_PER_FORWARD_MAC * 2 * live_total * args.n

    peak = gemm_gflops(2048, 2048, 2048)
    # im2col GEMM of a batch-1 conv 3x3: (C_out x 9 C_in) @ (9 C_in x H W), at each NAS-Bench-201 stage.
    stage_shapes = {"C=16, 32x32": (16, 144, 1024), "C=32, 16x16": (32, 288, 256), "C=64, 8x8": (64, 576, 64)}
    stage_rates = {name: gemm_gflops(*shape) for name, shape in stage_shapes.items()}
    print(f"sgemm peak {peak:.1f} GFLOP/s; NB201 shapes " + ", ".join(f"{k}: {v:.1f}" for k, v in stage_rates.items()))
    ort_rate, rows = onnxruntime_gflops(args.archs, args.n, live_macs)

    def hours(rate_gflops: float) -> float:
        return space_flop / (rate_gflops * 1e9 * CORES) / 3600

    nb201_gemm = sum(stage_rates.values()) / len(stage_rates)
    rates = {
        "sgemm peak (2048^3)": peak,
        "sgemm at NB201 batch-1 conv shapes (mean of 3 stages)": nb201_gemm,
        "onnxruntime engine as measured (conv/linear arithmetic only)": ort_rate,
    }
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "n": args.n,
        "space_tflop": space_flop / 1e12,
        "live_share_of_counted_macs": live_total / float(table["flops"].sum()),
        "gflops_per_core": rates,
        "stage_gemm_gflops": stage_rates,
        "hours_for_all_15625_on_2_cores": {k: hours(v) for k, v in rates.items()},
        "fraction_of_peak_needed": {k: hours(peak) / h for k, h in GOALS_HOURS.items()},
        "onnxruntime_networks": rows,
    }
    (HERE / "bench_roofline_results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# The arithmetic limit of scoring all of NAS-Bench-201 (N = 128)",
        "",
        f"{result['date']}, {result['machine']['cpu_model']}, {CORES} cores used, {result['machine']['platform']}",
        "",
        f"Conv/linear arithmetic of the whole table: {result['space_tflop']:.0f} TFLOP "
        f"({STEP_MACS_PER_FORWARD_MAC} x the forward MACs of each network's live ops, x 2 FLOP, x {args.n} samples; "
        f"live ops are {result['live_share_of_counted_macs']:.0%} of the MACs that `flops` counts over the space).",
        "",
        "| rate (one core) | GFLOP/s | hours for all 15625 on 2 cores |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v:.1f} | {hours(v):.2f} |" for k, v in rates.items()]
    lines += [
        "",
        "GEMM rate by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in stage_rates.items()) + " GFLOP/s.",
        f"onnxruntime on {len(rows)} networks (sample:{args.archs}, seed 0, one lane); its figure counts only the "
        "conv/linear arithmetic, so the BatchNorm, ReLU and pooling work it also does is in its time, not its FLOPs.",
        "",
        "Fraction of the sgemm peak that the goals need, for the arithmetic alone: "
        + ", ".join(f"{k}: {v:.0%}" for k, v in result["fraction_of_peak_needed"].items())
        + ".",
        "",
        f"Command: `.venv/bin/python benches/bench_roofline.py --archs {args.archs}`",
        "",
    ]
    (HERE / "bench_roofline_results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
