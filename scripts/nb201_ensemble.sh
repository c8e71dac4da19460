#!/usr/bin/env bash
# Issue 5's ensemble over all 15625 NAS-Bench-201 networks (CIFAR-10, seed 42, mini-batch 64 of the first 128
# training images, as scripts/nb201_proxies.sh). Resumable: each `gradsign batch` skips what its file has.
#   1. the cheap proxies (synflow, live_params, params, flops, nwot: ~0.3 s per network per worker);
#   2. jacob_cov (~1 s per network per worker);
#   3. the ensemble, fitted on a seeded 20% of the networks, evaluated on the other 80%, with the GradSign table
#      (results/nb201/gradsign_cifar10.csv, from scripts/nb201_tables.sh) when it covers the space.
# Usage: bash scripts/nb201_ensemble.sh [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
out=results/nb201/proxies
batch=(.venv/bin/gradsign batch --space nb201 --dataset cifar10 --n 128 --seed 42 --workers "$workers"
       --archs all --proxy-batch-size 64)
"${batch[@]}" --proxies synflow,live_params,params,flops,nwot --out "$out/cheap_cifar10.csv"
"${batch[@]}" --proxies jacob_cov --out "$out/jacob_cov_cifar10.csv"
tables=("$out/cheap_cifar10.csv" "$out/jacob_cov_cifar10.csv")
scored=0
[ -f results/nb201/gradsign_cifar10.csv ] && scored=$(($(wc -l < results/nb201/gradsign_cifar10.csv) - 1))
if [ "$scored" -ge 15625 ]; then
  tables=(results/nb201/gradsign_cifar10.csv "${tables[@]}")
  note="GradSign from results/nb201/gradsign_cifar10.csv."
else
  note="Without GradSign: its table has $scored of 15625 networks (bash scripts/nb201_tables.sh resumes it)."
fi
.venv/bin/gradsign ensemble "${tables[@]}" --target c10valid_test_200ep --train-fraction 0.2 --seed 0 \
  --report "$out/ensemble" --notes "All NAS-Bench-201 networks, CIFAR-10. Command: \`bash scripts/nb201_ensemble.sh\`. $note"
