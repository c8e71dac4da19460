#!/usr/bin/env bash
# The committed NAS results under results/nb201/search/: RS, REA, REINFORCE and BOHB on NAS-Bench-201 (simulated,
# 12000 s budget), 500 runs each, vanilla and GradSign-assisted (M = 10, proxy time charged), with summary.md,
# summary.json and the anytime-curve plot anytime.png; then the same with proxy time free (the GradSign paper's
# accounting) under results/nb201/search_free_proxy/, and with already evaluated candidates skipped (--skip-evaluated)
# under results/nb201/search_skip_evaluated/. Runs go to runs.csv as they finish; re-running resumes.
#
#   bash scripts/search_results.sh                  # vanilla + assisted; needs the full GradSign table
#   bash scripts/search_results.sh --vanilla-only   # the vanilla algorithms only (no proxy needed)
# Options: --runs N (default 500), --workers W (default 1), --allow-on-the-fly (score networks missing from the
# table during the search; their measured seconds are charged, so the results depend on the machine).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=500
workers=1
vanilla_only=0
on_the_fly=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --vanilla-only) vanilla_only=1; shift ;;
    --allow-on-the-fly) on_the_fly=(--allow-on-the-fly); shift ;;
    *) echo "search_results.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

[ -x .venv/bin/gradsign ] || bash scripts/setup.sh >/dev/null
scores=results/nb201/gradsign_cifar10.csv
out=results/nb201/search
common=(--algo all --runs "$runs" --seed 0 --budget 12000 --workers "$workers" --out "$out/runs.csv" --report "$out")

if [ "$vanilla_only" = 1 ]; then
  exec .venv/bin/gradsign search "${common[@]}" --title "NAS-Bench-201 search: vanilla RS, REA, REINFORCE, BOHB"
fi
# The CLI checks the table before any run: an incomplete table is refused with the number of missing networks.
if ! .venv/bin/gradsign search "${common[@]}" --assist gradsign --scores "$scores" --candidates 10 "${on_the_fly[@]}" \
    --title "NAS-Bench-201 search: vanilla vs GradSign-assisted"; then
  echo "search_results.sh: assisted runs not made (see above); --vanilla-only makes the vanilla results alone" >&2
  exit 1
fi
# The paper's accounting: the proxy costs no simulated time (vanilla runs repeat there, same seeds, same results).
free=${out}_free_proxy
.venv/bin/gradsign search --algo all --runs "$runs" --seed 0 --budget 12000 --workers "$workers" --out "$free/runs.csv" --report "$free" \
  --assist gradsign --scores "$scores" --candidates 10 \
  --no-proxy-time "${on_the_fly[@]}" --title "NAS-Bench-201 search: vanilla vs GradSign-assisted, proxy time free"
# This project's variant: assisted picks skip candidates the run has already evaluated (proxy time charged).
skip=${out}_skip_evaluated
.venv/bin/gradsign search --algo all --runs "$runs" --seed 0 --budget 12000 --workers "$workers" --out "$skip/runs.csv" --report "$skip" \
  --assist gradsign --scores "$scores" --candidates 10 --skip-evaluated \
  "${on_the_fly[@]}" --title "NAS-Bench-201 search: vanilla vs GradSign-assisted, already evaluated candidates skipped"
