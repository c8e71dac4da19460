"""Why GradSign-assisted REA gains least: its population's diversity and its re-evaluations, against vanilla REA.

REA's population is the last 10 networks it evaluated (aging evolution). For each run (seeds 0..RUNS-1, 12000 s,
M = 10, proxy time charged, as results/nb201/search/) this records, after every evaluation past the first 10:
  distinct   how many different networks the population holds (of 10);
  hamming    the mean number of edges (of 6) on which two population members differ, over all pairs;
and per run: the share of evaluations that train a network the run had already evaluated (a repeat buys no
information but costs the full training time), and the accuracies of the network it found.
A third variant, not the paper's G-REA, tests the explanation: `--skip-evaluated` picks by GradSign among the
mutants the run has not evaluated yet (all of them when none is new), so proxy time is charged for those only.
Writes results/nb201/search/rea_diversity.md and .json.

    .venv/bin/python scripts/rea_diversity.py [--runs 100]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from gradsign_rs.search.benchmark import BudgetExhausted, Simulator
from gradsign_rs.search.proxy import Assistant
from gradsign_rs.search.rea import POPULATION_SIZE, regularized_evolution
from gradsign_rs.search.runner import SearchContext, SearchSettings
from gradsign_rs.spaces import nb201

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results/nb201/search"
CHECKPOINTS = (10, 20, 40, 60)  # evaluations after the initial population


def population_diversity(indices: list[int]) -> tuple[int, float]:
    """Distinct networks and mean pairwise edge-op Hamming distance of a population given by NB201 indices."""
    ops = [nb201.Arch.from_index(i).ops for i in indices]
    pairs = list(itertools.combinations(ops, 2))
    return len(set(indices)), float(np.mean([sum(a != b for a, b in zip(x, y)) for x, y in pairs]))


# name -> skip_evaluated of the Assistant (None: vanilla).
VARIANTS = {"vanilla": None, "gradsign": False, "gradsign, --skip-evaluated": True}


def one_run(context: SearchContext, seed: int, variant: str) -> dict:
    skip = VARIANTS[variant]
    assistant = (
        None
        if skip is None
        else Assistant(context.scores["gradsign"], context.settings.candidates, charge_time=True, skip_evaluated=skip)
    )
    sim = Simulator(context.table, context.settings.budget)
    try:
        regularized_evolution(sim, np.random.default_rng(seed), assistant)
    except BudgetExhausted:
        pass
    history = [e.index for e in sim.history]
    curve = {}
    for step in CHECKPOINTS:
        end = POPULATION_SIZE + step
        if end <= len(history):
            curve[step] = population_diversity(history[end - POPULATION_SIZE : end])
    children = history[POPULATION_SIZE:]
    seen = set(history[:POPULATION_SIZE])
    repeats = 0
    for index in children:
        repeats += index in seen
        seen.add(index)
    return {
        "evaluations": len(history),
        "repeat_share": repeats / max(len(children), 1),
        "curve": curve,
        "final_c10valid_test": float(context.table.finals.at[sim.best.index, "c10valid_test_200ep"]),
        "final_c10_test": float(context.table.finals.at[sim.best.index, "c10_test_200ep"]),
        "final_c100_test": float(context.table.finals.at[sim.best.index, "c100_test_200ep"]),
    }


def summarise(runs: list[dict]) -> dict:
    summary = {
        "runs": len(runs),
        "evaluations": float(np.mean([r["evaluations"] for r in runs])),
        "repeat_share": float(np.mean([r["repeat_share"] for r in runs])),
        **{
            key: float(np.mean([r[key] for r in runs]))
            for key in ("final_c10valid_test", "final_c10_test", "final_c100_test")
        },
    }
    for step in CHECKPOINTS:
        reached = [r["curve"][step] for r in runs if step in r["curve"]]
        summary[f"distinct@{step}"] = float(np.mean([d for d, _ in reached])) if reached else float("nan")
        summary[f"hamming@{step}"] = float(np.mean([h for _, h in reached])) if reached else float("nan")
        summary[f"runs@{step}"] = len(reached)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    settings = SearchSettings(scores=str(ROOT / "results/nb201/gradsign_cifar10.csv"))
    context = SearchContext(settings, ("gradsign",))
    results = {name: summarise([one_run(context, seed, name) for seed in range(args.runs)]) for name in VARIANTS}
    (OUT / "rea_diversity.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# REA: population diversity and re-evaluations, vanilla vs GradSign-assisted",
        "",
        f"Seeds 0..{args.runs - 1}, 12000 s budget, M = 10, GradSign's seconds charged (as `search/`). The population "
        "is the last 10 networks evaluated; `distinct` counts different networks in it, `Hamming` is the mean "
        "number of edges (of 6) on which two members differ. `repeats`: share of the children that train a network "
        "the run had already evaluated. Command: `.venv/bin/python scripts/rea_diversity.py "
        f"--runs {args.runs}`",
        "",
        "| REA | evaluations | repeats | "
        + " | ".join(f"distinct / Hamming after {s}" for s in CHECKPOINTS)
        + " | C10-valid test | C10 test | C100 test |",
        "|---|---:|---:|" + "---|" * len(CHECKPOINTS) + "---:|---:|---:|",
    ]
    for name, s in results.items():
        cells = " | ".join(f"{s[f'distinct@{k}']:.1f} / {s[f'hamming@{k}']:.2f}" for k in CHECKPOINTS)
        lines.append(
            f"| {name} | {s['evaluations']:.1f} | {s['repeat_share']:.1%} | {cells} | "
            f"{s['final_c10valid_test']:.2f} | {s['final_c10_test']:.2f} | {s['final_c100_test']:.2f} |"
        )
    lines.append("")
    (OUT / "rea_diversity.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
