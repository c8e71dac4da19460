"""`gradsign ensemble RESULTS.csv [MORE.csv ...]`: fit the rank ensemble on a held-out split and evaluate it.

The tables are joined on `index` (a GradSign table's `score` column is the proxy `gradsign`), then with the truth.
A seeded `--train-fraction` of the joined networks fits the rule (`gradsign_rs.proxies.ensemble.fit`); every
statistic reported is computed on the other networks only, for the ensemble and for each single proxy alike.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.data import data_root
from gradsign_rs.truth import read_table

# Columns of `gradsign batch` tables that are bookkeeping, not proxies.
NOT_PROXIES = {"arch", "mean", "n_weights", "n_samples", "seconds", "error"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="fit a rank ensemble of proxies on a held-out split and evaluate it on the rest",
        description=__doc__,
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS.csv", help="`gradsign batch` tables to join on index")
    parser.add_argument(
        "--truth",
        default=None,
        metavar="TRUTH.csv",
        help="accuracies (default: nb201/nb201_cifar10.csv in $GRADSIGN_DATA)",
    )
    parser.add_argument("--target", default="c10valid_test_200ep", help="accuracy column (default c10valid_test_200ep)")
    parser.add_argument("--proxies", default=None, help="comma-separated candidates (default: every proxy column)")
    parser.add_argument("--train-fraction", type=float, default=0.2, help="share of networks used to fit (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/evaluation split")
    parser.add_argument("--max-size", type=int, default=4, help="most proxies in the rule (default 4)")
    parser.add_argument(
        "--aggregation",
        choices=("fit", "mean", "log"),
        default="fit",
        help="combine ranks by their mean or by the mean of their logs; fit (default): whichever "
        "fits the training split better",
    )
    parser.add_argument(
        "--fixed",
        default=None,
        metavar="P1,P2,...",
        help="label-free: evaluate this fixed rule (each proxy larger-is-better, weight 1) on every "
        "network, fitting nothing (aggregation: --aggregation, log when 'fit')",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--report", default=None, metavar="DIR", help="write ensemble.md and ensemble.json here")
    parser.add_argument("--notes", default="", help="a paragraph for the report")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def proxy_table(paths: list[str]) -> pd.DataFrame:
    """The proxy columns of several results tables, inner-joined on index (plus `arch` when one has it)."""
    joined: pd.DataFrame | None = None
    for path in paths:
        frame = read_table(path).rename(columns={"score": "gradsign"})
        keep = [c for c in frame.columns if c not in NOT_PROXIES and pd.api.types.is_numeric_dtype(frame[c])]
        if joined is not None:
            clash = sorted(set(keep) & set(joined.columns))
            if clash:
                raise GradSignError(f"{path}: proxy column(s) {clash} also come from an earlier table")
        if "arch" in frame.columns and (joined is None or "arch" not in joined.columns):
            keep.append("arch")
        joined = frame[keep] if joined is None else joined.join(frame[keep], how="inner")
    return joined


def run(args: argparse.Namespace) -> int:
    from gradsign_rs import stats
    from gradsign_rs.proxies import ensemble as ens
    from gradsign_rs.report import evaluate
    from gradsign_rs.spaces import nb201

    table = proxy_table(args.results)
    truth = read_table(args.truth or data_root() / "nb201" / "nb201_cifar10.csv", columns=[args.target])
    # Sorted by network, so the seeded split does not depend on the order rows were appended in.
    table = table.join(truth[[args.target]], how="inner").dropna(subset=[args.target]).sort_index()
    available = [c for c in table.columns if c not in ("arch", args.target)]
    fixed = [p.strip() for p in args.fixed.split(",") if p.strip()] if args.fixed else None
    candidates = fixed or ([p.strip() for p in args.proxies.split(",") if p.strip()] if args.proxies else available)
    unknown = sorted(set(candidates) - set(available))
    if unknown:
        raise GradSignError(f"no column(s) {unknown} in the joined tables; proxies there: {available}")
    if len(table) < 20:
        raise GradSignError(f"only {len(table)} networks are in every table and the truth; at least 20 are needed")
    values = {p: table[p].to_numpy(np.float64) for p in candidates}
    target = table[args.target].to_numpy(np.float64)
    if fixed:  # label-free: nothing is fitted, every network is evaluated, orientation is by definition
        train, held_out = np.arange(0), np.arange(len(table))
        aggregation = "log" if args.aggregation == "fit" else args.aggregation
        rule = ens.EnsembleRule(tuple(fixed), (1,) * len(fixed), None, aggregation)
    else:
        train, held_out = ens.split(len(table), args.train_fraction, args.seed)
        aggregations = ens.AGGREGATIONS if args.aggregation == "fit" else (args.aggregation,)
        rule = ens.fit(values, target, train, candidates=candidates, max_size=args.max_size, aggregations=aggregations)
    evaluation = pd.DataFrame({p: v[held_out] for p, v in values.items()}, index=table.index[held_out])
    evaluation["ensemble"] = ens.ensemble({p: v[held_out] for p, v in values.items()}, rule)
    evaluation[args.target] = target[held_out]
    trained = dict(zip(rule.proxies, rule.signs))
    orientation = {
        p: trained.get(p) or (-1 if train.size and ens.spearman(values[p][train], target[train]) < 0 else 1)
        for p in candidates
    }
    top = max(1, held_out.size // 100)
    rows = {}
    for column in ["ensemble", *candidates]:
        finite = evaluation[[column, args.target]].dropna()  # ±inf stay: they rank as the extremes
        oriented = finite.assign(**{column: orientation.get(column, 1) * finite[column]})
        rows[column] = evaluate(oriented, args.target, score=column, bootstrap=args.bootstrap, seed=args.seed)
        rows[column].precision_at_k[top] = stats.precision_at_k(oriented[column], oriented[args.target], top)
    subsets = {}
    dead = nb201.dead_operation_mask(table["arch"].iloc[held_out]) if "arch" in table.columns else None
    if dead is not None:
        for name, mask in (("without dead operations", ~dead), ("with dead operations", dead)):
            if mask.sum() >= 3:
                subsets[name] = (
                    int(mask.sum()),
                    ens.spearman(evaluation["ensemble"].to_numpy()[mask], target[held_out][mask]),
                )
    result = {
        "rule": rule.to_json(),
        "target": args.target,
        "networks": {"train": int(train.size), "evaluation": int(held_out.size)},
        "split_seed": args.seed,
        "evaluation": {name: e.to_dict() for name, e in rows.items()},
        "top_1_percent": top,
        "ensemble_by_subset": {name: {"networks": n, "spearman": rho} for name, (n, rho) in subsets.items()},
        "sources": [Path(p).name for p in args.results],
    }
    text = markdown(result, rows, subsets, top=top, notes=args.notes)
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ensemble.md").write_text(text)
        (out / "ensemble.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else text, end="" if not args.json else "\n")
    return 0


def markdown(result: dict, rows: dict, subsets: dict, *, top: int, notes: str) -> str:
    rule = result["rule"]
    log = "log " if rule["aggregation"] == "log" else ""
    terms = " + ".join(
        f"{'' if w == 1 else f'{w:g}·'}{log}rank({'' if s > 0 else '-'}{p})"
        for p, s, w in zip(rule["proxies"], rule["signs"], rule["weights"])
    )
    fitted = result["networks"]["train"] > 0
    origin = (
        f"fitted on {result['networks']['train']} networks, split seed {result['split_seed']}"
        if fitted
        else "fixed without labels, every proxy larger-is-better, nothing fitted"
    )
    scope = "the other" if fitted else "all"
    lines = [
        f"# Rank ensemble of proxies vs {result['target']}",
        "",
        notes,
        "",
        f"Rule ({origin}): ({terms}) / {sum(rule['weights']):g} (aggregation: {rule['aggregation']}; rank(p) is p's "
        "rank among the networks scored, divided by their count).",
        f"Everything below is on {scope} {result['networks']['evaluation']} networks.",
        "",
        f"| predictor | networks | Spearman ρ (95% CI) | Kendall τ | precision@{top} (top 1%) |",
        "|---|---:|---|---:|---:|",
    ]
    for name, e in sorted(rows.items(), key=lambda kv: (kv[0] != "ensemble", -kv[1].spearman)):
        lines.append(
            f"| {name} | {e.n} | {e.spearman:.4f} ({e.spearman_ci[0]:.4f}, {e.spearman_ci[1]:.4f}) | "
            f"{e.kendall:.4f} | {e.precision_at_k[top]:.2f} |"
        )
    if subsets:
        lines += ["", "Ensemble by subset of the evaluation networks:", ""]
        lines += [f"- {name}: {n} networks, Spearman {rho:.4f}" for name, (n, rho) in subsets.items()]
    lines += [
        "",
        "Proxies oriented as fitted (a proxy that predicts lower-is-better is negated). A single proxy is "
        "evaluated on the networks where it is not NaN (its `networks` count); the ensemble on all of them.",
        f"Sources: {', '.join(result['sources'])}.",
        "",
    ]
    return "\n".join(lines)
