"""REINFORCE (Williams 1992) as NAS-Bench-201 runs it: a per-edge softmax policy, Adam, a moving-average baseline.

The policy is a logit per (edge, op), initialised to 1e-3 * N(0, 1) as in NAS-Bench-201's reinforce.py; each step
samples an architecture, evaluates it, updates the baseline (an exponential moving average of rewards with momentum
0.9, bias-corrected) and takes one Adam step on -log pi(a) * (reward - baseline). The reward is the validation
accuracy in percent, as there.

The learning rate is not pinned by NAS-Bench-201's sources (its REINFORCE.sh takes it as an argument; its usage
lines show 0.001 and 0.5); the default 0.01 is the value NATS-Bench (same authors, same topology space) runs
in exps/NATS-algos/run-all.sh.
"""

from __future__ import annotations

import numpy as np

from gradsign_rs.search.benchmark import Simulator
from gradsign_rs.search.proxy import Assistant
from gradsign_rs.spaces import nb201

LEARNING_RATE = 0.01
EMA_MOMENTUM = 0.9


class Adam:
    """Adam (Kingma & Ba) on one numpy array with torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8."""

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.step_count = 0
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The parameters after one descent step along `grad` (a new array)."""
        if self.m is None or self.v is None:
            self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self.step_count += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.step_count)
        v_hat = self.v / (1 - self.beta2**self.step_count)
        return params - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)


class MovingAverageBaseline:
    """Exponential moving average of rewards, divided by the same average of ones (no bias toward the start at 0)."""

    def __init__(self, momentum: float):
        self.momentum = momentum
        self.numerator = 0.0
        self.denominator = 0.0

    def update(self, reward: float) -> float:
        """Fold `reward` in and return the new baseline."""
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * reward
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)
        return self.numerator / self.denominator


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One op index per edge, drawn from each row of `probs`."""
    draws = rng.random((probs.shape[0], 1))
    # Clip guards a cumulative sum that ends a hair below 1 in floating point.
    return np.minimum((draws >= probs.cumsum(axis=1)).sum(axis=1), probs.shape[1] - 1)


def to_arch(actions: np.ndarray) -> nb201.Arch:
    return nb201.Arch(tuple(nb201.OPS[int(a)] for a in actions))


def reinforce(
    sim: Simulator,
    rng: np.random.Generator,
    assistant: Assistant | None = None,
    *,
    learning_rate: float = LEARNING_RATE,
    ema_momentum: float = EMA_MOMENTUM,
) -> None:
    """Policy-gradient search until the budget refuses a charge (`BudgetExhausted` propagates to the caller).

    Assisted, each step samples `assistant.candidates` architectures from the policy, evaluates the best by proxy
    and updates the policy with that architecture's log-probability. (The GradSign authors' G-REINFORCE instead
    evaluated the best of 10 mutations of one policy sample while updating with the sample's log-probability.)
    """
    logits = 1e-3 * rng.standard_normal((len(nb201.EDGES), len(nb201.OPS)))
    optimizer = Adam(learning_rate)
    baseline = MovingAverageBaseline(ema_momentum)
    while True:
        probs = softmax(logits)
        if assistant is None:
            actions = sample_actions(probs, rng)
        else:
            proposals = [sample_actions(probs, rng) for _ in range(assistant.candidates)]
            actions = proposals[assistant.pick(sim, [to_arch(a) for a in proposals])]
        reward = sim.evaluate(to_arch(actions))
        advantage = reward - baseline.update(reward)
        # d/dlogits of -log pi(a) * advantage, edge by edge: -(onehot(a) - probs) * advantage.
        onehot = np.zeros_like(probs)
        onehot[np.arange(len(actions)), actions] = 1.0
        logits = optimizer.step(logits, -(onehot - probs) * advantage)
