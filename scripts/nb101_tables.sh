#!/usr/bin/env bash
# Issue 17: GradSign on a uniform sample of 2000 NAS-Bench-101 cells (rows of the shared table, sample seed 0), the
# paper's protocol (first 128 CIFAR-10 training images, weight seed 42). Resumable: re-running skips what is done.
# Usage: bash scripts/nb101_tables.sh [WORKERS] [gradsign batch options]
#   e.g. bash scripts/nb101_tables.sh 2                                  (local worker processes)
#        bash scripts/nb101_tables.sh 64 --backend ray --address auto    (on the Ray cluster running here; the same
#        results file: a table started locally continues on the cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
shift || true
.venv/bin/gradsign batch --space nb101 --dataset cifar10 --n 128 --seed 42 --workers "$workers" \
  --archs sample:2000 --sample-seed 0 --out results/nb101/gradsign_cifar10.csv --no-progress "$@"
