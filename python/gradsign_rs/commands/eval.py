"""`gradsign eval RESULTS.csv --truth TRUTH.csv --target COLUMN`: rank correlation against ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.truth import read_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="Spearman, Kendall, precision@k of a scores table against ground truth, with a report",
        description="Join a scores table with ground truth on the network index and report rank statistics.",
    )
    parser.add_argument("results", metavar="RESULTS.csv", help="scores table (from gradsign batch)")
    parser.add_argument(
        "--truth", required=True, metavar="TRUTH.csv", help="ground truth table, e.g. nb201_cifar10.csv"
    )
    parser.add_argument("--target", required=True, action="append", help="accuracy column (repeat for several)")
    parser.add_argument("--on", default="index", help="column joining the two tables (default: index)")
    parser.add_argument(
        "--archs",
        default=None,
        metavar="SPEC",
        help="evaluate only these networks: sample:K (with --sample-seed) or a FILE, as gradsign batch",
    )
    parser.add_argument("--sample-seed", type=int, default=0, help="seed for --archs sample:K (default 0)")
    parser.add_argument("--score", default="score", help="score column (default: score)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--report", default=None, metavar="DIR", help="write summary.md, evaluation.json and plots here"
    )
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--notes", default="", help="a paragraph for the report (protocol, caveats)")
    parser.add_argument(
        "--appendix",
        default=None,
        metavar="FILE.md",
        help="markdown appended to the report's summary.md (e.g. an analysis of the result)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gradsign_rs.report import evaluate, subset_spearman, write_report  # matplotlib, stats load only here

    appendix = ""
    if args.appendix:
        try:
            appendix = Path(args.appendix).read_bytes().decode("utf-8")
        except OSError as exc:
            raise GradSignError(f"--appendix {args.appendix}: cannot read it ({exc.strerror})") from exc
        except UnicodeDecodeError:
            raise GradSignError(f"--appendix {args.appendix}: not UTF-8 text") from None
    truth = read_table(args.truth, on=args.on, columns=args.target)
    # A key column of numbers in the truth must be numbers in the scores too: text there would join nothing.
    scores = read_table(
        args.results, on=args.on, columns=[args.score], numeric_key=pd.api.types.is_numeric_dtype(truth.index)
    )
    table = scores[[args.score]].join(truth[args.target], how="inner").dropna()
    if args.archs:
        from gradsign_rs.batch import resolve_archs

        wanted = [job.index for job in resolve_archs(args.archs, sample_seed=args.sample_seed)]
        table = table[table.index.isin(wanted)]
        if len(table) < len(wanted):
            print(f"note: {len(wanted) - len(table)} of the {len(wanted)} networks of {args.archs} are not scored yet")
    if len(table) == 0:
        among = f", among {args.archs}" if args.archs else ""
        raise GradSignError(
            f"no network has both a {args.score!r} value in {args.results} and "
            f"{', '.join(args.target)} in {args.truth} (joined on {args.on!r}{among}); nothing to evaluate"
        )
    evaluations = [evaluate(table, t, score=args.score, bootstrap=args.bootstrap, seed=args.seed) for t in args.target]
    subsets = subset_spearman(table, nb201_subsets(scores.loc[table.index]), args.target, score=args.score)
    if args.report:
        title = args.title or f"GradSign evaluation: {Path(args.results).name}"
        try:
            write_report(
                table,
                evaluations,
                Path(args.report),
                title=title,
                notes=args.notes,
                score=args.score,
                subsets=subsets,
                appendix=appendix,
            )
        except OSError as exc:
            raise GradSignError(
                f"--report {args.report}: cannot write the report ({exc.strerror}: {exc.filename})"
            ) from None
    if args.json:
        print(json.dumps([e.to_dict() for e in evaluations], indent=2))
        return 0
    print(f"{len(table)} networks in both {args.results} and {args.truth}")
    for e in evaluations:
        print(
            f"{e.target}: Spearman {e.spearman:.4f} [{e.spearman_ci[0]:.4f}, {e.spearman_ci[1]:.4f}]  "
            f"Kendall {e.kendall:.4f} [{e.kendall_ci[0]:.4f}, {e.kendall_ci[1]:.4f}]  "
            + "  ".join(f"P@{k} {v:.2f}" for k, v in e.precision_at_k.items())
        )
    for name, by_target in subsets.items():
        print(f"  {name}: " + ", ".join(f"{t} Spearman {rho:.4f} (n={n})" for t, (n, rho) in by_target.items()))
    if args.report:
        print(f"report written to {args.report}")
    return 0


def nb201_subsets(scores) -> dict:
    """Masks of NAS-Bench-201 cells without and with dead operations, when the table has NB201 `arch` strings."""
    if "arch" not in scores.columns:
        return {}
    from gradsign_rs.spaces.nb201 import dead_operation_mask

    dead = dead_operation_mask(scores["arch"])
    return {} if dead is None else {"without dead operations": ~dead, "with dead operations": dead}
