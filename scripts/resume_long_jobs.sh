#!/usr/bin/env bash
# Every long job of results/, in the order the issues need them, each resumable: run this at the start of a
# session and leave it; re-running after a kill continues where it stopped and scores nothing twice.
#   1. the GradSign tables (the CIFAR-10 table over all 15625 networks, then its report);
#   2. the search results (the assisted runs need that table complete);
#   3. the proxies on all 15625 networks and the rank ensemble;
#   4. NAS-Bench-101: the GradSign table of a uniform 2000 cells, the proxies on NASLib's published-proxy cells and
#      their reports, GradSign on the cells the second source shares with the table, the baseline proxies on the
#      uniform cells and their reports.
# Usage: bash scripts/resume_long_jobs.sh [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
[ -x .venv/bin/gradsign ] || bash scripts/setup.sh >/dev/null
bash scripts/nb201_tables.sh "$workers"
bash scripts/search_results.sh --workers "$workers"
bash scripts/nb201_ensemble.sh "$workers"
bash scripts/nb101_tables.sh "$workers"
bash scripts/nb101_peer_proxies.sh "$workers"
bash scripts/nb101_peer_report.sh
bash scripts/nb101_second_source.sh "$workers"
bash scripts/nb101_proxies.sh "$workers"
bash scripts/nb101_uniform_report.sh
