#!/usr/bin/env bash
# The test suite: Rust unit tests, the Python suite, and torch-free scoring in a second environment without torch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
echo "== quality gates: ruff, mypy, stubtest, cargo fmt, clippy"
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check . >/dev/null
.venv/bin/python -m mypy
.venv/bin/python -m mypy.stubtest gradsign_rs._core
cargo fmt --check
cargo clippy --release --quiet --all-targets --features python -- -D warnings
echo "== cargo test (Rust core)"
cargo test --release --quiet 2>&1 | grep -E "^test result|FAILED|panicked" 
echo "== pytest"
.venv/bin/python -m pytest tests -q -p no:cacheprovider -m "not slow"
echo "== torch-free environment"
bash scripts/torch_free_check.sh
