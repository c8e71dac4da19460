"""synflow (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any data by iteratively conserving
synaptic flow"), as the zero-cost proxy of Abdelfattah et al. (2021)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gradsign_rs.proxies import graphs
from gradsign_rs.proxies.workspace import Workspace

# Exponents e tried in turn until every value is finite in float32: the input (and additive constants) and the
# backward seed are each scaled by 2^-e, so that neither forward activations nor backward gradients overflow.
SCALE_EXPONENTS = (0, 32, 64, 96, 120)


def additive_constants(network: graphs.Network) -> frozenset[str]:
    """Float initializers added to activations: Conv/Gemm biases and constant operands of Add/Sub."""
    inits = {t.name for t in network.proto.graph.initializer if t.data_type == 1}
    names = set()
    for node in network.proto.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            names.add(node.input[2])
        elif node.op_type in ("Add", "Sub"):
            names.update(node.input)
    return frozenset(names & inits)


@dataclasses.dataclass(frozen=True)
class SynapticFlow:
    """One synflow pass: the |weights| it ran with, dR/dW of each live scored weight (scaled), and the scale."""

    weights: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]
    scale: float
    finite: bool


def synaptic_flow(workspace: Workspace) -> SynapticFlow:
    """The synflow pass of `workspace`'s network, run once and shared (synflow and live_params read it)."""
    flow = workspace.shared("synaptic_flow", _run_synaptic_flow)
    assert isinstance(flow, SynapticFlow)
    return flow


def _run_synaptic_flow(workspace: Workspace) -> SynapticFlow:
    network = workspace.network
    constants = additive_constants(network)
    program = graphs.build_batch_program(
        network, 1, loss="sum_logits", batchnorm="identity", absolute=True, feed_also=constants
    )
    session = graphs.BatchSession(program, provider=workspace.provider)
    ones = np.ones((1, *workspace.inputs.shape[1:]), np.float32)
    live = sorted(program.live)
    for exponent in SCALE_EXPONENTS:
        scale = np.float32(2.0**-exponent)
        scaled = {name: (program.fed[name] * scale) for name in constants}
        result = session.run(ones * scale, weights=scaled, loss_scale=float(scale))
        gradients = {name: result.gradients[name] for name in live}
        if np.isfinite(result.loss) and all(np.isfinite(g).all() for g in gradients.values()):
            return SynapticFlow({n: program.fed[n] for n in live}, gradients, float(scale), True)
    return SynapticFlow({n: program.fed[n] for n in live}, gradients, float(scale), False)


def synflow(workspace: Workspace) -> float:
    """Σ_k |θ_k · ∂R/∂θ_k| over every scored weight element, R = Σ logits of f(1; |θ|) with BatchNorm removed.

    Every float parameter is replaced by its absolute value, the input is one all-ones sample, and BatchNorm is
    the identity (the reference's `bn=False` copy). Data-free and label-free; unitless.
    The reference runs in float64 so that R does not overflow; onnxruntime's CPU gradient kernels are float32, so
    this runs scaled: the input and every additive constant (biases) are multiplied by s, which for a network of
    positively homogeneous ops (ReLU, pooling, Conv, Gemm, Add, BatchNorm removed) scales every activation, R and
    every ∂R/∂θ by exactly s; the backward pass starts from t instead of 1 (loss t·R), which scales every gradient
    by t. With s = t = 2^-e for e = 0, 32, 64, 96, 120 in turn until all values are finite, the score is the
    float64 sum divided by s·t. Activations grow toward the logits and gradients toward the input, so scaling
    both keeps deep all-convolution networks (R ~ 1e50) inside float32. For networks with non-homogeneous ops
    (tanh, sigmoid) only e = 0 is exact: a smaller scale is then an approximation. inf when nothing is finite.
    """
    flow = synaptic_flow(workspace)
    if not flow.finite:
        return float("inf")  # R overflows float32 even at the smallest scale
    total = sum(float(np.abs(flow.weights[n].astype(np.float64) * g).sum()) for n, g in flow.gradients.items())
    return total / (flow.scale * flow.scale)


def live_params(workspace: Workspace) -> float:
    """Elements of the scored weight tensors (Conv / Gemm / MatMul) that carry synaptic flow.

    A weight tensor counts when synflow's pass gives it a nonzero gradient anywhere. With |θ| and an all-ones
    input every activation is >= 0, so ∂R/∂θ is 0 exactly for a weight on no input-to-output path of nonzero
    weights: one whose input is always zero (e.g. fed only by NAS-Bench-201 `none` edges), whose output never
    reaches the logits, or that only feeds an all-zero layer. Such weights do not change the function, so `params`
    over-counts them; this proxy does not. Whole tensors are counted, so gradient underflow in some elements cannot
    drop a live tensor's elements. BatchNorm and bias parameters are not counted. NaN when synflow's pass is not
    finite at any scale.
    """
    flow = synaptic_flow(workspace)
    if not flow.finite:
        return float("nan")
    return float(sum(g.size for g in flow.gradients.values() if np.any(g != 0)))
