"""Networks per hour of `gradsign batch` with the Ray backend against the local worker processes, on this machine.

The same K NAS-Bench-201 architectures (sample:K, seed 0, N = 128, the paper's protocol) are scored by
  local W    run_batch(..., workers=W): W worker processes (the default backend);
  ray W      run_batch(..., pool=RayPool(workers=W)): W actors of a Ray instance started once on this machine;
for W = 1 and 2, in rounds (local 1, ray 1, local 2, ray 2; the next round in reverse order, so drift in the
machine's speed falls on both backends alike). Each time is the whole run_batch call: workers' start-up, scoring, the
driver's fsync'd rows. Ray's own start-up (`ray.init`, once per cluster, not per run) is measured apart.

Also measured: how many rows a second the driver can append (fsync'd) — the bound on how many machines one driver can
keep busy — and the projected hours for all 15,625 networks on M machines of this size, assuming networks per hour
grow linearly with machines (they are independent, and the driver's share per network is measured here).
Results (ratios, machine, date) go to bench_ray_results.md/json beside this file.

    .venv/bin/python benches/bench_ray.py [--archs 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import machine  # noqa: E402

ALL = 15625
MACHINES = (1, 2, 4, 8, 16, 32)


def driver_rows_per_second(columns: tuple[str, ...], rows: int = 2000) -> float:
    """Rows a second `ResultsFile.append` writes (one fsync each): what one driver can take in."""
    from gradsign_rs.batch import ResultsFile

    with tempfile.TemporaryDirectory() as tmp:
        results = ResultsFile(Path(tmp) / "r.csv", columns)
        results.path.write_text(",".join(columns) + "\n")
        row = {c: "1" for c in columns}
        start = time.perf_counter()
        for i in range(rows):
            results.append({**row, "index": i})
        return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import ray
    from gradsign_rs.batch import DATASETS, BatchConfig, resolve_archs, run_batch
    from gradsign_rs.cluster import RayPool
    from gradsign_rs.data import data_root

    relative, normalize, classes, _ = DATASETS["cifar10"]
    config = BatchConfig(
        space="nb201", data=str(data_root() / relative), normalize=normalize, num_classes=classes, n=args.n, seed=42
    )
    jobs = resolve_archs(f"sample:{args.archs}", sample_seed=0)

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_start = time.perf_counter() - start

    order = [("local", 1), ("ray", 1), ("local", 2), ("ray", 2)]
    seconds: dict[str, list[float]] = {f"{b} {w}": [] for b, w in order}
    tables: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for backend, workers in order if round_ % 2 == 0 else order[::-1]:
                key = f"{backend} {workers}"
                out = Path(tmp) / f"{backend}{workers}_{round_}.csv"
                pool = RayPool(workers=workers) if backend == "ray" else None
                start = time.perf_counter()
                summary = run_batch(config, jobs, out, workers=workers, pool=pool, progress=False)
                seconds[key].append(time.perf_counter() - start)
                assert (summary.scored, summary.failed) == (len(jobs), 0), summary
                # The scores (not the measured seconds) of every run must be the same table.
                tables[key] = "\n".join(sorted(line.rsplit(",", 1)[0] for line in out.read_text().splitlines()))
                print(f"{key}: {seconds[key][-1]:.1f} s", flush=True)
    ray.shutdown()
    assert len(set(tables.values())) == 1, "the backends gave different scores"

    mean = {k: statistics.mean(v) for k, v in seconds.items()}
    rate = {k: len(jobs) / v * 3600 for k, v in mean.items()}
    overhead = {
        w: {
            "seconds_per_network": (mean[f"ray {w}"] - mean[f"local {w}"]) / len(jobs),
            "relative": mean[f"ray {w}"] / mean[f"local {w}"] - 1,
        }
        for w in (1, 2)
    }
    append_rate = driver_rows_per_second(config.columns)
    per_machine = rate["ray 2"]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "ray": ray.__version__,
        "archs": [j.index for j in jobs],
        "n": args.n,
        "rounds": args.rounds,
        "ray_start_seconds": ray_start,
        "seconds": seconds,
        "networks_per_hour": rate,
        "ray_overhead": overhead,
        "driver_rows_per_second": append_rate,
        "hours_for_all_15625_on_machines": {m: ALL / (per_machine * m) for m in MACHINES},
    }
    (HERE / "bench_ray_results.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# `gradsign batch --backend ray` against the local worker processes (NAS-Bench-201, N = 128)",
        "",
        f"{result['date']}, {m['cpu_model']}, {m['nproc']} cores, {m['platform']}, ray {ray.__version__}",
        "",
        f"The same {len(jobs)} architectures (sample:{len(jobs)}, seed 0) scored by each backend, {args.rounds} rounds "
        "in alternating order; seconds are whole `run_batch` calls (worker start-up included), mean of the rounds. "
        "Every run gave the same scores.",
        "",
        "| backend | workers | seconds (each round) | networks / hour | hours for all 15625 |",
        "|---|---|---|---|---|",
    ]
    for key, values in seconds.items():
        backend, workers = key.split()
        each = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {backend} | {workers} | {mean[key]:.1f} ({each}) | {rate[key]:.0f} | {ALL / rate[key]:.2f} |")
    lines += [
        "",
        "Ray's overhead against the local pool (goal: under 5% per network):",
        "",
        "| workers | seconds per network | relative |",
        "|---|---|---|",
    ]
    for w, o in overhead.items():
        lines.append(f"| {w} | {o['seconds_per_network']:+.3f} | {o['relative']:+.1%} |")
    lines += [
        "",
        f"Ray's start-up on this machine (`ray.init`, once per cluster): {ray_start:.1f} s.",
        f"The driver appends {append_rate:.0f} fsync'd rows a second, {append_rate * 3600 / per_machine:.0f}x what one "
        "machine of this size produces: one driver keeps that many machines busy.",
        "",
        "Projected hours for all 15,625 networks on M machines of this size (2 Ray workers each), from the measured "
        "`ray 2` rate and assuming linear scaling:",
        "",
        "| machines | " + " | ".join(str(m) for m in MACHINES) + " |",
        "|---" * (len(MACHINES) + 1) + "|",
        "| hours | " + " | ".join(f"{ALL / (per_machine * m):.2f}" for m in MACHINES) + " |",
        "",
        f"Command: `.venv/bin/python benches/bench_ray.py --archs {len(jobs)} --rounds {args.rounds}`",
        "",
    ]
    (HERE / "bench_ray_results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
