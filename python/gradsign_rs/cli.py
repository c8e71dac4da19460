"""The `gradsign` command line: one subcommand per module in `gradsign_rs.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from gradsign_rs import __version__
from gradsign_rs._core import GradSignError
from gradsign_rs.processes import WorkerCrashed

# Each module has `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
SUBCOMMANDS = ("score", "batch", "eval", "correlate", "validate", "ensemble", "search", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradsign",
        description="GradSign zero-cost proxy for ONNX classifiers (Zhang & Jia, ICLR 2022).",
    )
    parser.add_argument("-V", "--version", action="version", version=f"gradsign-rs {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"gradsign_rs.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gradsign_rs.commands.{name}":
                raise
            continue  # a subcommand not written yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except GradSignError as exc:
        print(f"gradsign: error: {exc}", file=sys.stderr)
        return 2
    except WorkerCrashed as exc:  # native code died in a worker: a failure of the run, not of the input
        print(f"gradsign: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # a resource failure (the Rust core names what it could not allocate), not bad input
        print(f"gradsign: out of memory: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the commands did not name (they raise GradSignError for the ones they read)
        print(
            f"gradsign: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("gradsign: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
