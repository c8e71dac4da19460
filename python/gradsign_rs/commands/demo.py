"""`gradsign demo`: the main job on an embedded default. Scores a fixed sample of NAS-Bench-201 networks on 128
real CIFAR-10 training images (the paper's protocol) and compares the scores with the benchmark's accuracies."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from gradsign_rs.batch import DATASETS, BatchConfig, resolve_archs, run_batch
from gradsign_rs.data import data_root
from gradsign_rs.truth import nb201_truth

TARGET = "c10valid_test_200ep"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="score a sample of NAS-Bench-201 networks on real CIFAR-10 and correlate with their accuracy",
        description=__doc__,
    )
    parser.add_argument("--archs", type=int, default=48, help="networks drawn from the 15625 (default 48)")
    parser.add_argument("--sample-seed", type=int, default=0, help="which networks are drawn")
    parser.add_argument("--n", type=int, default=128, help="images per network (default 128)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--out", default=None, help="keep the scores CSV here (default: a temporary file)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    relative, normalize, classes, _ = DATASETS["cifar10"]
    config = BatchConfig(
        space="nb201", data=str(data_root() / relative), normalize=normalize, num_classes=classes, n=args.n, seed=42
    )
    jobs = resolve_archs(f"sample:{args.archs}", sample_seed=args.sample_seed)
    print(
        f"GradSign of {len(jobs)} NAS-Bench-201 networks (seed-42 init) on {args.n} CIFAR-10 training images "
        f"from {data_root()}, {args.workers} workers\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "demo.csv"
        summary = run_batch(config, jobs, out, workers=args.workers)
        import pandas as pd

        scores = pd.read_csv(out).set_index("index")
    truth = nb201_truth("cifar10")
    table = scores.join(truth[[TARGET]], how="inner").sort_values("score", ascending=False)
    rho = scipy_stats.spearmanr(table["score"], table[TARGET]).statistic
    tau = scipy_stats.kendalltau(table["score"], table[TARGET]).statistic
    print(f"\n{'rank':>4}  {'gradsign':>9}  {'acc %':>6}  arch")
    shown = list(range(min(8, len(table)))) + list(range(max(8, len(table) - 4), len(table)))
    for position in shown:
        row = table.iloc[position]
        if position == max(8, len(table) - 4) and position > 8:
            print(f"{'...':>4}")
        print(f"{position + 1:>4}  {int(row['score']):>9}  {row[TARGET]:>6.2f}  {row['arch']}")
    best = table[TARGET].idxmax()
    print(f"\nSpearman rho {rho:.3f}, Kendall tau {tau:.3f} between GradSign and {TARGET} over {len(table)} networks")
    print(
        f"the top-scored network reaches {table[TARGET].iloc[0]:.2f}% (best of the sample: {table.loc[best, TARGET]:.2f}%, "
        f"sample median {np.median(table[TARGET]):.2f}%)"
    )
    print(
        f"{summary.scored} networks scored in {summary.seconds:.1f} s "
        f"({summary.seconds / max(summary.scored, 1) * args.workers:.2f} s per network per worker)"
    )
    return 0
