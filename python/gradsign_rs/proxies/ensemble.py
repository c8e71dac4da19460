"""ensemble: a rank ensemble of proxies over a population of networks, fitted on a held-out split.

Rule: for networks a in a population, ensemble(a) = mean over the chosen proxies p of s_p · r_p(a), where r_p(a) is
a's average rank (scipy `rankdata`) among the networks with a finite p, divided by that count (so in (0, 1]), and
s_p = ±1 orients p so that larger predicts better. A proxy that is NaN for a network is left out of that network's
mean. Ranks are relative to the population scored, so an ensemble value is only comparable within one population.

Fitting (`fit`) sees only the training split: s_p is the sign of p's Spearman correlation with the target there,
and proxies are added greedily (forward selection), each time the one that most raises the ensemble's Spearman on
the training split, stopping when none raises it by more than `min_gain` or `max_size` are chosen.
The evaluation split is never read while fitting (`split` gives disjoint index sets).

Command: `gradsign ensemble RESULTS.csv [MORE.csv ...] [--truth nb201_cifar10.csv] [--target COLUMN] [--report DIR]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from gradsign_rs._core import GradSignError


@dataclasses.dataclass(frozen=True)
class EnsembleRule:
    """The chosen proxies and their orientation (+1: larger is better, -1: smaller is better)."""

    proxies: tuple[str, ...]
    signs: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {"proxies": list(self.proxies), "signs": list(self.signs)}


def normalized_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of the finite values divided by their count (in (0, 1]); NaN where the value is not finite."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    ranks = np.full(values.shape, np.nan)
    if finite.any():
        ranks[finite] = stats.rankdata(values[finite]) / finite.sum()
    return ranks


def ensemble(table: Mapping[str, np.ndarray], rule: EnsembleRule) -> np.ndarray:
    """The ensemble value of every network (row) of `table` (proxy name -> values over the same networks)."""
    missing = [p for p in rule.proxies if p not in table]
    if missing:
        raise GradSignError(f"ensemble: the table lacks proxies {missing}")
    if not rule.proxies:
        raise GradSignError("ensemble: the rule chooses no proxies")
    oriented = np.stack([s * normalized_ranks(table[p]) for p, s in zip(rule.proxies, rule.signs)])
    counts = np.isfinite(oriented).sum(axis=0)
    sums = np.where(np.isfinite(oriented), oriented, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def spearman(values: np.ndarray, target: np.ndarray) -> float:
    """Spearman rho over the networks where both are finite (scipy)."""
    keep = np.isfinite(values) & np.isfinite(target)
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
    best = -np.inf
    while len(chosen) < max_size:
        trials = {}
        for p in signs:
            if p in chosen:
                continue
            rule = EnsembleRule(tuple(chosen + [p]), tuple(signs[q] for q in chosen + [p]))
            trials[p] = spearman(ensemble(sub, rule), target_train)
        trials = {p: rho for p, rho in trials.items() if np.isfinite(rho)}
        if not trials:
            break
        pick = max(trials, key=lambda p: (trials[p], p))
        if trials[pick] <= best + min_gain:
            break
        chosen.append(pick)
        best = trials[pick]
    if not chosen:
        raise GradSignError("ensemble: no candidate proxy correlates with the target on the training split")
    return EnsembleRule(tuple(chosen), tuple(signs[p] for p in chosen))
