"""`gradsign batch --space nb201 --archs all --out RESULTS.csv` or `gradsign batch --models DIR --data FILE.npz
--out RESULTS.csv`: resumable scoring of many networks (search-space architectures or ONNX files)."""

from __future__ import annotations

import argparse
import os

from gradsign_rs._core import GradSignError
from gradsign_rs.batch import DATASETS, MAX_CRASHES, BatchConfig, resolve_archs, resolve_models, run_batch
from gradsign_rs.commands import backend
from gradsign_rs.data import LAYOUTS, NORMALIZATION, data_root


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="score many search-space networks, resumably",
        description=(
            "Score networks of a search space, one CSV row each, appended as they finish. Re-running the same "
            "command skips what is done: a killed run resumes and each network is scored exactly once."
        ),
    )
    parser.add_argument(
        "--space",
        default="nb201",
        choices=["nb201", "nb101"],
        help="search space (nb101: the rows of the shared NAS-Bench-101 table; index = row)",
    )
    parser.add_argument(
        "--archs",
        default=None,
        help="all (default) | sample:K | FILE of arch strings or indices (nb101: row numbers or hashes, or a CSV "
        "with hash, adjacency and ops columns)",
    )
    parser.add_argument(
        "--models",
        default=None,
        metavar="DIR|GLOB|LIST",
        help="score ONNX files instead of a search space: a folder of .onnx, a glob pattern, or a text file of paths "
        "(rows keyed by resolved path; give --data and, unless it is cifar10's, --normalize)",
    )
    parser.add_argument("--sample-seed", type=int, default=0, help="seed for --archs sample:K")
    parser.add_argument(
        "--dataset", default="cifar10", choices=sorted(DATASETS), help="normalisation, classes and default data"
    )
    parser.add_argument(
        "--data", default=None, metavar="FILE.npz", help="images (default: the dataset's file in $GRADSIGN_DATA)"
    )
    parser.add_argument(
        "--n", type=int, default=128, help="samples per network: the first N of the file after --offset (default 128)"
    )
    parser.add_argument("--offset", type=int, default=0, help="skip the first OFFSET images of the file (default 0)")
    parser.add_argument(
        "--normalize",
        default=None,
        choices=[*NORMALIZATION, "none"],
        help="per-channel normalisation of the images (default: the dataset's)",
    )
    parser.add_argument("--seed", type=int, default=None, help="weight initialisation seed (default 42, the paper's)")
    parser.add_argument(
        "--layout",
        default="nchw",
        choices=LAYOUTS,
        help="how --models take images: nchw (torch), nhwc (Keras, TF, JAX), flat (MLP)",
    )
    parser.add_argument("--size", type=int, default=None, help="resize the images to SIZE x SIZE (bilinear) first")
    parser.add_argument(
        "--proxies",
        default="gradsign",
        help="comma-separated proxies, e.g. gradsign,synflow,nwot (default gradsign; others add one column each)",
    )
    parser.add_argument(
        "--proxy-batch-size",
        type=int,
        default=64,
        help="mini-batch of the batch proxies (grad_norm, snip, ...): the first B of the N samples (default 64)",
    )
    parser.add_argument("--out", required=True, metavar="RESULTS.csv", help="results file (appended to)")
    parser.add_argument(
        "--drop-malformed",
        action="store_true",
        help="move malformed rows of --out (reported by line on resume) to RESULTS.csv.malformed and go on",
    )
    parser.add_argument(
        "--retry-crashed",
        action="store_true",
        help=f"also score networks whose worker process crashed {MAX_CRASHES} runs in a row "
        "(skipped otherwise; see RESULTS.csv.errors.jsonl)",
    )
    backend.add_arguments(parser, default_workers="cores", noun="networks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    relative, dataset_normalize, classes, _ = DATASETS[args.dataset]
    normalize: str | None = dataset_normalize
    data = args.data or str(data_root() / relative)
    if args.normalize is not None:
        normalize = None if args.normalize == "none" else args.normalize
    from gradsign_rs.proxies import parse_names

    if args.space == "nb101" and args.dataset != "cifar10":
        raise GradSignError(f"--space nb101 is a CIFAR-10 benchmark; --dataset {args.dataset} does not apply")
    files = args.models is not None
    if files:
        given = [flag for flag, value in (("--archs", args.archs), ("--seed", args.seed)) if value is not None]
        if given:
            raise GradSignError(
                f"{' and '.join(given)} choose search-space networks; ONNX files from --models carry their own weights"
            )
    seed = 42 if args.seed is None else args.seed
    config = BatchConfig(
        space="files" if files else args.space,
        data=os.path.abspath(data),
        normalize=normalize,
        num_classes=0 if files else classes,
        n=args.n,
        seed=0 if files else seed,
        proxies=parse_names(args.proxies),
        proxy_batch_size=args.proxy_batch_size,
        offset=args.offset,
        layout=args.layout,
        size=args.size,
    )
    jobs = (
        resolve_models(args.models)
        if files
        else resolve_archs(args.archs or "all", sample_seed=args.sample_seed, space=args.space)
    )
    pool = backend.make_pool(args, default_workers=os.cpu_count() or 1)
    summary = run_batch(
        config,
        jobs,
        args.out,
        pool=pool,
        progress=not args.no_progress,
        drop_malformed=args.drop_malformed,
        retry_crashed=args.retry_crashed,
    )
    rate = summary.scored / summary.seconds * 3600 if summary.seconds > 0 and summary.scored else 0.0
    if summary.dropped:
        print(f"moved {summary.dropped} malformed rows of {args.out} to {args.out}.malformed")
    crashed = f" ({summary.crashed} crashed their worker process)" if summary.crashed else ""
    print(
        f"{args.out}: scored {summary.scored}, already done {summary.skipped}, failed {summary.failed}{crashed} "
        f"in {summary.seconds:.1f} s ({rate:.0f} networks/hour)"
    )
    if summary.given_up:
        print(
            f"not tried: {summary.given_up} networks that crashed their worker process {MAX_CRASHES} runs in a row "
            f"(see {args.out}.errors.jsonl; --retry-crashed tries them again)"
        )
    return 1 if summary.failed or summary.given_up else 0
