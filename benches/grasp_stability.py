"""How stable is grasp itself? Spearman between grasp on two disjoint mini-batches, and on two initialisations,
over the first K validation architectures. A proxy that disagrees with itself this much cannot agree with
published values computed on other batches and seeds by more (the validation's 0.9 bar).

    .venv/bin/python benches/grasp_stability.py [--archs 60]      # writes grasp_stability_results.md
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=60)
    args = parser.parse_args()

    import gradsign_rs
    from gradsign_rs import proxies, stats
    from gradsign_rs.batch import resolve_archs
    from gradsign_rs.data import data_root
    from gradsign_rs.spaces import nb201

    x, y = gradsign_rs.load_images(data_root() / "images" / "cifar10_train4000.npz", n=128)
    jobs = resolve_archs(str(HERE.parent / "results" / "nb201" / "proxies" / "validation_archs.txt"))[: args.archs]
    names = ("grasp", "snip", "grad_norm")
    values = {
        (name, variant): []
        for name in names
        for variant in ("batch A, seed 42", "batch B, seed 42", "batch A, seed 43")
    }
    for job in jobs:
        arch = nb201.Arch.parse(job.arch)
        for seed, rows, label in (
            (42, slice(0, 64), "batch A, seed 42"),
            (42, slice(64, 128), "batch B, seed 42"),
            (43, slice(0, 64), "batch A, seed 43"),
        ):
            model = nb201.build_onnx(arch, num_classes=10, seed=seed)
            got = proxies.compute(names, model, x[rows], y[rows], batch_size=64)
            for name in names:
                values[(name, label)].append(got[name])
    lines = [
        "# grasp stability across mini-batches and initialisations",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. The first {len(jobs)} architectures of "
        "results/nb201/proxies/validation_archs.txt, CIFAR-10 batch A = images 0-63, B = 64-127 of "
        "cifar10_train4000.npz. Command: `.venv/bin/python benches/grasp_stability.py`",
        "",
        "| proxy | Spearman batch A vs batch B (seed 42) | Spearman seed 42 vs seed 43 (batch A) |",
        "|---|---:|---:|",
    ]
    for name in names:
        a, b, c = (np.array(values[(name, v)]) for v in ("batch A, seed 42", "batch B, seed 42", "batch A, seed 43"))
        lines.append(f"| {name} | {stats.spearman(a, b):.3f} | {stats.spearman(a, c):.3f} |")
    (HERE / "grasp_stability_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
