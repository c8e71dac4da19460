"""`gradsign search --algo rea --assist gradsign --scores SCORES.csv --runs 500`: simulated NAS on NAS-Bench-201."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradsign_rs.commands import backend

PROTOCOL_NOTES = (
    "Protocol: NAS-Bench-201 simulated search. Evaluating a network returns its cifar10-valid validation accuracy "
    "after 12 epochs and charges that run's training time to a simulated clock; a charge that does not fit in what "
    "is left of the budget is not made and the run ends. Accuracies are the benchmark's seed averages (NAS-Bench-201's "
    "code samples one seed per query). The found network is the best evaluated one by 12-epoch validation accuracy; "
    "its 200-epoch accuracies are reported. RS, REA (population 10, tournament 3), REINFORCE (Adam lr 0.01, "
    "EMA baseline 0.9) and BOHB's TPE model at a single fidelity (optuna TPESampler, 4 EI candidates, 14 random "
    "start-up proposals); NAS-Bench-201's own BOHB ran Hyperband brackets whose promotions re-evaluate the same "
    "networks at full cost, so its published row is not comparable. Assisted: M candidates per proposal (random "
    "samples, mutations of the parent, policy samples, TPE draws), the best by proxy is evaluated."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="simulated NAS on NAS-Bench-201 (RS, REA, REINFORCE, BOHB), vanilla and proxy-assisted",
        description=(
            "Run NAS algorithms on tabular NAS-Bench-201 under a simulated time budget and report the accuracies of "
            "the networks they find. With --assist, each algorithm runs vanilla and assisted (M candidates per "
            "proposal, the best by proxy evaluated) on the same seeds. With --out, runs are appended as they finish "
            "and a re-run skips finished (algo, assist, seed) runs."
        ),
    )
    parser.add_argument("--algo", required=True, help="rs, rea, reinforce, bohb, a comma-separated list, or all")
    parser.add_argument(
        "--assist",
        default=None,
        metavar="PROXY",
        help="proxy assisting the search: gradsign (the table's score column) or another column name",
    )
    parser.add_argument(
        "--scores",
        default=None,
        metavar="FILE.csv",
        help="proxy scores table: columns index, the proxy's column, seconds (from gradsign batch)",
    )
    parser.add_argument("--candidates", type=int, default=10, help="candidates per assisted proposal, M (default 10)")
    parser.add_argument("--runs", type=int, default=500, help="runs per algorithm and variant (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; runs use seeds SEED..SEED+RUNS-1 (default 0)")
    parser.add_argument(
        "--budget", type=float, default=12000.0, help="simulated time budget per run, s (default 12000)"
    )
    parser.add_argument(
        "--no-proxy-time",
        action="store_true",
        help="do not charge proxy compute time (the GradSign paper's accounting)",
    )
    parser.add_argument(
        "--skip-evaluated",
        action="store_true",
        help="assisted picks skip candidates the run has already evaluated while a new one is on offer "
        "(not the paper's rule; it stops assisted REA re-training the same networks)",
    )
    parser.add_argument(
        "--allow-on-the-fly",
        action="store_true",
        help="score networks missing from the table with GradSign during the search (measured seconds)",
    )
    backend.add_arguments(parser, default_workers="1", noun="runs")
    parser.add_argument("--out", default=None, metavar="RUNS.csv", help="runs file, appended to and resumed from")
    parser.add_argument(
        "--drop-malformed",
        action="store_true",
        help="move malformed rows of the --out runs file to RUNS.csv.malformed and go on",
    )
    parser.add_argument(
        "--report", default=None, metavar="DIR", help="write summary.md, summary.json, anytime.png here"
    )
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_algorithms(text: str) -> list[str]:
    from gradsign_rs._core import GradSignError
    from gradsign_rs.search.runner import ALGORITHMS

    names = list(ALGORITHMS) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALGORITHMS]
    if unknown or not names:
        raise GradSignError(f"--algo {text!r}: choose from {', '.join(ALGORITHMS)} (comma-separated) or all")
    return list(dict.fromkeys(names))


# Most runs per algorithm and variant: enough for any study, and a mistyped count fails here, not after days.
MAX_RUNS = 100_000
MAX_SEED = 2**63 - 1  # seeds are recorded in the runs file: keep them within int64


def _check_counts(args: argparse.Namespace) -> None:
    """Refuse run counts and seeds no search could run with, naming the flag (budget and candidates
    are checked by SearchSettings)."""
    from gradsign_rs._core import GradSignError

    if not 1 <= args.runs <= MAX_RUNS:
        raise GradSignError(f"--runs must be an integer in 1..{MAX_RUNS}, got {args.runs}")
    if not 0 <= args.seed <= MAX_SEED - args.runs + 1:
        raise GradSignError(
            f"--seed must be an integer in 0..{MAX_SEED - args.runs + 1} (seeds SEED..SEED+RUNS-1), got {args.seed}"
        )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gradsign_rs._core import GradSignError
    from gradsign_rs.search import report
    from gradsign_rs.search.benchmark import NB201Table
    from gradsign_rs.search.runner import VANILLA, RunSpec, SearchSettings, check_coverage, run_many, scores_id
    from gradsign_rs.search.runs_file import RunsFile, to_row

    _check_counts(args)
    pool = backend.make_pool(args, default_workers=1)
    if args.assist == VANILLA:
        raise GradSignError(f"--assist {VANILLA!r} is not a proxy; leave --assist out for vanilla runs only")
    settings = SearchSettings(
        budget=args.budget,
        candidates=args.candidates,
        charge_proxy_time=not args.no_proxy_time,
        scores=args.scores,
        allow_on_the_fly=args.allow_on_the_fly,
        skip_evaluated=args.skip_evaluated,
    )
    variants = [VANILLA] + ([args.assist] if args.assist else [])
    specs = [
        RunSpec(a, v, s)
        for a in parse_algorithms(args.algo)
        for v in variants
        for s in range(args.seed, args.seed + args.runs)
    ]
    sid = ""
    if args.assist:
        check_coverage(settings, [args.assist])  # refuse before any run, not after hours of vanilla ones
        sid = scores_id(settings, [args.assist])

    rows: list[dict[str, object]] = []
    todo = specs
    runs_file = None
    if args.out:
        runs_file = RunsFile(args.out)
        runs_file.lock()  # one writer at a time, from reading the finished runs to the last row appended
    try:
        if runs_file is not None:
            done = runs_file.open(drop_malformed=args.drop_malformed)
            if runs_file.dropped:
                print(f"moved {len(runs_file.dropped)} malformed rows of {args.out} to {runs_file.malformed_path}")
            for spec in specs:
                if spec in done:
                    runs_file.check_settings(done[spec], spec, settings, sid)
                    rows.append(dict(done[spec]))
            todo = [spec for spec in specs if spec not in done]
        bar = tqdm(total=len(todo), unit="run", disable=args.no_progress, smoothing=0.05, dynamic_ncols=True)
        try:
            for result in run_many(settings, todo, pool=pool):
                row = to_row(result, settings, sid if result.spec.assisted else "")
                if runs_file is not None:
                    runs_file.append(row)
                rows.append(row)
                bar.update(1)
                if pool is not None:
                    bar.set_postfix(pool.status(), refresh=False)
        finally:
            bar.close()
    finally:
        if runs_file is not None:
            runs_file.unlock()

    frame = report.runs_frame(rows)
    summary = report.summarize(frame)
    if args.report:
        title = args.title or "NAS-Bench-201 search: " + (
            f"vanilla vs {args.assist}-assisted" if args.assist else "vanilla"
        )
        settings_line = (
            f"Settings: budget {args.budget:g} s per run, seeds {args.seed}..{args.seed + args.runs - 1}"
            + (
                f", M = {args.candidates} candidates, proxy time {'charged' if settings.charge_proxy_time else 'free'}, "
                + ("already evaluated candidates skipped, " if settings.skip_evaluated else "")
                + f"scores {args.scores or 'on the fly'}"
                if args.assist
                else ""
            )
            + "."
        )
        try:
            report.write_report(
                frame,
                NB201Table.load().finals,
                Path(args.report),
                budget=args.budget,
                title=title,
                notes=PROTOCOL_NOTES + "\n\n" + settings_line,
            )
        except OSError as exc:
            raise GradSignError(
                f"--report {args.report}: cannot write the report ({exc.strerror}: {exc.filename})"
            ) from None
    if args.json:
        print(
            json.dumps(
                {
                    "settings": {
                        "budget": args.budget,
                        "candidates": args.candidates,
                        "proxy_time": settings.charge_proxy_time,
                        "skip_evaluated": settings.skip_evaluated,
                        "scores": args.scores,
                        "seeds": [args.seed, args.seed + args.runs - 1],
                    },
                    **report.summary_json(summary, report.paired_gains(frame)),
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{len(frame)} runs ({len(todo)} new), budget {args.budget:g} s; accuracy (%) of the found networks, mean +- std:"
    )
    print(report.format_summary(summary))
    gains = report.paired_gains(frame)
    for record in gains.to_dict("records"):
        print(
            f"{record['algo']} + {record['assist']} - vanilla over {record['pairs']} seeds: "
            + "  ".join(f"{report.LABELS[t]} {record[f'{t}_gain']:+.2f}" for t in report.ANYTIME_TARGETS)
        )
    if args.report:
        print(f"report written to {args.report}")
    return 0
