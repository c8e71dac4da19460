"""Seconds per network for each proxy at the default mini-batch (64 of N = 128 CIFAR-10 images), beside GradSign.

    .venv/bin/python benches/bench_proxies.py        # writes bench_proxies_results.md / .json

Networks: the three NAS-Bench-201 cells of benches/_bench_models.py, built as ONNX by gradsign_rs.spaces.nb201
(seed 42), as `gradsign batch --proxies ...` builds them. Each network is scored in a fresh process with all twelve
proxies through one shared Workspace (`proxies.compute_timed`), so every figure includes building that proxy's
gradient graph and session, as in batch scoring; a pass shared by several proxies is charged to the first that
needs it (grad_norm pays for the training pass that snip and fisher reuse, synflow for the pass live_params reads;
nwot runs its own forward-only pass). Single-threaded onnxruntime.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = (
    "gradsign",
    "grad_norm",
    "snip",
    "grasp",
    "fisher",
    "synflow",
    "live_params",
    "jacob_cov",
    "nwot",
    "zico",
    "params",
    "flops",
)


def worker(name: str) -> dict:
    import gradsign_rs
    from _bench_models import MODELS
    from gradsign_rs import proxies
    from gradsign_rs.data import data_root
    from gradsign_rs.spaces import nb201

    x, y = gradsign_rs.load_images(data_root() / "images" / "cifar10_train4000.npz", n=128)
    model = nb201.build_onnx(nb201.Arch.parse(MODELS[name][0]), num_classes=10, seed=42)
    _, seconds = proxies.compute_timed(ORDER, model, x, y, batch_size=64)
    return seconds


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(HERE))
        print("RESULT " + json.dumps(worker(sys.argv[2])))
        return
    sys.path.insert(0, str(HERE))
    from _bench_models import MODELS
    from bench_engine import machine

    results = {}
    for name in MODELS:
        out = subprocess.run([sys.executable, __file__, "--worker", name], capture_output=True, text=True, check=True)
        results[name] = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
        print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    info = machine()
    lines = [
        "# Seconds per network for each proxy (bench_proxies.py)",
        "",
        f"{date} UTC, {info['cpu_model']}, {info['nproc']} cores. Command: `.venv/bin/python benches/bench_proxies.py`",
        "",
        "| network | " + " | ".join(ORDER) + " | all |",
        "|---|" + "---:|" * (len(ORDER) + 1),
    ]
    for name, seconds in results.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{seconds[p]:.2f}" for p in ORDER) + f" | {sum(seconds.values()):.2f} |"
        )
    lines += [
        "",
        "gradsign: all 128 samples one at a time; the batch proxies: one mini-batch of 64 (zico: two).",
        "grad_norm's figure includes the training pass that snip and fisher then read for free; synflow's the pass "
        "that live_params reads. nwot runs a forward pass of its own (no gradient graph).",
        "",
    ]
    (HERE / "bench_proxies_results.md").write_text("\n".join(lines))
    (HERE / "bench_proxies_results.json").write_text(
        json.dumps({"date": date, "machine": info, "seconds": results}, indent=2) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
