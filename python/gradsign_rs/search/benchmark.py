"""Tabular NAS-Bench-201 as a search benchmark: what an evaluation returns, what it costs, and the time budget.

Protocol (NAS-Bench-201's, as in AutoDL-Projects `exps/NAS-Bench-201-algos`): evaluating a network "trains it for
12 epochs": the reward is its `cifar10-valid` validation accuracy after 12 epochs (`c10valid_valid_12ep`, %) and the
simulated clock advances by that run's training time (`c10valid_train_seconds_12ep`, s). The shared table holds the
average over the benchmark's training seeds, so a repeated evaluation returns the same reward (NAS-Bench-201's code
draws one seed's result per query); repeats are still charged, as there.

Budget boundary: a charge (an evaluation, or proxy compute time) is made only if it fits in what is left of the
budget; the first charge that does not fit is refused with `BudgetExhausted` and the run ends there. So the time
spent never exceeds the budget, and the reported network is the best one evaluated before the refused charge.
The search algorithms' own overhead (sampling, model fitting) is not charged.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.spaces import nb201

REWARD = "c10valid_valid_12ep"
COST = "c10valid_train_seconds_12ep"
# Accuracies (%) of the 200-epoch runs reported for the found network: the NAS-Bench-201 paper's valid/test pairs
# (CIFAR-10 valid on the 25k split, CIFAR-10 test after training on train+valid) and the GradSign paper's
# CIFAR-10 target (c10valid_test_200ep).
FINAL_COLUMNS = (
    "c10valid_valid_200ep",
    "c10valid_test_200ep",
    "c10_test_200ep",
    "c100_valid_200ep",
    "c100_test_200ep",
    "in16_valid_200ep",
    "in16_test_200ep",
)


class BudgetExhausted(Exception):
    """A charge of `requested` seconds does not fit in the `remaining` seconds of the budget; the run ends."""

    def __init__(self, requested: float, remaining: float, what: str):
        super().__init__(f"{what} needs {requested:.3f} s, {remaining:.3f} s of the budget left")
        self.requested = requested
        self.remaining = remaining
        self.what = what


@dataclasses.dataclass(frozen=True)
class NB201Table:
    """The benchmark columns a search reads, as arrays indexed by the official architecture index (0..15624)."""

    reward: np.ndarray  # c10valid_valid_12ep, %
    cost: np.ndarray  # c10valid_train_seconds_12ep, s
    finals: pd.DataFrame  # FINAL_COLUMNS, %, indexed by architecture index

    @classmethod
    def load(cls) -> NB201Table:
        """Read both NAS-Bench-201 tables from the shared data (`gradsign_rs.truth`, root $GRADSIGN_DATA)."""
        from gradsign_rs.truth import nb201_truth

        other = nb201_truth("cifar100_imagenet16")
        joined = nb201_truth("cifar10").join(other.drop(columns=["arch_str"], errors="ignore"))
        missing = [c for c in (REWARD, COST, *FINAL_COLUMNS) if c not in joined.columns]
        if missing:
            raise GradSignError(f"the NAS-Bench-201 tables lack column(s) {missing}")
        joined = joined.reindex(range(nb201.NUM_ARCHS))
        if joined[[REWARD, COST, *FINAL_COLUMNS]].isna().any().any():
            raise GradSignError(f"the NAS-Bench-201 tables must give every column for all {nb201.NUM_ARCHS} networks")
        return cls(
            reward=joined[REWARD].to_numpy(np.float64),
            cost=joined[COST].to_numpy(np.float64),
            finals=joined[list(FINAL_COLUMNS)].astype(np.float64),
        )


class Evaluation(NamedTuple):
    """One charged evaluation: the network, its reward (%), and the simulated time when it finished (s)."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index, as NamedTuple allows
    reward: float
    finished_at: float


class Simulator:
    """One search run's simulated clock and history on a tabular benchmark, with a hard time budget (s)."""

    def __init__(self, table: NB201Table, budget: float):
        if not budget >= 0:
            raise GradSignError(f"the time budget must be >= 0 seconds, got {budget}")
        self.table = table
        self.budget = float(budget)
        self.elapsed = 0.0
        self.proxy_seconds = 0.0
        self.history: list[Evaluation] = []
        # (time, index) each time the best-by-reward network changes: the anytime curve of the run.
        self.incumbents: list[tuple[float, int]] = []
        self._best: Evaluation | None = None

    @property
    def remaining(self) -> float:
        """Seconds of the budget not yet spent."""
        return self.budget - self.elapsed

    def _charge(self, seconds: float, what: str) -> None:
        if seconds < 0 or not np.isfinite(seconds):
            raise GradSignError(f"{what}: a charge must be a finite number of seconds >= 0, got {seconds}")
        if self.elapsed + seconds > self.budget:
            raise BudgetExhausted(seconds, self.remaining, what)
        self.elapsed += seconds

    def evaluate(self, arch: nb201.Arch) -> float:
        """Train `arch` for 12 epochs (simulated): charge its training time, return its validation accuracy (%)."""
        index = arch.index
        self._charge(float(self.table.cost[index]), f"evaluating network {index}")
        reward = float(self.table.reward[index])
        evaluation = Evaluation(index, reward, self.elapsed)
        self.history.append(evaluation)
        # Strictly better only: on ties the earlier network stays the incumbent.
        if self._best is None or reward > self._best.reward:
            self._best = evaluation
            self.incumbents.append((self.elapsed, index))
        return reward

    def charge_proxy(self, seconds: float, what: str = "proxy scoring") -> None:
        """Charge `seconds` of proxy compute to the clock (refused like an evaluation when it does not fit)."""
        self._charge(float(seconds), what)
        self.proxy_seconds += float(seconds)

    @property
    def best(self) -> Evaluation | None:
        """The best evaluated network by reward (the earliest among equals), or None before any evaluation."""
        return self._best
