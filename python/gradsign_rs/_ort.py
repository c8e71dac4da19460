"""Import onnxruntime(-training) without importing torch.

The training build's `import onnxruntime` probes `onnxruntime.training.ortmodule`, which imports torch
(+230 MB RSS, +0.7 s) when torch is installed. Scoring needs only the C-level classes, so the probe is
answered "not installed" for the duration of our import (DESIGN.md, environment facts).
"""

from __future__ import annotations

import sys

_PROBE = "onnxruntime.training.ortmodule"


def _import_onnxruntime():
    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    blocked = _PROBE not in sys.modules
    if blocked:
        sys.modules[_PROBE] = None  # type: ignore[assignment]  # makes the probe raise ImportError
    try:
        import onnxruntime
    finally:
        if blocked and sys.modules.get(_PROBE, 0) is None:
            del sys.modules[_PROBE]
    return onnxruntime


ort = _import_onnxruntime()

from onnxruntime.capi import _pybind_state as capi  # noqa: E402, F401  (re-exported; needs the import above first)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def provider_name(provider: str) -> str:
    """Map a short alias ("cpu", "cuda") or a full ORT provider name to the ORT name, checking it exists."""
    from gradsign_rs._core import GradSignError

    name = PROVIDERS.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if name not in available:
        raise GradSignError(
            f"execution provider {provider!r} is not available in this onnxruntime build; available: {available}"
        )
    return name
