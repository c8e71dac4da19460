"""NAS on tabular NAS-Bench-201, vanilla and proxy-assisted: random search, REA, REINFORCE and BOHB (TPE).

`Simulator` is one run's clock on the benchmark (`NB201Table`): evaluating a network returns its 12-epoch validation
accuracy and charges its 12-epoch training time; a charge that does not fit in the budget raises `BudgetExhausted`,
which ends the run. `Assistant` turns "propose one candidate" into "propose M, evaluate the best by proxy". Each
algorithm is a function `algorithm(sim, rng, assistant=None)`; `SearchContext.run(RunSpec)` runs one to the end of
its budget and `run_many` runs many in worker processes.
"""

from gradsign_rs.search.benchmark import FINAL_COLUMNS, BudgetExhausted, Evaluation, NB201Table, Simulator
from gradsign_rs.search.bohb import bohb
from gradsign_rs.search.proxy import Assistant, OnTheFlyGradSign, ProxyScores, ProxyTable
from gradsign_rs.search.rea import regularized_evolution
from gradsign_rs.search.reinforce import reinforce
from gradsign_rs.search.rs import random_search
from gradsign_rs.search.runner import (
    ALGORITHMS,
    VANILLA,
    RunResult,
    RunSpec,
    SearchContext,
    SearchSettings,
    check_coverage,
    run_many,
)

__all__ = [
    "ALGORITHMS",
    "FINAL_COLUMNS",
    "VANILLA",
    "Assistant",
    "BudgetExhausted",
    "Evaluation",
    "NB201Table",
    "OnTheFlyGradSign",
    "ProxyScores",
    "ProxyTable",
    "RunResult",
    "RunSpec",
    "SearchContext",
    "SearchSettings",
    "Simulator",
    "bohb",
    "check_coverage",
    "random_search",
    "reinforce",
    "regularized_evolution",
    "run_many",
]
