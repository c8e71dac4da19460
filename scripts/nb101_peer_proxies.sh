#!/usr/bin/env bash
# Issue 17: this project's proxies on the 292 NAS-Bench-101 cells of the published-proxy sample
# (../shared/data/nb101/nb101_peer_proxies_500.csv, NASLib; one row per module hash, in file order; 266 of them are
# not rows of nb101_cifar10_30k.csv and are keyed by nb101.off_table_index), the paper's protocol (first 128
# CIFAR-10 training images, weight seed 42, proxy mini-batch 64). Resumable: each `gradsign batch` skips what its file
# has. About 14 s per cell for pass 1 and 6 s for pass 2 on one core (timed on 4 cells).
#   1. GradSign and the label-free proxies: results/nb101/proxies_peer500.csv;
#   2. the gradient proxies snip, grad_norm, fisher (one training pass serves all three):
#      results/nb101/proxies_peer500_gradients.csv.
# Usage: nohup nice -n 10 bash scripts/nb101_peer_proxies.sh [WORKERS] > /tmp/nb101_peer.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-1}
data=${GRADSIGN_DATA:-../shared/data}
batch=(.venv/bin/gradsign batch --space nb101 --dataset cifar10 --n 128 --seed 42 --workers "$workers"
       --archs "$data/nb101/nb101_peer_proxies_500.csv" --proxy-batch-size 64 --no-progress)
"${batch[@]}" --proxies gradsign,synflow,live_params,params,flops,nwot,jacob_cov --out results/nb101/proxies_peer500.csv
"${batch[@]}" --proxies snip,grad_norm,fisher --out results/nb101/proxies_peer500_gradients.csv
