"""Import onnxruntime(-training) without importing torch.

The training build's `import onnxruntime` probes `onnxruntime.training.ortmodule`, which imports torch
(+230 MB RSS, +0.7 s) when torch is installed. Scoring needs only the C-level classes, so the probe is
answered "not installed" for the duration of our import (DESIGN.md, environment facts).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

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


def cpu_kernels() -> str:
    """The family of CPUs on which onnxruntime's float results agree bit for bit: "amd" or "intel" on x86-64 (by the
    CPU's vendor_id), else the machine's name. Measured, not derived: AMD EPYC machines with and without AVX-512 write
    identical scores, an Intel Xeon with AVX-512 does not, so the vendor (not the vector width) separates the families
    seen so far. Across families the sign of a near-zero gradient can differ (measured: GradSign within 6.4e-4
    relative between "amd" and "intel", README "Reproducibility")."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return machine or "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "x86_64"
    vendor = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")), "")
    return {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(vendor, "x86_64")
