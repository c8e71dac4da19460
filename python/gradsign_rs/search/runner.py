"""Run many searches: one (algorithm, assistance, seed) per run, in worker processes, each run's result a row.

A run is fully decided by its `RunSpec` and the `SearchSettings`; with proxy scores from a table (not measured on
the fly) the same spec gives the same result on any machine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.processes import LocalPool, Pool
from gradsign_rs.search.benchmark import FINAL_COLUMNS, BudgetExhausted, NB201Table, Simulator
from gradsign_rs.search.bohb import bohb
from gradsign_rs.search.proxy import Assistant, OnTheFlyGradSign, ProxyScores, ProxyTable
from gradsign_rs.search.rea import regularized_evolution
from gradsign_rs.search.reinforce import reinforce
from gradsign_rs.search.rs import random_search
from gradsign_rs.spaces import nb201

Algorithm = Callable[[Simulator, np.random.Generator, "Assistant | None"], None]
ALGORITHMS: dict[str, Algorithm] = {
    "rs": random_search,
    "rea": regularized_evolution,
    "reinforce": reinforce,
    "bohb": bohb,
}
VANILLA = "none"
DEFAULT_BUDGET = 12000.0
DEFAULT_CANDIDATES = 10
# More simulated time than training every NAS-Bench-201 network once (1.7e6 s): a run never needs more, and an
# unbounded budget (inf) would never end.
MAX_BUDGET = 2e6


@dataclasses.dataclass(frozen=True, order=True)
class RunSpec:
    """One search run: the algorithm, the proxy that assists it ("none": vanilla) and the seed of its generator."""

    algo: str
    assist: str
    seed: int

    @property
    def assisted(self) -> bool:
        return self.assist != VANILLA


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What every run shares: the time budget (s) and, for assisted runs, where scores come from and what they cost."""

    budget: float = DEFAULT_BUDGET
    candidates: int = DEFAULT_CANDIDATES
    charge_proxy_time: bool = True
    scores: str | None = None  # scores CSV path
    allow_on_the_fly: bool = False
    skip_evaluated: bool = False  # assisted picks skip networks the run has evaluated (not the paper's rule)

    def __post_init__(self) -> None:
        budget = self.budget
        number = not isinstance(budget, bool) and isinstance(budget, (int, float))
        if not number or not math.isfinite(budget) or not 0 < budget <= MAX_BUDGET:
            raise GradSignError(
                f"--budget must be a number of simulated seconds in (0, {MAX_BUDGET:g}], got {budget!r}"
            )
        candidates = self.candidates
        if isinstance(candidates, bool) or not isinstance(candidates, int) or not 1 <= candidates <= nb201.NUM_ARCHS:
            raise GradSignError(f"--candidates must be an integer in 1..{nb201.NUM_ARCHS}, got {candidates!r}")


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a run found and spent: times in simulated seconds, accuracies in %."""

    spec: RunSpec
    evaluations: int
    seconds_used: float
    proxy_seconds: float
    proxy_scored: int
    best_index: int | None
    best_reward: float | None
    finals: dict[str, float]
    incumbents: tuple[tuple[float, int], ...]


class SearchContext:
    """The loaded benchmark and proxy scores, shared by all runs of a process."""

    def __init__(self, settings: SearchSettings, proxies: Iterable[str] = ()):
        self.settings = settings
        self.table = NB201Table.load()
        self.scores: dict[str, ProxyScores] = {}
        on_the_fly: OnTheFlyGradSign | None = None
        for proxy in dict.fromkeys(proxies):
            table = None
            if settings.scores is not None:
                table = ProxyTable(settings.scores, proxy, need_seconds=settings.charge_proxy_time)
            fallback = None
            if settings.allow_on_the_fly and (table is None or len(table.missing)):
                on_the_fly = on_the_fly or OnTheFlyGradSign()
                fallback = on_the_fly
            self.scores[proxy] = ProxyScores(proxy, table, fallback)

    def run(self, spec: RunSpec) -> RunResult:
        """Run one search to the end of its budget."""
        if spec.algo not in ALGORITHMS:
            raise GradSignError(f"unknown search algorithm {spec.algo!r}; choose from {', '.join(ALGORITHMS)}")
        assistant = None
        if spec.assisted:
            assistant = Assistant(
                self.scores[spec.assist],
                self.settings.candidates,
                charge_time=self.settings.charge_proxy_time,
                skip_evaluated=self.settings.skip_evaluated,
            )
        sim = Simulator(self.table, self.settings.budget)
        rng = np.random.default_rng(spec.seed)
        try:
            ALGORITHMS[spec.algo](sim, rng, assistant)
        except BudgetExhausted:
            pass  # the normal end of a run: the next charge did not fit
        best = sim.best
        finals = {} if best is None else {c: float(self.table.finals.at[best.index, c]) for c in FINAL_COLUMNS}
        return RunResult(
            spec=spec,
            evaluations=len(sim.history),
            seconds_used=sim.elapsed,
            proxy_seconds=sim.proxy_seconds,
            proxy_scored=assistant.scored if assistant else 0,
            best_index=None if best is None else best.index,
            best_reward=None if best is None else best.reward,
            finals=finals,
            incumbents=tuple(sim.incumbents),
        )


def check_coverage(settings: SearchSettings, proxies: Iterable[str]) -> None:
    """Refuse assisted runs whose proxy scores do not cover the whole space, unless on-the-fly GradSign is allowed."""
    from gradsign_rs.search.proxy import GRADSIGN

    for proxy in dict.fromkeys(proxies):
        if settings.scores is None:
            if proxy != GRADSIGN or not settings.allow_on_the_fly:
                raise GradSignError(
                    f"assisting with {proxy!r} needs a scores table (--scores FILE.csv)"
                    + (" or --allow-on-the-fly" if proxy == GRADSIGN else "")
                )
            continue
        table = ProxyTable(settings.scores, proxy, need_seconds=settings.charge_proxy_time)
        missing = len(table.missing)
        if missing and not (settings.allow_on_the_fly and proxy == GRADSIGN):
            hint = (
                "complete it (gradsign batch --archs all --out ...) or pass --allow-on-the-fly to score the missing "
                "networks during the search (their measured seconds are charged; results then depend on this machine)"
                if proxy == GRADSIGN
                else "only GradSign can be scored on the fly"
            )
            raise GradSignError(
                f"{settings.scores} scores {nb201.NUM_ARCHS - missing} of {nb201.NUM_ARCHS} networks with {proxy!r}: "
                f"{missing} networks missing; {hint}"
            )


# ---- worker side ----

_context: dict[str, SearchContext] = {}


def _init_worker(settings: SearchSettings, proxies: tuple[str, ...]) -> None:
    _context["search"] = SearchContext(settings, proxies)


def _run_in_worker(spec: RunSpec) -> RunResult:
    return _context["search"].run(spec)


def run_many(
    settings: SearchSettings, specs: Iterable[RunSpec], *, workers: int = 1, pool: Pool | None = None
) -> Iterator[RunResult]:
    """Results of `specs` as they finish (in order with one local worker; in completion order otherwise). `pool`
    runs them elsewhere (`gradsign_rs.cluster.RayPool`: on a Ray cluster; `workers` is then unused)."""
    specs = list(specs)
    pool = LocalPool(workers) if pool is None else pool
    if not specs:
        return
    proxies = tuple(dict.fromkeys(s.assist for s in specs if s.assisted))
    if isinstance(pool, LocalPool) and pool.workers == 1:
        context = SearchContext(settings, proxies)
        for spec in specs:
            yield context.run(spec)
        return
    yield from pool.imap_unordered(_run_in_worker, specs, initializer=_init_worker, initargs=(settings, proxies))


def scores_id(settings: SearchSettings, proxies: Iterable[str]) -> str:
    """How assisted runs got their scores, for the runs file: the table's sha256, and whether some were measured."""
    from gradsign_rs.search.proxy import GRADSIGN

    if settings.scores is None:
        return "on-the-fly"
    measured = False
    if settings.allow_on_the_fly and GRADSIGN in set(proxies):
        measured = len(ProxyTable(settings.scores, GRADSIGN, need_seconds=False).missing) > 0
    return f"sha256:{ProxyTable.file_sha256(settings.scores)}" + ("+on-the-fly" if measured else "")
