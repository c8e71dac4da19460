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
# The evaluation reports (the CIFAR-10 one over all 15625 once the table is complete).
bash scripts/nb201_reports.sh
