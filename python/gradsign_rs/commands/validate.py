"""`gradsign validate RESULTS.csv`: this project's proxies against published values on the same architectures."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradsign_rs.data import data_root
from gradsign_rs.truth import proxy_table, read_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="rank agreement of proxy columns with published values (NAS-Bench-Suite-Zero)",
        description=__doc__,
    )
    parser.add_argument(
        "results", nargs="+", metavar="RESULTS.csv", help="`gradsign batch --proxies ...` tables, joined on --on"
    )
    parser.add_argument(
        "--published",
        default=None,
        metavar="FILE.csv",
        help="published values (default: nb201/peer_proxies_cifar10.csv in $GRADSIGN_DATA)",
    )
    parser.add_argument(
        "--second",
        default=None,
        metavar="FILE.json",
        help="a second published source, NASLib's NAS-Bench-Suite-Zero JSON of NAS-Bench-201 (default: "
        "suite_zero/zc_nasbench201_subset725.json in $GRADSIGN_DATA, when present and joining on index)",
    )
    parser.add_argument(
        "--truth",
        default=None,
        metavar="TRUTH.csv",
        help="accuracies (default: nb201/nb201_cifar10.csv in $GRADSIGN_DATA)",
    )
    parser.add_argument("--target", default="c10valid_test_200ep", help="accuracy column (default c10valid_test_200ep)")
    parser.add_argument("--on", default="index", help="column joining the tables (default index; NB101: hash)")
    parser.add_argument(
        "--mean-duplicates",
        action="store_true",
        help="average --published and --truth rows that share a key (NASLib's NB101 sample lists some cells "
        "several times)",
    )
    parser.add_argument("--title", default="Proxies vs published values (NAS-Bench-201, CIFAR-10)", help="report title")
    parser.add_argument("--report", default=None, metavar="DIR", help="write validation.md and validation.json here")
    parser.add_argument("--notes", default="", help="a paragraph for the report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gradsign_rs.proxies import PROXIES
    from gradsign_rs.proxies.validation import compare, markdown, read_suite_zero, write_report

    ours = proxy_table(args.results, on=args.on)
    ours = ours[[c for c in ours.columns if c in PROXIES]]
    published_path = Path(args.published or data_root() / "nb201" / "peer_proxies_cifar10.csv")
    published = read_table(published_path, on=args.on, mean_duplicates=args.mean_duplicates)
    truth = read_table(
        args.truth or data_root() / "nb201" / "nb201_cifar10.csv",
        on=args.on,
        columns=[args.target],
        mean_duplicates=args.mean_duplicates,
    )[args.target]
    default_second = data_root() / "suite_zero" / "zc_nasbench201_subset725.json"
    second_path = args.second or (default_second if default_second.is_file() and args.on == "index" else None)
    second = read_suite_zero(second_path) if second_path else None
    rows = compare(ours, published, truth, second)
    source = ", ".join(Path(p).name for p in args.results)
    print(markdown(rows, target=args.target, source=source, published=published_path.name), end="")
    if args.report:
        write_report(
            rows,
            Path(args.report),
            target=args.target,
            source=source,
            published=published_path.name,
            title=args.title,
            notes=args.notes,
        )
        print(f"report written to {args.report}")
    return 0 if all(r.passes for r in rows) else 1
