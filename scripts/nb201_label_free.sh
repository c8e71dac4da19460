#!/usr/bin/env bash
# Issue 17's proxies on the other NAS-Bench-201 datasets: the cheap proxies and jacob_cov on the uniform sample of
# 1000 cells (sample:1000, seed 0: the cells of results/nb201/gradsign_{cifar100,imagenet16}.csv), each on its own
# dataset's images (first 128, mini-batch 64, weight seed 42). Resumable: each `gradsign batch` skips what its file
# has. Usage: bash scripts/nb201_label_free.sh [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
out=results/nb201/proxies
for dataset in cifar100 imagenet16; do
  .venv/bin/gradsign batch --space nb201 --dataset "$dataset" --n 128 --seed 42 --workers "$workers" \
    --archs sample:1000 --sample-seed 0 --proxy-batch-size 64 \
    --proxies synflow,live_params,params,flops,nwot,jacob_cov --out "$out/proxies_${dataset}.csv" --no-progress
done
