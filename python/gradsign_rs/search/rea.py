"""Regularized (aging) evolution, Real et al. 2019, with NAS-Bench-201's settings: population 10, tournament 3."""

from __future__ import annotations

import collections

import numpy as np

from gradsign_rs.search.benchmark import Simulator
from gradsign_rs.search.proxy import Assistant
from gradsign_rs.spaces import nb201

POPULATION_SIZE = 10
TOURNAMENT_SIZE = 3


def regularized_evolution(
    sim: Simulator,
    rng: np.random.Generator,
    assistant: Assistant | None = None,
    *,
    population_size: int = POPULATION_SIZE,
    tournament_size: int = TOURNAMENT_SIZE,
) -> None:
    """Aging evolution until the budget refuses a charge (`BudgetExhausted` propagates to the caller).

    The population starts as `population_size` random networks. Each cycle draws `tournament_size` members uniformly
    with replacement (as NAS-Bench-201's R_EA.py), mutates the best of them (one edge's op changed), evaluates the
    child, appends it and removes the oldest member. Assisted, the child is the best by proxy of
    `assistant.candidates` independent mutations of the parent; the initial population stays random, as in the
    GradSign authors' G-REA.
    """
    population: collections.deque[tuple[nb201.Arch, float]] = collections.deque()
    while len(population) < population_size:
        arch = nb201.sample(rng)
        population.append((arch, sim.evaluate(arch)))
    while True:
        drawn = rng.integers(len(population), size=tournament_size)
        # max() keeps the first of equals: the earliest drawn member wins a tie.
        parent = max((population[int(i)] for i in drawn), key=lambda member: member[1])[0]
        if assistant is None:
            child = parent.mutate(rng)
        else:
            mutants = [parent.mutate(rng) for _ in range(assistant.candidates)]
            child = mutants[assistant.pick(sim, mutants)]
        population.append((child, sim.evaluate(child)))
        population.popleft()
