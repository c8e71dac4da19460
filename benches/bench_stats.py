"""Rank statistics of gradsign_rs.stats against scipy.stats, measured in one run on this machine.

  Kendall tau-b   stats.kendall_tau  vs scipy.stats.kendalltau   at n = 15625 and 423624   target >= 10x faster
  Spearman        stats.spearman     vs scipy.stats.spearmanr    at n = 15625 and 423624   target >= 3x faster
  correlate       20 score columns x 15625 rows, 1000 bootstrap resamples, num_threads=2   target < 5 s

Data are NAS-like, with ties: the truth is an accuracy in % rounded to 2 decimals, a score is a positive
integer (a GradSign-like count, integer-rounded), both driven by one latent quality. n = 15625 is NAS-Bench-201,
423624 NAS-Bench-101. Times are medians of repeats, ours and scipy's interleaved so both see the same load;
each statistic is checked against scipy's (|difference| <= 1e-12) in the same run. Results go to
results_stats.json and results_stats.md beside this file.

    .venv/bin/python benches/bench_stats.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import git_state, machine, versions  # noqa: E402

SIZES = (15625, 423624)
KENDALL_TARGET = 10.0
SPEARMAN_TARGET = 3.0
CORRELATE_COLUMNS, CORRELATE_ROWS, CORRELATE_BOOTSTRAP, CORRELATE_THREADS = 20, 15625, 1000, 2
CORRELATE_TARGET_SECONDS = 5.0


def nas_like(n: int, columns: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Truth (accuracy %, 2 decimals) and `columns` integer scores of growing noise, all with ties."""
    rng = np.random.default_rng(seed)
    quality = rng.standard_normal(n)
    truth = np.round(np.clip(88 + 4 * quality + 1.5 * rng.standard_normal(n), 10, 95), 2)
    scores = []
    for c in range(columns):
        signal = 0.9 - 0.8 * c / max(columns - 1, 1)
        latent = signal * quality + np.sqrt(1 - signal**2) * rng.standard_normal(n)
        scores.append(np.round(np.exp(7 + 0.8 * latent)))
    return truth, scores


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def scipy_statistic(function, x, y) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(x, y).statistic)


def compare(name: str, ours, theirs, x, y, repeats: int, target: float) -> dict[str, object]:
    """Median seconds of both over `repeats` interleaved calls (after one warm-up each) and their ratio."""
    ours_value, theirs_value = ours(x, y), scipy_statistic(theirs, x, y)
    ours_times, theirs_times = [], []
    for _ in range(repeats):
        theirs_times.append(timed(scipy_statistic, theirs, x, y)[0])
        ours_times.append(timed(ours, x, y)[0])
    ratio = statistics.median(theirs_times) / statistics.median(ours_times)
    return {
        "statistic": name,
        "n": len(x),
        "distinct_x": int(len(np.unique(x))),
        "distinct_y": int(len(np.unique(y))),
        "value": ours_value,
        "abs_difference_vs_scipy": abs(ours_value - theirs_value),
        "ours_seconds": statistics.median(ours_times),
        "scipy_seconds": statistics.median(theirs_times),
        "ours_seconds_all": ours_times,
        "scipy_seconds_all": theirs_times,
        "speedup": ratio,
        "target_speedup": target,
        "pass": ratio >= target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per statistic and size")
    parser.add_argument("--correlate-repeats", type=int, default=3)
    parser.add_argument("--note", action="append", default=[], help="a sentence for the results (conditions, caveats)")
    args = parser.parse_args()

    import scipy
    import scipy.stats
    from gradsign_rs import stats

    started = time.perf_counter()
    load_before = os.getloadavg()
    rows = []
    for n in SIZES:
        truth, (score, *_) = nas_like(n, 1, seed=n)
        rows.append(
            compare(
                "kendall_tau_b", stats.kendall_tau, scipy.stats.kendalltau, score, truth, args.repeats, KENDALL_TARGET
            )
        )
        rows.append(
            compare("spearman", stats.spearman, scipy.stats.spearmanr, score, truth, args.repeats, SPEARMAN_TARGET)
        )
        for row in rows[-2:]:
            print(
                f"{row['statistic']:>14} n={n:>6}: ours {row['ours_seconds'] * 1e3:8.2f} ms, scipy "
                f"{row['scipy_seconds'] * 1e3:8.2f} ms, {row['speedup']:5.1f}x (target {row['target_speedup']:.0f}x)",
                flush=True,
            )

    truth, scores = nas_like(CORRELATE_ROWS, CORRELATE_COLUMNS, seed=1)
    table = {f"score_{c}": s for c, s in enumerate(scores)}
    correlate_times, correlate_cpu = [], []
    for _ in range(args.correlate_repeats):
        cpu_start = time.process_time()
        seconds, result = timed(
            stats.correlate,
            table,
            truth,
            methods=("spearman", "kendall"),
            bootstrap=CORRELATE_BOOTSTRAP,
            seed=0,
            num_threads=CORRELATE_THREADS,
        )
        correlate_times.append(seconds)
        correlate_cpu.append(time.process_time() - cpu_start)
    worst = max(
        abs(result.loc[name, "kendall"] - scipy_statistic(scipy.stats.kendalltau, table[name], truth)) for name in table
    )
    correlate = {
        "columns": CORRELATE_COLUMNS,
        "rows": CORRELATE_ROWS,
        "bootstrap": CORRELATE_BOOTSTRAP,
        "num_threads": CORRELATE_THREADS,
        "methods": ["spearman", "kendall"],
        "seconds": statistics.median(correlate_times),
        "seconds_all": correlate_times,
        # CPU seconds of all threads: CPU / wall near num_threads means both cores were ours.
        "cpu_seconds": statistics.median(correlate_cpu),
        "cpu_seconds_all": correlate_cpu,
        "cores_used": statistics.median(correlate_cpu) / statistics.median(correlate_times),
        "max_abs_kendall_difference_vs_scipy": worst,
        "target_seconds": CORRELATE_TARGET_SECONDS,
        "pass": statistics.median(correlate_times) < CORRELATE_TARGET_SECONDS,
    }
    print(
        f"correlate {CORRELATE_COLUMNS} x {CORRELATE_ROWS}, {CORRELATE_BOOTSTRAP} resamples, "
        f"{CORRELATE_THREADS} threads: {correlate['seconds']:.2f} s (target < {CORRELATE_TARGET_SECONDS:.0f} s), "
        f"{correlate['cpu_seconds']:.2f} CPU s, {correlate['cores_used']:.2f} cores used"
    )

    assert all(row["abs_difference_vs_scipy"] <= 1e-12 for row in rows) and worst <= 1e-12, "results differ from scipy"
    versions_now = {**versions(), "scipy": scipy.__version__}
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "command": ".venv/bin/python benches/bench_stats.py"
        + (f" --repeats {args.repeats}" if args.repeats != 7 else ""),
        "machine": machine(),
        "versions": versions_now,
        "git": git_state(),
        "loadavg_before": load_before,
        "repeats": args.repeats,
        "single_calls": rows,
        "correlate": correlate,
        "total_seconds": time.perf_counter() - started,
        "loadavg_after": os.getloadavg(),
        "notes": args.note,
    }
    (HERE / "results_stats.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "results_stats.md").write_text(markdown(report))
    print(f"written {HERE / 'results_stats.json'} and results_stats.md")


def markdown(report: dict) -> str:
    m, v = report["machine"], report["versions"]
    lines = [
        "# Rank statistics benchmark (bench_stats.py)",
        "",
        f"- date (UTC): {report['date']}",
        f"- machine: {m['cpu_model']}, nproc={m['nproc']}, {m['memory_gb']} GB RAM; {m['platform']}; Python {m['python']}",
        "- versions: " + ", ".join(f"{k} {v[k]}" for k in ("numpy", "scipy", "gradsign_rs") if k in v),
        f"- git: {report['git']['commit'][:12]}"
        + (" with uncommitted changes" if report["git"]["dirty_paths"] else ""),
        "- load average before / after: "
        + " ".join(f"{x:.2f}" for x in report["loadavg_before"])
        + " / "
        + " ".join(f"{x:.2f}" for x in report["loadavg_after"]),
        f"- total run time: {report['total_seconds']:.0f} s",
        f"- reproduce: `{report['command']}`",
        "",
        "Protocol: NAS-like data with ties (truth: accuracy % to 2 decimals; score: positive integers), one latent "
        f"quality; median of {report['repeats']} calls after a warm-up, ours and scipy interleaved. Every statistic "
        "equals scipy's to 1e-12 (checked in the run).",
        "",
        "## Single calls",
        "",
        "| statistic | n | distinct score / truth | ours (ms) | scipy (ms) | speedup | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["single_calls"]:
        lines.append(
            f"| {row['statistic']} | {row['n']} | {row['distinct_x']} / {row['distinct_y']} | "
            f"{row['ours_seconds'] * 1e3:.2f} | {row['scipy_seconds'] * 1e3:.2f} | {row['speedup']:.1f}x | "
            f">= {row['target_speedup']:.0f}x | {'PASS' if row['pass'] else 'MISS'} |"
        )
    c = report["correlate"]
    lines += [
        "",
        "## correlate",
        "",
        f"{c['columns']} score columns x {c['rows']} rows, methods {', '.join(c['methods'])}, {c['bootstrap']} bootstrap "
        f"resamples, num_threads={c['num_threads']}: median {c['seconds']:.2f} s over "
        f"{len(c['seconds_all'])} runs ({', '.join(f'{s:.2f}' for s in c['seconds_all'])}); target < "
        f"{c['target_seconds']:.0f} s: {'PASS' if c['pass'] else 'MISS'}.",
        "",
        f"CPU time of all threads: {c['cpu_seconds']:.2f} s, i.e. {c['cores_used']:.2f} cores busy on average "
        f"(2 would mean both cores were ours; with 2 free cores the wall time would be about "
        f"{c['cpu_seconds'] / c['num_threads']:.1f} s).",
        "",
    ]
    if report.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in report["notes"]], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
