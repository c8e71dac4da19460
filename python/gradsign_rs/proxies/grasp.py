"""grasp (Wang et al., ICLR 2020, "Picking Winning Tickets Before Training by Preserving Gradient Flow"), as the
zero-cost proxy of Abdelfattah et al. (2021)."""

from __future__ import annotations

import numpy as np

from gradsign_rs.proxies.workspace import Workspace

# Perturbation size relative to the weights: ||ε g|| = RELATIVE_STEP · ||θ||. Measured against torch's exact
# product on NAS-Bench-201 networks: 1e-3 and 1e-4 leave O(ε²) error of up to 100% (strong curvature through
# BatchNorm), 1e-6 meets float32 cancellation; 1e-5 is within 0.1% on most networks.
RELATIVE_STEP = 1e-5


def grasp(workspace: Workspace) -> float:
    """−Σ_k θ_k (H g)_k over every scored weight element, g = ∂L/∂θ, H = ∂²L/∂θ² (temperature 1).

    L: mean cross-entropy over one mini-batch, BatchNorm in training mode (so H includes the batch statistics).
    Approximation: onnxruntime-training cannot differentiate a gradient graph, so the Hessian-vector product is a
    central finite difference, H g ≈ (∇L(θ + εg) − ∇L(θ − εg)) / 2ε with ε = 1e-5 · ||θ|| / ||g|| over all scored
    weights; the reference takes it exactly with double backpropagation. The perturbed passes keep every ReLU on
    the rectification pattern of the unperturbed pass (`Workspace.train_pass_at`): double backpropagation sees
    ReLU's second derivative as 0, and a difference across a kink would add a jump that does not shrink with ε.
    What remains is O(ε²) plus float32 cancellation (max pooling's argmax switches are not frozen); tested against
    torch's exact product on small models in tests/test_proxies.py.
    """
    theta = workspace.weights()
    gradients = workspace.weight_gradients(workspace.train_pass)
    theta_norm = np.sqrt(sum(float(np.sum(t.astype(np.float64) ** 2)) for t in theta.values()))
    gradient_norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in gradients.values()))
    if gradient_norm == 0.0 or not np.isfinite(gradient_norm):
        return 0.0 if gradient_norm == 0.0 else float("nan")
    step = RELATIVE_STEP * theta_norm / gradient_norm
    plus = {n: (theta[n] + step * gradients[n]).astype(np.float32) for n in theta}
    minus = {n: (theta[n] - step * gradients[n]).astype(np.float32) for n in theta}
    grad_plus = workspace.weight_gradients(workspace.train_pass_at(plus))
    grad_minus = workspace.weight_gradients(workspace.train_pass_at(minus))
    total = 0.0
    for n in theta:
        hessian_gradient = (grad_plus[n].astype(np.float64) - grad_minus[n]) / (2.0 * step)
        total -= float(np.sum(theta[n].astype(np.float64) * hessian_gradient))
    return total
