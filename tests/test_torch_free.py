"""Scoring an ONNX model must not import torch, and must work where torch cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from onnx_builders import nhwc_matmul_classifier


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_scoring_onnx_never_imports_torch(tmp_path):
    model, _ = nhwc_matmul_classifier()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    result = run_python(f"""
        import sys, numpy as np
        import gradsign_rs
        x = np.random.default_rng(0).standard_normal((8, 8, 8, 3)).astype(np.float32)
        s = gradsign_rs.score({str(path)!r}, x, np.arange(8) % 10)
        assert s.value > 0
        print("torch" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_scoring_works_when_torch_is_unimportable(tmp_path):
    model, _ = nhwc_matmul_classifier()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    result = run_python(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        import numpy as np
        import gradsign_rs
        x = np.random.default_rng(0).standard_normal((8, 8, 8, 3)).astype(np.float32)
        print(gradsign_rs.score({str(path)!r}, x, np.arange(8) % 10).value)
        try:
            gradsign_rs.from_torch(object(), x)
        except gradsign_rs.GradSignError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    value, message = result.stdout.strip().splitlines()
    assert int(value) > 0
    assert "from_torch needs torch" in message
