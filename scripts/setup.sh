#!/usr/bin/env bash
# Create .venv in the checkout root and install gradsign-rs (Rust core in release mode) with its dependencies.
# Idempotent: a second run only rebuilds what changed. Usage: bash scripts/setup.sh [--no-torch] [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

with_torch=1
if [[ "${1:-}" == "--no-torch" ]]; then with_torch=0; shift; fi
venv="${1:-.venv}"

python=${PYTHON:-}
if [[ -z "$python" ]]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))'; then
      python=$candidate; break
    fi
  done
fi
[[ -n "$python" ]] || { echo "setup: needs CPython 3.11 or 3.12 (onnxruntime-training-cpu 1.19.2 wheels)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "setup: needs a Rust toolchain (cargo) to build the core" >&2; exit 1; }

[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip >/dev/null
# torch from PyPI is a large download: only the torch front end and the reference tests need it.
extras="test"
[[ $with_torch == 1 ]] || extras=""
"${pip[@]}" install maturin
# Stale extension builds are never imported by accident: maturin replaces the installed one.
find python/gradsign_rs -name '_core*.so' -delete
log=$(mktemp)
if ! VIRTUAL_ENV="$PWD/$venv" "$venv/bin/maturin" develop --release --quiet ${extras:+--extras "$extras"} >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"
  echo "setup: building the Rust core (maturin develop) failed: see the output above" >&2; exit 1
fi
rm -f "$log"
"$venv/bin/python" -c 'import gradsign_rs; print("gradsign-rs", gradsign_rs.__version__, "installed in '"$venv"'")'
