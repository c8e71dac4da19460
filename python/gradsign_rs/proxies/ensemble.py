"""ensemble: a rank ensemble of proxies over a population of networks, fitted on a held-out split.

Rule: for networks a in a population, with r_p(a) the average rank (scipy `rankdata`) of s_p·p(a) among the
networks where p is not NaN, divided by that count (so in (0, 1]), s_p = ±1 orienting p so that larger predicts
better, and w_p > 0 p's weight, the ensemble is a weighted mean over the chosen proxies p of
  - "mean": r_p(a)        (a rank sum, as the jacob_cov + params baseline of the issue), or
  - "log":  log r_p(a)    (a weighted log-product of ranks, as AZ-NAS aggregates its proxies: a network must rank
                           well on every proxy, since one low rank weighs more than several high ones).
A proxy that is NaN for a network is left out of that network's weighted mean. Ranks are relative to the
population scored, so an ensemble value is only comparable within one population.

Label-free orientation (`consensus_signs`): the signs s_p that make the chosen proxies agree most, i.e. maximise the sum
of their pairwise Spearman correlations over the whole population, the majority larger-is-better; no accuracy is read,
so a proxy that ranks networks against the others (jacob_cov on NAS-Bench-101) is negated without labels.

Fitting (`fit`) sees only the training split: s_p is the sign of p's Spearman correlation with the target there,
and for each aggregation, (proxy, weight) pairs, weights from `WEIGHTS`, are added greedily (forward selection),
each time the pair that most raises the ensemble's Spearman on the training split, stopping when none raises it by
more than `min_gain` or `max_size` proxies are chosen; the aggregation whose rule scores higher on the training split
is kept. The first proxy's weight is 1 (only ratios matter). The evaluation split is never read while fitting
(`split` gives disjoint index sets). Few-shot fits (`subsample`) see a seeded part of the training split only.

Command: `gradsign ensemble RESULTS.csv [MORE.csv ...] [--truth nb201_cifar10.csv] [--target COLUMN] [--report DIR]`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from gradsign_rs import stats as rank_stats
from gradsign_rs._core import GradSignError

# Relative weights a proxy may join the ensemble with.
WEIGHTS = (0.5, 1.0, 2.0)
# How oriented ranks are combined; `fit` tries each (the first wins ties).
AGGREGATIONS = ("mean", "log")
# `consensus_signs` enumerates 2^(n-1) sign patterns.
MAX_CONSENSUS_PROXIES = 16
# What `few_shot` measures of each fit on the held-out networks.
FEW_SHOT_STATISTICS = ("spearman", "kendall", "precision_top_1_percent")


@dataclasses.dataclass(frozen=True)
class EnsembleRule:
    """The chosen proxies, their orientation (+1: larger is better, -1: smaller is better), weights (1 each by
    default) and how their ranks are combined (see the module docstring)."""

    proxies: tuple[str, ...]
    signs: tuple[int, ...]
    weights: tuple[float, ...] | None = None
    aggregation: str = "mean"

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise GradSignError(f"ensemble: unknown aggregation {self.aggregation!r}; choose from {AGGREGATIONS}")

    def weight_of(self) -> tuple[float, ...]:
        return self.weights if self.weights is not None else (1.0,) * len(self.proxies)

    def to_json(self) -> dict[str, object]:
        return {
            "proxies": list(self.proxies),
            "signs": list(self.signs),
            "weights": list(self.weight_of()),
            "aggregation": self.aggregation,
        }

    @classmethod
    def from_json(cls, data: object, source: str) -> EnsembleRule:
        """The rule `to_json` wrote (alone, or as the "rule" of an ensemble report), checked field by field;
        `source` names where it came from in errors."""
        if isinstance(data, dict) and "rule" in data:
            data = data["rule"]
        fields = ("proxies", "signs", "weights", "aggregation")
        if not isinstance(data, dict) or any(key not in data for key in fields):
            raise GradSignError(f"{source}: expected a rule with {', '.join(fields)} (an ensemble.json report)")
        proxies, signs, weights = data["proxies"], data["signs"], data["weights"]
        if not isinstance(proxies, list) or not proxies or not all(isinstance(p, str) and p for p in proxies):
            raise GradSignError(f"{source}: rule proxies must be a non-empty list of names, got {proxies!r}")
        if len(set(proxies)) != len(proxies):
            raise GradSignError(f"{source}: rule proxies {proxies} name a proxy twice")
        if not isinstance(signs, list) or len(signs) != len(proxies) or any(s not in (1, -1) for s in signs):
            raise GradSignError(f"{source}: rule signs must be one +1 or -1 per proxy, got {signs!r}")
        if (
            not isinstance(weights, list)
            or len(weights) != len(proxies)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)
            or not all(np.isfinite(w) and w > 0 for w in weights)
        ):
            raise GradSignError(f"{source}: rule weights must be one positive number per proxy, got {weights!r}")
        if data["aggregation"] not in AGGREGATIONS:
            raise GradSignError(
                f"{source}: rule aggregation must be one of {AGGREGATIONS}, got {data['aggregation']!r}"
            )
        return cls(tuple(proxies), tuple(int(s) for s in signs), tuple(float(w) for w in weights), data["aggregation"])


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
    oriented = np.stack(
        [normalized_ranks(s * np.asarray(table[p], np.float64)) for p, s in zip(rule.proxies, rule.signs)]
    )
    if rule.aggregation == "log":
        oriented = np.log(oriented)  # ranks are in (0, 1]: finite, NaN stays NaN
    weights = np.asarray(rule.weight_of(), np.float64)[:, None]
    finite = np.isfinite(oriented)
    counts = np.where(finite, weights, 0.0).sum(axis=0)
    sums = np.where(finite, weights * np.where(finite, oriented, 0.0), 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def pairwise_spearman(table: Mapping[str, np.ndarray], proxies: Sequence[str]) -> np.ndarray:
    """Spearman's rho of every pair of proxies over the networks where both are defined: (n, n), 1 on the diagonal,
    0 where a pair's correlation is undefined (a constant proxy). What `consensus_signs` reads."""
    n = len(proxies)
    correlation = np.eye(n)
    for i, j in itertools.combinations(range(n), 2):
        rho = rank_stats.spearman(np.asarray(table[proxies[i]], np.float64), np.asarray(table[proxies[j]], np.float64))
        correlation[i, j] = correlation[j, i] = 0.0 if np.isnan(rho) else rho
    return correlation


def consensus_signs(table: Mapping[str, np.ndarray], proxies: Sequence[str]) -> tuple[int, ...]:
    """Each proxy's orientation by agreement with the others, reading no accuracy (see the module docstring): of all
    2^n sign patterns, the one that maximises the sum of the oriented proxies' pairwise Spearman correlations (each
    over the networks where both are defined; 0 where undefined), found exactly. That sum cannot see a flip of every
    sign, so the majority is larger-is-better, the first proxy deciding a tie; equal sums go to the earlier pattern
    in `itertools.product((1, -1), ...)` order (fewer flips first)."""
    n = len(proxies)
    if n < 2:
        raise GradSignError(
            f"consensus orientation compares the proxies with each other: name at least two, got {proxies}"
        )
    if n > MAX_CONSENSUS_PROXIES:
        raise GradSignError(
            f"consensus orientation tries every sign pattern: at most {MAX_CONSENSUS_PROXIES} proxies, got {n}"
        )
    correlation = pairwise_spearman(table, proxies)
    # The first proxy is +1 in every pattern tried: the overall flip is settled by the majority below.
    patterns = np.array([(1, *rest) for rest in itertools.product((1, -1), repeat=n - 1)], np.float64)
    agreement = np.einsum("ki,ij,kj->k", patterns, correlation, patterns)
    best = patterns[int(np.argmax(agreement))]
    if (best < 0).sum() * 2 > n:
        best = -best
    return tuple(int(sign) for sign in best)


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


def subsample(pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` rows of `pool` drawn with `np.random.default_rng(seed)`, sorted: the first `size` of one seeded
    permutation of the pool, so with one seed a smaller draw is part of every larger one (few-shot fits)."""
    pool = np.asarray(pool)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 3 <= size <= pool.size:
        raise GradSignError(f"a training set of {size!r} networks: choose 3..{pool.size} (the training split)")
    return np.sort(pool[np.random.default_rng(seed).permutation(pool.size)[:size]])


def fit(
    table: Mapping[str, np.ndarray],
    target: np.ndarray,
    train: np.ndarray,
    *,
    candidates: Sequence[str] | None = None,
    max_size: int = 4,
    min_gain: float = 1e-3,
    aggregations: Sequence[str] = AGGREGATIONS,
) -> EnsembleRule:
    """Greedy forward selection on the rows `train` only, for each aggregation; the rule that scores higher on the
    training split is returned (see the module docstring)."""
    if not aggregations:
        raise GradSignError("ensemble: no aggregation to fit")
    target_train = np.asarray(target, np.float64)[train]
    best_rule, best_rho = None, -np.inf
    for aggregation in aggregations:
        rule = _forward_selection(table, target, train, candidates, max_size, min_gain, aggregation)
        sub = {p: np.asarray(table[p], np.float64)[train] for p in rule.proxies}
        rho = spearman(ensemble(sub, rule), target_train)
        if rho > best_rho:
            best_rule, best_rho = rule, rho
    assert best_rule is not None
    return best_rule


def _forward_selection(
    table: Mapping[str, np.ndarray],
    target: np.ndarray,
    train: np.ndarray,
    candidates: Sequence[str] | None,
    max_size: int,
    min_gain: float,
    aggregation: str,
) -> EnsembleRule:
    """One aggregation's greedy forward selection on the rows `train`."""
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
                rule = EnsembleRule(names, tuple(signs[q] for q in names), tuple(weights + [w]), aggregation)
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
    return EnsembleRule(tuple(chosen), tuple(signs[p] for p in chosen), tuple(weights), aggregation)


def top_one_percent(n: int) -> int:
    """How many networks the top 1% of `n` is (at least one): where precision is measured."""
    return max(1, n // 100)


def few_shot(
    table: Mapping[str, np.ndarray],
    target: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    sizes: Sequence[int],
    *,
    splits: int,
    candidates: Sequence[str] | None = None,
    max_size: int = 4,
    aggregations: Sequence[str] = AGGREGATIONS,
) -> dict[str, dict]:
    """How many labels a fit needs: for each size N, `splits` fits on seeded draws of N networks of `train`
    (`subsample`, seeds 0..splits-1), and one fit on the whole of `train`, each evaluated on the same `held_out`
    networks (`FEW_SHOT_STATISTICS`; precision at the top 1% of them): {str(N): {"draws", "summary", "fits"}}, the
    summary giving each statistic's mean, sample standard deviation, min and max over the draws."""
    target = np.asarray(target, np.float64)
    evaluation = {p: np.asarray(v, np.float64)[held_out] for p, v in table.items()}
    top = top_one_percent(held_out.size)
    plan = [(size, range(splits)) for size in sorted(set(sizes))]
    if train.size not in sizes:
        plan.append((train.size, range(1)))  # the whole training split: every draw is the same, one fit
    results = {}
    for size, seeds in plan:
        fits: list[dict[str, object]] = []
        measured: dict[str, list[float]] = {key: [] for key in FEW_SHOT_STATISTICS}
        for seed in seeds:
            rule = fit(
                table,
                target,
                subsample(train, size, seed),
                candidates=candidates,
                max_size=max_size,
                aggregations=aggregations,
            )
            predicted, truth = ensemble(evaluation, rule), target[held_out]
            finite = ~np.isnan(predicted) & ~np.isnan(truth)
            predicted, truth = predicted[finite], truth[finite]
            statistics = {
                "spearman": rank_stats.spearman(predicted, truth),
                "kendall": rank_stats.kendall_tau(predicted, truth),
                "precision_top_1_percent": rank_stats.precision_at_k(predicted, truth, top),
            }
            for key, value in statistics.items():
                measured[key].append(value)
            fits.append({"seed": seed, "rule": rule.to_json(), **statistics})
        summary = {
            key: {
                "mean": float(np.mean(column)),
                "std": float(np.std(column, ddof=1)) if len(column) > 1 else 0.0,
                "min": float(np.min(column)),
                "max": float(np.max(column)),
            }
            for key, column in measured.items()
        }
        results[str(size)] = {"draws": len(fits), "summary": summary, "fits": fits}
    return results
