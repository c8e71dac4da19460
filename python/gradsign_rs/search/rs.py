"""Random search: evaluate uniformly random networks until the budget refuses the next charge."""

from __future__ import annotations

import numpy as np

from gradsign_rs.search.benchmark import Simulator
from gradsign_rs.search.proxy import Assistant
from gradsign_rs.spaces import nb201


def random_search(sim: Simulator, rng: np.random.Generator, assistant: Assistant | None = None) -> None:
    """Each step evaluates one random network; assisted, the best by proxy of `assistant.candidates` random ones.

    Returns when the simulator raises `BudgetExhausted` (propagated to the caller, which ends the run).
    """
    while True:
        if assistant is None:
            arch = nb201.sample(rng)
        else:
            proposals = [nb201.sample(rng) for _ in range(assistant.candidates)]
            arch = proposals[assistant.pick(sim, proposals)]
        sim.evaluate(arch)
