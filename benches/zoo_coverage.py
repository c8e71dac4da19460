"""Zoo coverage: architecture x export route -> outcome (paper protocol / flagged / refused with the reason),
seconds and peak memory of scoring at N = 16, written to results/zoo/coverage.md and coverage.csv.

Routes: torch's two (`from_torch`, the training-mode export that keeps BatchNorm; `default`, torch.onnx.export of
an eval-mode model, which folds it), and every ONNX file of tests/zoo/foreign/manifest.json (Keras via tf2onnx,
JAX via jax2onnx, sklearn via skl2onnx, written by scripts/zoo_export_foreign.py). Each attempt runs in a fresh
process, so its peak RSS is its own. Usage: python benches/zoo_coverage.py [--n 16] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing
import platform
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "zoo")]
FOREIGN = ROOT / "tests" / "zoo" / "foreign"


def _attempt(kind: str, name: str, route: str, n: int) -> dict[str, object]:
    """Score one (architecture, route) in this process; the outcome and measurements as a row."""
    import resource

    import gradsign_rs
    import numpy as np

    row: dict[str, object] = {"architecture": name, "route": route}
    start = time.perf_counter()
    try:
        if kind == "torch":
            import torch_zoo

            row["family"] = torch_zoo.ARCHITECTURES[name][0]
            module, size = torch_zoo.build(name)
            x, y = torch_zoo.images(size, n)
            model = (
                gradsign_rs.from_torch(module, x[:1])
                if route == "from_torch"
                else torch_zoo.export_default(module, size)
            )
            kwargs: dict[str, object] = {}
        else:
            entry = next(e for e in json.loads((FOREIGN / "manifest.json").read_text()) if e["name"] == name)
            data = np.load(FOREIGN / "inputs.npz")
            x, y = data[entry["inputs_key"]][:n], data["labels"][:n]
            model = FOREIGN / entry["file"]
            row["family"] = entry["framework"]
            from test_zoo_foreign import CONSTANT_INPUTS

            kwargs = {"constant_inputs": CONSTANT_INPUTS.get(name)}
        begin = time.perf_counter()
        result = gradsign_rs.score(model, x, y, num_threads=1, **kwargs)
        again = gradsign_rs.score(model, x, y, num_threads=1, **kwargs)
        row.update(
            outcome="paper protocol" if result.protocol == "paper" else "flagged",
            score=result.value,
            repeatable=result.value == again.value,
            seconds=round((time.perf_counter() - begin) / 2, 2),
            reason="; ".join(result.protocol_reasons) or "; ".join(result.protocol_notes),
        )
    except gradsign_rs.GradSignError as exc:
        row.update(outcome="refused", reason=str(exc), seconds=round(time.perf_counter() - start, 2))
    except Exception as exc:  # anything else is a bug to fix: recorded as such
        row.update(
            outcome="ERROR", reason=f"{type(exc).__name__}: {exc}"[:400], seconds=round(time.perf_counter() - start, 2)
        )
    row["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def attempts(only: list[str] | None) -> list[tuple[str, str, str]]:
    import torch_zoo

    found = [("torch", name, route) for name in torch_zoo.ARCHITECTURES for route in ("from_torch", "default")]
    manifest = FOREIGN / "manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text()):
            if (FOREIGN / entry["file"]).is_file():
                found.append(("foreign", entry["name"], entry.get("exporter", "onnx")))
    return [a for a in found if not only or a[1] in only]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", default=str(ROOT / "results" / "zoo"))
    args = parser.parse_args()
    rows = []
    context = multiprocessing.get_context("spawn")
    for kind, name, route in attempts(args.only):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            try:
                row = pool.submit(_attempt, kind, name, route, args.n).result(timeout=900)
            except Exception as exc:  # the process died (a crash): recorded, never hidden
                row = {
                    "architecture": name,
                    "route": route,
                    "outcome": "CRASH",
                    "reason": f"{type(exc).__name__}: {exc}",
                }
        print(f"{name:40s} {route:12s} {row['outcome']:15s} {row.get('seconds', '')}", flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only and (out / "coverage.csv").is_file():  # a partial rerun replaces its own rows only
        previous = pd.read_csv(out / "coverage.csv")
        previous = previous[~previous["architecture"].isin(args.only)]
        table = pd.concat([previous, table], ignore_index=True)
    table.to_csv(out / "coverage.csv", index=False)
    counts = table["outcome"].value_counts().to_dict()
    ok = sum(counts.get(k, 0) for k in ("paper protocol", "flagged"))
    header = [
        "# Zoo coverage",
        "",
        f"`python benches/zoo_coverage.py --n {args.n}` on {platform.node()} ({platform.machine()}, "
        f"{multiprocessing.cpu_count()} cores), {datetime.date.today()}: N = {args.n} samples per attempt, one "
        "onnxruntime lane; seconds are the mean of two runs (graph building included), peak_mb is the attempt "
        "process's peak RSS (torch and the export included for torch routes).",
        "",
        f"Attempts: {len(table)}; scored under the paper's protocol or flagged with the reason: {ok} "
        f"({100 * ok / max(len(table), 1):.0f}%); outcomes: {counts}.",
        "",
    ]
    columns = [
        c
        for c in ("architecture", "family", "route", "outcome", "score", "repeatable", "seconds", "peak_mb", "reason")
        if c in table
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, record in table[columns].astype(object).fillna("").iterrows():
        lines.append("| " + " | ".join(str(v).replace("|", "/").replace("\n", " ") for v in record) + " |")
    (out / "coverage.md").write_text("\n".join(header + lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
