"""BOHB's model-based proposal (TPE) on NAS-Bench-201, with optuna's TPESampler through its ask/tell interface.

BOHB = Hyperband's budget schedule + a TPE-style density-ratio model (Falkner et al. 2018). Only the 12-epoch
results are tabulated here, so there is no lower fidelity to schedule: this is BOHB's model at a single fidelity,
each evaluation a new proposal. (NAS-Bench-201's BOHB.py ran hpbandster with min_budget 12 and max_budget 200 but
its worker ignores the budget and always returns the 12-epoch result, so successive halving's promotions there
re-evaluate the same networks at full cost; nothing of that schedule is reproduced.)

Settings mapped from BOHB (hpbandster) as NAS-Bench-201 ran it (num_samples 4, random_fraction 0):
- `n_ei_candidates=4`: proposals drawn from the good-density model per acquisition (BOHB's num_samples);
- `n_startup_trials=14`: random proposals until BOHB could first fit its two KDEs (each needs more points than the
  6 dimensions, i.e. 7 good + 7 bad);
- `multivariate=True`: one joint kernel over the 6 edges, as BOHB's statsmodels KDEMultivariate.
Left at optuna's defaults (deprecated as arguments since optuna 4.9): the good/bad split (10% of trials, at most
25; BOHB: 15%), the categorical kernel's smoothing (a uniform prior component; BOHB: Aitchison-Aitken, bandwidth
>= 0.3) and the weights that fade trials older than the last 25 (BOHB: equal weights).
`constant_liar=False`: proposals asked for but not yet told (the other M-1 candidates of an assisted step) do not
shape the next proposal, so the M candidates are independent draws from the same model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.search.benchmark import Simulator
from gradsign_rs.search.proxy import Assistant
from gradsign_rs.spaces import nb201

N_EI_CANDIDATES = 4
N_STARTUP_TRIALS = 2 * (len(nb201.EDGES) + 1)


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    # optuna logs each study creation at INFO on its own handler; silence it for the run, then restore.
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def bohb(
    sim: Simulator,
    rng: np.random.Generator,
    assistant: Assistant | None = None,
    *,
    n_ei_candidates: int = N_EI_CANDIDATES,
    n_startup_trials: int = N_STARTUP_TRIALS,
) -> None:
    """TPE proposals, each evaluated and told to the model, until the budget refuses a charge.

    Assisted, each step asks the model for `assistant.candidates` proposals (independent draws from the same model),
    evaluates the best by proxy and tells only that one; the others are closed as failed, which TPE ignores.
    `BudgetExhausted` propagates to the caller.
    """
    try:
        import optuna
        from optuna.trial import TrialState
    except ModuleNotFoundError as exc:
        raise GradSignError("BOHB's model comes from optuna; install it (pip install 'optuna>=4.0')") from exc

    space: dict[str, optuna.distributions.BaseDistribution] = {
        f"{t}<-{s}": optuna.distributions.CategoricalDistribution(nb201.OPS) for t, s in nb201.EDGES
    }
    with _optuna_quiet():
        sampler = optuna.samplers.TPESampler(
            seed=int(rng.integers(2**31 - 1)),
            n_startup_trials=n_startup_trials,
            n_ei_candidates=n_ei_candidates,
            multivariate=True,
            constant_liar=False,
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        while True:
            trials = [study.ask(space) for _ in range(1 if assistant is None else assistant.candidates)]
            archs = [nb201.Arch(tuple(trial.params[name] for name in space)) for trial in trials]
            chosen = 0 if assistant is None else assistant.pick(sim, archs)
            study.tell(trials[chosen], sim.evaluate(archs[chosen]))
            for position, trial in enumerate(trials):
                if position != chosen:
                    study.tell(trial, state=TrialState.FAIL)
