"""Zero-cost proxies on the ONNX engine: one function per proxy, each `proxy(workspace) -> float`.

`compute(names, model, inputs, labels)` scores one network with several proxies that share one `Workspace` (the
model is loaded once; each onnxruntime pass runs once). `PROXIES` is the explicit name -> function table; the
definitions, units and any approximation forced by ONNX are in each function's docstring. The rank ensemble over
many networks is `gradsign_rs.proxies.ensemble`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.proxies.fisher import fisher
from gradsign_rs.proxies.flops import flops
from gradsign_rs.proxies.grad_norm import grad_norm
from gradsign_rs.proxies.gradsign import gradsign
from gradsign_rs.proxies.grasp import grasp
from gradsign_rs.proxies.jacob_cov import jacob_cov
from gradsign_rs.proxies.nwot import nwot
from gradsign_rs.proxies.params import params
from gradsign_rs.proxies.snip import snip
from gradsign_rs.proxies.synflow import live_params, synflow
from gradsign_rs.proxies.workspace import DEFAULT_BATCH_SIZE, Workspace
from gradsign_rs.proxies.zico import zico

__all__ = ["DEFAULT_BATCH_SIZE", "PROXIES", "Workspace", "compute", "compute_timed", "parse_names"]

PROXIES: dict[str, Callable[[Workspace], float]] = {
    "gradsign": gradsign,
    "grad_norm": grad_norm,
    "snip": snip,
    "grasp": grasp,
    "fisher": fisher,
    "synflow": synflow,
    "jacob_cov": jacob_cov,
    "nwot": nwot,
    "zico": zico,
    "params": params,
    "live_params": live_params,
    "flops": flops,
}


def parse_names(names: str | Iterable[str]) -> tuple[str, ...]:
    """Proxy names from a list or a comma-separated string, checked against `PROXIES`, duplicates dropped."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise GradSignError(f"unknown proxies {unknown}; available: {', '.join(PROXIES)}")
    if not names:
        raise GradSignError(f"no proxies named; available: {', '.join(PROXIES)}")
    return names


def compute_timed(
    names: str | Iterable[str],
    model: object,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    provider: str = "cpu",
    output: str | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """`compute`, plus seconds per proxy (shared passes are charged to the first proxy that needs them)."""
    chosen = parse_names(names)
    workspace = Workspace(model, inputs, labels, batch_size=batch_size, provider=provider, output=output)
    values, seconds = {}, {}
    for name in chosen:
        start = time.perf_counter()
        values[name] = PROXIES[name](workspace)
        seconds[name] = time.perf_counter() - start
    return values, seconds


def compute(
    names: str | Iterable[str],
    model: object,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    provider: str = "cpu",
    output: str | None = None,
) -> dict[str, float]:
    """Score one classifier with the named proxies: {name: value}.

    model: ONNX path, onnx.ModelProto, bytes, or torch.nn.Module (exported once). inputs: normalised float
    (N, ...); labels: int (N,). The batch proxies use the first `batch_size` samples, zico every full batch of
    `batch_size` (at least 2), gradsign all N one at a time.
    """
    return compute_timed(names, model, inputs, labels, batch_size=batch_size, provider=provider, output=output)[0]
