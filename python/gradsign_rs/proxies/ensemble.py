"""ensemble: a rank ensemble of proxies over a population of networks, fitted on a held-out split.

Rule: for networks a in a population, ensemble(a) = Σ_p w_p s_p r_p(a) / Σ_p w_p over the chosen proxies p, where
r_p(a) is a's average rank (scipy `rankdata`) among the networks where p is not NaN, divided by that count (so in
(0, 1]), s_p = ±1 orients p so that larger predicts better, and w_p > 0 is p's weight. A proxy that is NaN for a
network is left out of that network's weighted mean. Ranks are relative to the population scored, so an ensemble
value is only comparable within one population.

Fitting (`fit`) sees only the training split: s_p is the sign of p's Spearman correlation with the target there,
and (proxy, weight) pairs, weights from `WEIGHTS`, are added greedily (forward selection), each time the pair that
most raises the ensemble's Spearman on the training split, stopping when none raises it by more than `min_gain` or
`max_size` proxies are chosen. The first proxy's weight is 1 (only ratios matter).
The evaluation split is never read while fitting (`split` gives disjoint index sets).

Command: `gradsign ensemble RESULTS.csv [MORE.csv ...] [--truth nb201_cifar10.csv] [--target COLUMN] [--report DIR]`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from gradsign_rs._core import GradSignError


# Relative weights a proxy may join the ensemble with.
WEIGHTS = (0.5, 1.0, 2.0)


@dataclasses.dataclass(frozen=True)
class EnsembleRule:
    """The chosen proxies, their orientation (+1: larger is better, -1: smaller is better) and weights (1 each by
    default)."""

    proxies: tuple[str, ...]
    signs: tuple[int, ...]
    weights: tuple[float, ...] | None = None

    def weight_of(self) -> tuple[float, ...]:
        return self.weights if self.weights is not None else (1.0,) * len(self.proxies)

    def to_json(self) -> dict[str, object]:
        return {"proxies": list(self.proxies), "signs": list(self.signs), "weights": list(self.weight_of())}


def normalized_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of the non-NaN values divided by their count (in (0, 1]); NaN where the value is NaN.
    ±inf rank as the extremes they are (nwot is -inf for a network whose ReLU codes are all alike)."""
    values = np.asarray(values, np.float64)
    present = ~np.isnan(values)
    ranks = np.full(values.shape, np.nan)
    if present.any():
        ranks[present] = stats.rankdata(values[present]) / present.sum()
    return ranks


def ensemble(table: Mapping[str, np.ndarray], rule: EnsembleRule) -> np.ndarray:
    """The ensemble value of every network (row) of `table` (proxy name -> values over the same networks)."""
    missing = [p for p in rule.proxies if p not in table]
    if missing:
        raise GradSignError(f"ensemble: the table lacks proxies {missing}")
    if not rule.proxies:
        raise GradSignError("ensemble: the rule chooses no proxies")
    oriented = np.stack([s * normalized_ranks(table[p]) for p, s in zip(rule.proxies, rule.signs)])
    weights = np.asarray(rule.weight_of(), np.float64)[:, None]
    finite = np.isfinite(oriented)
    counts = np.where(finite, weights, 0.0).sum(axis=0)
    sums = np.where(finite, weights * np.where(finite, oriented, 0.0), 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def spearman(values: np.ndarray, target: np.ndarray) -> float:
    """Spearman rho over the networks where neither is NaN (scipy)."""
    keep = ~np.isnan(values) & ~np.isnan(target)
    if keep.sum() < 3:
        return float("nan")
    return float(stats.spearmanr(values[keep], target[keep]).statistic)


def split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, evaluation) row indices: a seeded random `train_fraction` of n rows for training."""
    if not 0.0 < train_fraction < 1.0:
        raise GradSignError(f"train_fraction must be in (0, 1), got {train_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(train_fraction * n)))
    if cut >= n:
        raise GradSignError(f"{n} networks are too few to split")
    return np.sort(order[:cut]), np.sort(order[cut:])


def fit(
    table: Mapping[str, np.ndarray],
    target: np.ndarray,
    train: np.ndarray,
    *,
    candidates: Sequence[str] | None = None,
    max_size: int = 4,
    min_gain: float = 1e-3,
) -> EnsembleRule:
    """Greedy forward selection on the rows `train` only (see the module docstring)."""
    candidates = list(candidates if candidates is not None else table)
    target_train = np.asarray(target, np.float64)[train]
    sub = {p: np.asarray(table[p], np.float64)[train] for p in candidates}
    signs = {}
    for p in candidates:
        rho = spearman(sub[p], target_train)
        if np.isfinite(rho) and rho != 0:
            signs[p] = 1 if rho > 0 else -1
    chosen: list[str] = []
    weights: list[float] = []
    best = -np.inf
    while len(chosen) < max_size:
        trials = {}
        for p in signs:
            if p in chosen:
                continue
            for w in WEIGHTS if chosen else (1.0,):
                names = tuple(chosen + [p])
                rule = EnsembleRule(names, tuple(signs[q] for q in names), tuple(weights + [w]))
                trials[(p, w)] = spearman(ensemble(sub, rule), target_train)
        trials = {key: rho for key, rho in trials.items() if np.isfinite(rho)}
        if not trials:
            break
        # Ties go to weight 1, then to the name, so a fit is reproducible.
        pick = max(trials, key=lambda key: (trials[key], key[1] == 1.0, key[0]))
        if trials[pick] <= best + min_gain:
            break
        chosen.append(pick[0])
        weights.append(pick[1])
        best = trials[pick]
    if not chosen:
        raise GradSignError("ensemble: no candidate proxy correlates with the target on the training split")
    return EnsembleRule(tuple(chosen), tuple(signs[p] for p in chosen), tuple(weights))
