#!/usr/bin/env bash
# Issue 5's validation: the ten baseline proxies on 1000 NAS-Bench-201 architectures (CIFAR-10, seed 42, mini-batch
# 64 of the first 128 training images), compared by rank with NAS-Bench-Suite-Zero's published values.
# Resumable like every `gradsign batch`. Usage: bash scripts/nb201_proxies.sh [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
out=results/nb201/proxies
.venv/bin/gradsign batch --space nb201 --dataset cifar10 --n 128 --seed 42 --workers "$workers" \
  --archs "$out/validation_archs.txt" --proxy-batch-size 64 \
  --proxies grad_norm,snip,grasp,fisher,synflow,jacob_cov,nwot,zico,params,flops \
  --out "$out/validation_cifar10.csv"
# Exit status 1 means a proxy is below the 0.9 bar: the report says which; it is a finding, not a failure here.
.venv/bin/gradsign validate "$out/validation_cifar10.csv" --report "$out" \
  --notes "Our values: \`bash scripts/nb201_proxies.sh\` (1000 architectures drawn from the 9445 of the published table; see validation_archs.txt). grasp is below the bar because grasp disagrees with itself: between two mini-batches its Spearman is 0.71, between two initialisations 0.61, where snip and grad_norm stay >= 0.98 (benches/grasp_stability_results.md); published values come from another batch and seed. The two published sources disagree the same way: their grasp values agree at 0.70 over the 447 architectures they share, where every other proxy agrees at >= 0.96 (last column). zico has no published column." || true
