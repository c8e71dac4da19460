#!/usr/bin/env bash
# Install gradsign-rs into a second environment without torch, score a model there, record the peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-notorch
bash scripts/setup.sh --no-torch "$venv" >/dev/null
"$venv/bin/python" - <<'PY'
import importlib.util, resource, sys, numpy as np
assert importlib.util.find_spec("torch") is None, "torch must be absent from this environment"
import gradsign_rs
from gradsign_rs.data import data_root
sys.path.insert(0, "tests")
from onnx_builders import nhwc_matmul_classifier
model, _ = nhwc_matmul_classifier(size=32)
x = np.random.default_rng(0).standard_normal((128, 32, 32, 3)).astype(np.float32)
s = gradsign_rs.score(model, x, np.arange(128) % 10)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch-free scoring ok: score {s.value}, N {s.n_samples}, peak RSS {peak:.0f} MB, torch imported: {'torch' in sys.modules}")
assert "torch" not in sys.modules
# A lowered transformer and a lowered mobile network (LayerNorm, GELU, Einsum/attention; HardSwish) from the zoo.
import json, pathlib
foreign = pathlib.Path("tests/zoo/foreign")
data = np.load(foreign / "inputs.npz")
for entry in json.loads((foreign / "manifest.json").read_text()):
    if entry["name"] in ("jax_vit_tiny", "keras_mobilenetv3_tiny"):
        s = gradsign_rs.score(foreign / entry["file"], data[entry["inputs_key"]], data["labels"])
        assert abs(s.value - entry["reference_score"]) <= 1e-3 * entry["reference_score"], (s.value, entry)
        print(f"torch-free {entry['name']}: score {s.value} (native reference {entry['reference_score']})")
assert "torch" not in sys.modules
PY
