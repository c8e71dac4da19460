#!/usr/bin/env bash
# The NAS-Bench-201 GradSign tables of results/nb201/ (the paper's protocol: N = 128, seed 42, one fixed batch).
# Resumable: each `gradsign batch` skips the networks its results file already has, so re-run after a kill.
# Usage: bash scripts/nb201_tables.sh [WORKERS]   (CIFAR-100 and ImageNet16 first: 1000 networks each; then all
# 15625 on CIFAR-10, which takes about 5 hours on 2 cores and so spans sessions)
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
out=results/nb201
batch=(.venv/bin/gradsign batch --space nb201 --n 128 --seed 42 --workers "$workers")
"${batch[@]}" --dataset cifar100 --archs sample:1000 --sample-seed 0 --out "$out/gradsign_cifar100.csv"
"${batch[@]}" --dataset imagenet16 --archs sample:1000 --sample-seed 0 --out "$out/gradsign_imagenet16.csv"
# CIFAR-10: the same uniform sample of 1000 first (a fair estimate while the rest fills in), then every network;
# one results file, so the sample is not scored twice.
"${batch[@]}" --dataset cifar10 --archs sample:1000 --sample-seed 0 --out "$out/gradsign_cifar10.csv"
"${batch[@]}" --dataset cifar10 --archs all --out "$out/gradsign_cifar10.csv"
# The CIFAR-10 report: over all 15625 once the table is complete (before that, the uniform sample's report stays).
scored=$(($(wc -l < "$out/gradsign_cifar10.csv") - 1))
if [ "$scored" -ge 15625 ]; then
  .venv/bin/gradsign eval "$out/gradsign_cifar10.csv" --truth "${GRADSIGN_DATA:-../shared/data}/nb201/nb201_cifar10.csv" \
    --target c10valid_test_200ep --target c10_test_200ep --report "$out/report_cifar10_all" \
    --title "GradSign on NAS-Bench-201, CIFAR-10, all 15625 networks" \
    --notes "Protocol (the paper's): N = 128 real CIFAR-10 training images (the first 128 of cifar10_train4000.npz), NAS-Bench-201's CIFAR-10 normalisation, one fixed batch for all networks, PyTorch-default initialisation from seed 42, per-sample BatchNorm statistics. Command: \`bash scripts/nb201_tables.sh\`. How much the correlation moves with the seed, the image batch and augmentation: results/nb201/protocol/summary_1000.md, and the analysis at the end of this report." \
    --appendix "$out/analysis_cifar10.md"
fi
