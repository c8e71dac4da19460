"""`gradsign correlate SCORES.csv --truth TRUTH.csv --target COLUMN`: rank statistics of every score column."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.truth import read_table

# Numeric columns of a scores table that describe the run, not a score.
NON_SCORE_COLUMNS = ("n_samples", "n_weights", "seconds")
TOP_K = (10, 100)
METHODS = ("spearman", "kendall")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "correlate",
        help="Spearman, Kendall and precision@k of every score column against one ground-truth column",
        description="Join a scores table with ground truth and rank every numeric score column against the target, "
        "with bootstrap intervals (the same resamples for every column).",
    )
    parser.add_argument(
        "scores", metavar="SCORES.csv", help="scores table, one column per proxy (e.g. from gradsign batch)"
    )
    parser.add_argument(
        "--truth", required=True, metavar="TRUTH.csv", help="ground truth table, e.g. nb201_cifar10.csv"
    )
    parser.add_argument("--target", required=True, help="ground-truth column, e.g. c10_test_200ep")
    parser.add_argument("--on", default="index", help="column joining the two tables (default: index)")
    parser.add_argument(
        "--columns",
        default=None,
        type=_names,
        help="comma-separated score columns (default: every numeric column but " + ", ".join(NON_SCORE_COLUMNS) + ")",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The numeric columns of a scores table that are scores (booleans and run metadata left out)."""
    numeric = scores.select_dtypes(include="number").columns
    return [c for c in numeric if c not in NON_SCORE_COLUMNS and not pd.api.types.is_bool_dtype(scores[c])]


def correlation_table(scores: pd.DataFrame, truth: pd.Series, *, bootstrap: int, seed: int) -> pd.DataFrame:
    """One row per score column: n, Spearman and Kendall tau-b with intervals, precision@k for k in TOP_K."""
    from gradsign_rs import stats

    table = stats.correlate(scores, truth.to_numpy(np.float64), methods=METHODS, bootstrap=bootstrap, seed=seed)
    y = truth.to_numpy(np.float64)
    for k in TOP_K:
        precision = []
        for name in scores.columns:
            x = scores[name].to_numpy(np.float64)
            pairs = int((~np.isnan(x) & ~np.isnan(y)).sum())
            precision.append(stats.precision_at_k(x, y, k) if k <= pairs else math.nan)
        table[f"precision@{k}"] = precision
    return table


def run(args: argparse.Namespace) -> int:
    truth = read_table(args.truth, on=args.on, columns=[args.target])
    # Key numbers in the truth must be numbers in the scores; a score column with text in some rows is refused by
    # line rather than left out of the table.
    scores = read_table(
        args.scores,
        on=args.on,
        columns=args.columns,
        numeric_key=pd.api.types.is_numeric_dtype(truth.index),
        infer_numeric=args.columns is None,
    )
    names = args.columns or score_columns(scores)
    not_numeric = [c for c in names if not pd.api.types.is_numeric_dtype(scores[c])]
    if not_numeric:
        raise GradSignError(f"{args.scores}: column(s) {not_numeric} are not numeric")
    if not names:
        raise GradSignError(f"{args.scores}: no numeric score columns; columns are {list(scores.columns)}")
    rows = scores.index.intersection(truth.index, sort=False)
    if len(rows) == 0:
        raise GradSignError(f"no {args.on!r} value is in both {args.scores} and {args.truth}")
    table = correlation_table(
        scores.loc[rows, names], truth.loc[rows, args.target], bootstrap=args.bootstrap, seed=args.seed
    )
    if args.json:
        records = {
            str(name): {key: _json_number(value) for key, value in row.items()}
            for name, row in table.to_dict(orient="index").items()
        }
        print(
            json.dumps(
                {
                    "target": args.target,
                    "rows": len(rows),
                    "bootstrap": args.bootstrap,
                    "seed": args.seed,
                    "columns": records,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{len(rows)} rows in both {args.scores} and {args.truth}; target {args.target}; "
        f"95% percentile bootstrap intervals over {args.bootstrap} resamples"
    )
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def _json_number(value: float | int) -> float | int | None:
    """NaN as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return int(value) if isinstance(value, (int, np.integer)) else float(value)
