#!/usr/bin/env bash
# Issue 17: the baseline proxies on the uniform 2000 NAS-Bench-101 cells of scripts/nb101_tables.sh (rows of the
# shared table, sample seed 0), the same protocol (first 128 CIFAR-10 training images, weight seed 42) with proxy
# mini-batch 64. Resumable: each `gradsign batch` skips what its file has. Cells run in row order, as the GradSign
# table's, so the cells both tables hold grow together.
#   1. the label-free proxies of the NAS-Bench-201 tables (synflow, live_params, params, flops, nwot, jacob_cov) on all
#      2000 cells: results/nb101/proxies_cifar10.csv (about 10 s a cell on one core);
#   2. the gradient proxies snip, grad_norm, fisher (one training pass serves all three) on the first 500 of those
#      cells by row: results/nb101/proxies_gradients_cifar10.csv (about 12 s a cell), as NAS-Bench-201's 1000-cell
#      validation sample.
# Memory: the passes of one large NB101 cell hold up to 6 GB (pass 1) and 7 GB (pass 2) at mini-batch 64, so two
# workers fit in 24 GB beside the GradSign job, not more.
# Usage: nohup nice -n 19 bash scripts/nb101_proxies.sh [WORKERS] > /tmp/nb101_proxies.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-1}
batch=(.venv/bin/gradsign batch --space nb101 --dataset cifar10 --n 128 --seed 42 --workers "$workers"
       --proxy-batch-size 64 --no-progress)
"${batch[@]}" --archs sample:2000 --sample-seed 0 --proxies synflow,live_params,params,flops,nwot,jacob_cov \
  --out results/nb101/proxies_cifar10.csv
first=$(mktemp)
trap 'rm -f "$first"' EXIT
.venv/bin/python -c 'from gradsign_rs.spaces import nb101
for row, _ in nb101.sample(2000, 0)[:500]: print(row)' > "$first"
"${batch[@]}" --archs "$first" --proxies snip,grad_norm,fisher --out results/nb101/proxies_gradients_cifar10.csv
