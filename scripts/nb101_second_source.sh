#!/usr/bin/env bash
# Issue 17: GradSign on the 163 NAS-Bench-101 cells that both the shared 30,001-cell table and the second source
# (nb101_cifar10_2500_second_source.csv) hold: GradSign against two independent single training runs of the same
# cells (val_acc_108, acc_single_run), and the two runs against each other, on one set of cells. Resumable.
# Usage: bash scripts/nb101_second_source.sh [WORKERS] [gradsign batch options]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
shift || true
data=${GRADSIGN_DATA:-../shared/data}/nb101
list=$(mktemp)
trap 'rm -f "$list"' EXIT
# The shared cells' module hashes, sorted: the --archs file (a hash per line).
.venv/bin/python -c '
import sys
import pandas as pd
table, second = (pd.read_csv(f"{sys.argv[1]}/{name}", usecols=["hash"], dtype=str)["hash"] for name in
                 ("nb101_cifar10_30k.csv", "nb101_cifar10_2500_second_source.csv"))
print("\n".join(sorted(set(table) & set(second))))
' "$data" > "$list"
.venv/bin/gradsign batch --space nb101 --dataset cifar10 --n 128 --seed 42 --workers "$workers" --archs "$list" \
  --out results/nb101/gradsign_second_source_shared.csv --no-progress "$@"
