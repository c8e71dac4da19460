"""`--backend local|ray`, `--address`, `--workers`: where the long commands (batch, search) run their work."""

from __future__ import annotations

import argparse

from gradsign_rs._core import GradSignError
from gradsign_rs.processes import LocalPool, Pool


def add_arguments(parser: argparse.ArgumentParser, *, default_workers: str, noun: str) -> None:
    """The backend options of a command whose `noun`s (networks, runs) run in workers (`default_workers`: how the
    local default is described)."""
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help=f"where {noun} run: local worker processes (default), or the nodes of a Ray cluster "
        "(pip install 'gradsign-rs[ray]')",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT|auto",
        help="with --backend ray: the cluster's head node, or auto for the one running here "
        "(default: start Ray on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"worker processes (default: {default_workers}); with --backend ray: actors, at most one per CPU "
        "(default: every CPU of the cluster)",
    )


def make_pool(args: argparse.Namespace, *, default_workers: int) -> Pool:
    """The pool the options ask for: local worker processes (checked here, before any work), or a Ray pool."""
    if args.backend == "local":
        if args.address is not None:
            raise GradSignError("--address is for --backend ray; the local backend runs on this machine")
        return LocalPool(default_workers if args.workers is None else args.workers)
    from gradsign_rs.cluster import RayPool

    return RayPool(args.address, workers=args.workers)
