#!/usr/bin/env bash
# The main job on the embedded default: set up .venv if needed, then score NAS-Bench-201 networks on real CIFAR-10.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec .venv/bin/gradsign demo "$@"
