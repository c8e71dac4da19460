#!/usr/bin/env bash
# The test suite: Rust unit tests, the Python suite, and torch-free scoring in a second environment without torch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
echo "== cargo test (Rust core)"
cargo test --release --quiet 2>&1 | grep -E "^test result|FAILED|panicked" 
echo "== pytest"
.venv/bin/python -m pytest tests -q -p no:cacheprovider -m "not slow"
echo "== torch-free environment"
bash scripts/torch_free_check.sh
