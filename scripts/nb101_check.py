"""Check the NAS-Bench-101 space against the shared table: every row's cell must parse, be canonical (already pruned),
reproduce the official module hash, and give the benchmark's `trainable_parameters` from the network builder.

    .venv/bin/python scripts/nb101_check.py [--table CSV] [--limit N] [--build K]

--build K also builds the full ONNX network (128 channels, random weights) of K rows spread over the table and
checks that its trainable initializers add up to the table's count (slow: about 0.1-0.3 s per network).
Prints a summary; exits 1 when any row disagrees.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np
import onnx
from gradsign_rs._core import GradSignError
from gradsign_rs.spaces import nb101

SECOND_SOURCE = "nb101/nb101_cifar10_2500_second_source.csv"


def onnx_trainable_parameters(model: onnx.ModelProto) -> int:
    """Float initializers except BN running statistics: conv kernels, BN scale/bias, dense weight and bias."""
    return sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and not t.name.endswith(("running_mean", "running_var"))
    )


def check_rows(frame, params_column: str, label: str) -> int:
    """Check hash, canonical form and parameter count of every row; print a summary; return the number of bad rows."""
    start = time.perf_counter()
    bad_hash, bad_params, not_pruned, errors = [], [], [], []
    by_vertices: collections.Counter[int] = collections.Counter()
    for position, row in enumerate(frame.itertuples(index=False)):
        try:
            cell = nb101.Cell.from_row(row._asdict())
        except GradSignError as exc:
            errors.append((position, str(exc)))
            continue
        by_vertices[cell.num_vertices] += 1
        if not cell.is_pruned:
            not_pruned.append(position)
        if cell.hash != row.hash:
            bad_hash.append((position, row.hash, cell.hash))
        count = nb101.parameter_count(cell)
        if count != getattr(row, params_column):
            bad_params.append((position, getattr(row, params_column), count))
    seconds = time.perf_counter() - start
    print(f"{label}: {len(frame)} rows in {seconds:.1f} s; vertices {dict(sorted(by_vertices.items()))}")
    print(
        f"  unparseable: {len(errors)}  not canonical (prunable): {len(not_pruned)}  hash mismatches: {len(bad_hash)}"
        f"  {params_column} mismatches: {len(bad_params)}"
    )
    for what, items in (("unparseable", errors), ("hash", bad_hash), ("params", bad_params)):
        for item in items[:5]:
            print(f"  {what} row {item}")
    return len(errors) + len(not_pruned) + len(bad_hash) + len(bad_params)


def check_built(frame, k: int) -> int:
    """Build K full-size networks and compare their initializer counts with the table; return mismatches."""
    picks = np.linspace(0, len(frame) - 1, k).round().astype(int)
    start = time.perf_counter()
    bad = 0
    for position in picks:
        row = frame.iloc[position]
        model = nb101.build_onnx(nb101.Cell.from_row(row), seed=int(position))
        count = onnx_trainable_parameters(model)
        if count != row["trainable_parameters"]:
            bad += 1
            print(f"  built row {position}: {count} != {row['trainable_parameters']}")
    print(f"built ONNX networks: {k} rows in {time.perf_counter() - start:.1f} s, parameter mismatches: {bad}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=None, help="the table (default: nb101/nb101_cifar10_30k.csv in the data)")
    parser.add_argument("--limit", type=int, default=None, help="check only the first N rows")
    parser.add_argument("--build", type=int, default=0, metavar="K", help="also build K full ONNX networks")
    args = parser.parse_args(argv)
    frame = nb101.load_table(args.table)
    if args.limit:
        frame = frame.head(args.limit)
    bad = check_rows(frame, "trainable_parameters", str(args.table or nb101.table_path()))
    second = nb101.data_root() / SECOND_SOURCE
    if args.table is None and second.is_file():
        bad += check_rows(nb101.load_table(second), "params_computed", str(second))
    if args.build:
        bad += check_built(frame, args.build)
    print("OK: every row agrees" if not bad else f"FAILED: {bad} disagreements")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
