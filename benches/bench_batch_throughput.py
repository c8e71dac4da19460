"""Networks per hour of `gradsign batch` on NAS-Bench-201 at N = 128, against the plain-torch loop and torch.func vmap.

The same K architectures (sample:K, seed 0) are scored by each method in one run on this machine:
  ours      run_batch(...) with 2 worker processes (the `gradsign batch` code path, network build included);
  torch     the authors' per-sample loop stacking the N x P matrix, torch with 2 threads, one network at a time;
  vmap      torch.func vmap(grad) per-sample gradients, torch with 2 threads, one network at a time.
Results (rate, projected hours for all 15625 networks, machine, date) go to bench_batch_throughput_results.md/json.

    .venv/bin/python benches/bench_batch_throughput.py [--archs 16]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import VmapScorer, machine, torch_loop_score  # noqa: E402

ALL = 15625


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=16)
    parser.add_argument("--n", type=int, default=128)
    args = parser.parse_args()

    import gradsign_rs
    import torch
    from _bench_models import TinyNetwork
    from gradsign_rs.batch import DATASETS, BatchConfig, resolve_archs, run_batch
    from gradsign_rs.data import data_root

    relative, normalize, classes, _ = DATASETS["cifar10"]
    data = data_root() / relative
    x, y = gradsign_rs.load_images(data, n=args.n)
    jobs = resolve_archs(f"sample:{args.archs}", sample_seed=0)
    config = BatchConfig(space="nb201", data=str(data), normalize=normalize, num_classes=classes, n=args.n, seed=42)

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_batch(config, jobs, Path(tmp) / "r.csv", workers=2, progress=False)
        seconds["ours (gradsign batch, 2 workers)"] = time.perf_counter() - start
        assert summary.scored == len(jobs), summary

    torch.set_num_threads(2)
    for label, method in (("torch loop, N x P stacked (authors')", "loop"), ("torch.func vmap", "vmap")):
        start = time.perf_counter()
        for job in jobs:
            torch.manual_seed(42)
            model = TinyNetwork(job.arch).train()
            if method == "loop":
                torch_loop_score(model, x, y)
            else:
                VmapScorer(model)(x, y)
        seconds[label] = time.perf_counter() - start
        print(f"{label}: {seconds[label]:.1f} s", flush=True)

    rates = {k: len(jobs) / v * 3600 for k, v in seconds.items()}
    ours = rates["ours (gradsign batch, 2 workers)"]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "archs": [j.index for j in jobs],
        "n": args.n,
        "seconds": seconds,
        "networks_per_hour": rates,
        "hours_for_all_15625": {k: ALL / v for k, v in rates.items()},
        "ratio_ours_over": {k: ours / v for k, v in rates.items() if not k.startswith("ours")},
    }
    (HERE / "bench_batch_throughput_results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# `gradsign batch` throughput on NAS-Bench-201 (N = 128)",
        "",
        f"{result['date']}, {result['machine']['cpu_model']}, {result['machine']['nproc']} cores, "
        f"{result['machine']['platform']}",
        "",
        f"The same {len(jobs)} architectures (sample:{len(jobs)}, seed 0) scored by each method, one run.",
        "",
        "| method | seconds | networks / hour | hours for all 15625 | ours is faster by |",
        "|---|---|---|---|---|",
    ]
    for k in seconds:
        ratio = "" if k.startswith("ours") else f"{result['ratio_ours_over'][k]:.2f}x"
        lines.append(f"| {k} | {seconds[k]:.1f} | {rates[k]:.0f} | {ALL / rates[k]:.2f} | {ratio} |")
    lines += [
        "",
        "Goal: the whole space in under 2 hours on this 2-core machine (stretch: under 1 hour).",
        f"Measured: {ALL / ours:.2f} hours. Command: `.venv/bin/python benches/bench_batch_throughput.py --archs {len(jobs)}`",
        "",
    ]
    (HERE / "bench_batch_throughput_results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
