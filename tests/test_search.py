"""Simulated NAS on NAS-Bench-201: exact time accounting, budget never exceeded, reproducible runs, assistance picks
the argmax-proxy candidate, the CLI end to end, and resume giving each run exactly once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import DATA
from gradsign_rs.cli import main
from gradsign_rs.search import (
    ALGORITHMS,
    Assistant,
    BudgetExhausted,
    NB201Table,
    ProxyScores,
    ProxyTable,
    RunSpec,
    SearchContext,
    SearchSettings,
    Simulator,
)
from gradsign_rs.spaces import nb201
from hypothesis import given, settings
from hypothesis import strategies as st

TRUTH = DATA / "nb201" / "nb201_cifar10.csv"
pytestmark = pytest.mark.skipif(not TRUTH.is_file(), reason="needs the shared NAS-Bench-201 data")


@pytest.fixture(scope="module")
def table() -> NB201Table:
    return NB201Table.load()


@pytest.fixture(scope="module")
def scores_csv(tmp_path_factory) -> str:
    """A synthetic scores table over the whole space: random scores, random proxy seconds in [0.5, 3)."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("scores") / "synthetic.csv"
    pd.DataFrame(
        {
            "index": np.arange(nb201.NUM_ARCHS),
            "score": rng.standard_normal(nb201.NUM_ARCHS),
            "seconds": rng.uniform(0.5, 3.0, nb201.NUM_ARCHS).round(4),
        }
    ).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def scores(scores_csv) -> ProxyScores:
    return ProxyScores("gradsign", ProxyTable(scores_csv))


def test_simulator_returns_the_table_and_charges_time_exactly(table):
    truth = pd.read_csv(TRUTH).set_index("index")
    sim = Simulator(table, budget=500.0)
    picks = [0, 1, 6111]
    rewards = [sim.evaluate(nb201.Arch.from_index(i)) for i in picks]
    assert rewards == [truth.at[i, "c10valid_valid_12ep"] for i in picks]
    clock = 0.0
    for evaluation, i in zip(sim.history, picks):
        clock += truth.at[i, "c10valid_train_seconds_12ep"]
        assert evaluation.index == i and evaluation.finished_at == clock
    assert sim.elapsed == clock
    sim.charge_proxy(2.5)
    assert (sim.elapsed, sim.proxy_seconds) == (clock + 2.5, 2.5)
    # A charge that does not fit is refused whole and leaves the clock and history as they were.
    expensive = max(range(nb201.NUM_ARCHS), key=lambda i: table.cost[i])
    assert table.cost[expensive] > sim.remaining
    with pytest.raises(BudgetExhausted) as refused:
        sim.evaluate(nb201.Arch.from_index(expensive))
    assert refused.value.requested == table.cost[expensive] and refused.value.remaining == sim.remaining
    assert sim.elapsed == clock + 2.5 and len(sim.history) == 3
    # The incumbent only changes on a strictly better reward; the best is the max reward, earliest on ties.
    assert sim.best.reward == max(rewards)
    assert [i for _, i in sim.incumbents] == [
        i for k, i in enumerate(picks) if rewards[k] > max(rewards[:k], default=-1)
    ]


def test_a_charge_that_exactly_fills_the_budget_is_made(table):
    sim = Simulator(table, budget=float(table.cost[42]))
    sim.evaluate(nb201.Arch.from_index(42))
    assert sim.remaining == 0.0
    with pytest.raises(BudgetExhausted):
        sim.charge_proxy(1e-9)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_runs_are_reproducible_from_a_seed(table, scores, algo):
    def history(seed: int, assisted: bool) -> list:
        sim = Simulator(table, budget=2500.0)
        with pytest.raises(BudgetExhausted):
            ALGORITHMS[algo](sim, np.random.default_rng(seed), Assistant(scores, 4) if assisted else None)
        return [tuple(e) for e in sim.history] + [sim.elapsed]

    for assisted in (False, True):
        assert history(3, assisted) == history(3, assisted)
        assert history(3, assisted) != history(4, assisted)


@settings(max_examples=40, deadline=None)
@given(
    algo=st.sampled_from(sorted(ALGORITHMS)),
    seed=st.integers(0, 2**32 - 1),
    budget=st.floats(0.0, 3000.0, allow_nan=False),
    candidates=st.one_of(st.none(), st.integers(1, 6)),
    charge_time=st.booleans(),
)
def test_the_budget_is_never_exceeded(table, scores, algo, seed, budget, candidates, charge_time):
    sim = Simulator(table, budget)
    assistant = None if candidates is None else Assistant(scores, candidates, charge_time=charge_time)
    with pytest.raises(BudgetExhausted) as stop:
        ALGORITHMS[algo](sim, np.random.default_rng(seed), assistant)
    assert sim.elapsed <= budget
    # The run ended on a charge that really did not fit, and the clock is exactly what was charged.
    assert stop.value.requested > budget - sim.elapsed
    charged = sum(table.cost[e.index] for e in sim.history) + sim.proxy_seconds
    assert sim.elapsed == pytest.approx(charged, rel=1e-12, abs=1e-9)
    if assistant is None or not charge_time:
        assert sim.proxy_seconds == 0.0


class RecordingAssistant(Assistant):
    """Records each pick: the candidates' indices and the position chosen."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.picks: list[tuple[list[int], int]] = []

    def pick(self, sim, archs):
        chosen = super().pick(sim, archs)
        self.picks.append(([a.index for a in archs], chosen))
        return chosen


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_assisted_runs_evaluate_the_argmax_proxy_candidate(table, scores, scores_csv, algo):
    values = pd.read_csv(scores_csv).set_index("index")
    assistant = RecordingAssistant(scores, 6)
    sim = Simulator(table, budget=4000.0)
    with pytest.raises(BudgetExhausted):
        ALGORITHMS[algo](sim, np.random.default_rng(11), assistant)
    assert len(assistant.picks) > 5
    for candidates, chosen in assistant.picks:
        assert len(candidates) == 6
        assert chosen == int(np.argmax(values.loc[candidates, "score"].to_numpy()))
    # Every pick is evaluated next (the last may be refused by the budget); REA's random population comes first.
    start = 10 if algo == "rea" else 0
    evaluated = [e.index for e in sim.history[start:]]
    chosen_indices = [candidates[chosen] for candidates, chosen in assistant.picks]
    assert evaluated == chosen_indices[: len(evaluated)] and len(chosen_indices) - len(evaluated) in (0, 1)
    # Proxy time is charged once per distinct network of the run.
    distinct = {i for candidates, _ in assistant.picks for i in candidates}
    assert sim.proxy_seconds == pytest.approx(values.loc[sorted(distinct), "seconds"].sum())
    if algo == "rea":
        # Candidates are one-edge mutations of one parent drawn from the evaluated networks.
        seen = [nb201.Arch.from_index(e.index) for e in sim.history]
        for candidates, _ in assistant.picks[:20]:
            mutants = [nb201.Arch.from_index(i) for i in candidates]
            assert any(all(sum(a != b for a, b in zip(m.ops, p.ops)) == 1 for m in mutants) for p in seen)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_each_algorithm_improves_on_its_first_evaluation_on_average(table, algo):
    first, best, first_test, best_test = [], [], [], []
    for seed in range(12):
        sim = Simulator(table, budget=6000.0)
        with pytest.raises(BudgetExhausted):
            ALGORITHMS[algo](sim, np.random.default_rng(seed), None)
        first.append(sim.history[0].reward)
        best.append(sim.best.reward)
        first_test.append(table.finals.at[sim.history[0].index, "c10_test_200ep"])
        best_test.append(table.finals.at[sim.best.index, "c10_test_200ep"])
    assert np.mean(best) > np.mean(first) + 5
    assert np.mean(best_test) > np.mean(first_test) + 1


def test_a_partial_scores_table_is_refused_with_the_missing_count(tmp_path, scores_csv, capsys):
    partial = tmp_path / "partial.csv"
    pd.read_csv(scores_csv).iloc[:-37].to_csv(partial, index=False)
    code = main(
        ["search", "--algo", "rs", "--assist", "gradsign", "--scores", str(partial), "--runs", "1", "--no-progress"]
    )
    assert code == 2
    assert "37 networks missing" in capsys.readouterr().err


def test_on_the_fly_gradsign_matches_the_api(tmp_path):
    import gradsign_rs
    from gradsign_rs.search import OnTheFlyGradSign

    images = DATA / "images" / "cifar10_train4000.npz"
    scorer = OnTheFlyGradSign(n=8, images=images)
    value, seconds = scorer(1234)
    x, y = gradsign_rs.load_images(images, n=8)
    want = gradsign_rs.score(nb201.build_onnx(nb201.Arch.from_index(1234), num_classes=10, seed=42), x, y).value
    assert value == want and seconds > 0
    assert scorer(1234) == (value, seconds)  # cached: measured once per process


def run_cli(*args: str) -> int:
    return main(["search", "--no-progress", *args])


def test_cli_end_to_end(tmp_path, scores_csv, capsys):
    out, report = tmp_path / "runs.csv", tmp_path / "report"
    code = run_cli(
        "--algo",
        "rs,bohb",
        "--assist",
        "gradsign",
        "--scores",
        scores_csv,
        "--runs",
        "2",
        "--budget",
        "1500",
        "--out",
        str(out),
        "--report",
        str(report),
        "--json",
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    groups = {(g["algo"], g["assist"]): g for g in payload["groups"]}
    assert set(groups) == {("rs", "none"), ("rs", "gradsign"), ("bohb", "none"), ("bohb", "gradsign")}
    assert all(g["runs"] == 2 and g["found"] == 2 for g in groups.values())
    assert {(p["algo"], p["pairs"]) for p in payload["paired_gains"]} == {("rs", 2), ("bohb", 2)}
    runs = pd.read_csv(out, dtype={"candidates": str})
    assert len(runs) == 8 and (runs["seconds_used"] <= 1500).all()
    assisted = runs[runs["assist"] == "gradsign"]
    assert (assisted["candidates"] == "10").all() and (assisted["proxy_time"] == "charged").all()
    assert assisted["scores"].str.startswith("sha256:").all() and (assisted["proxy_seconds"] > 0).all()
    assert {p.name for p in report.iterdir()} == {"summary.md", "summary.json", "anytime.png"}
    assert "| rs | gradsign | 2 |" in (report / "summary.md").read_text()
    # The table printed without --json names every variant.
    assert run_cli("--algo", "rs", "--runs", "2", "--budget", "1500", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "rs         none" in printed and "2 runs (0 new)" in printed


def test_resume_after_a_partial_runs_file_gives_each_run_once(tmp_path, capsys):
    out, fresh = tmp_path / "runs.csv", tmp_path / "fresh.csv"
    common = ["--algo", "rea,reinforce", "--budget", "2000"]
    assert run_cli(*common, "--runs", "3", "--out", str(out)) == 0
    content = out.read_bytes()
    out.write_bytes(content[: len(content) - 9])  # the last row loses its end, as if killed mid-write
    assert run_cli(*common, "--runs", "5", "--out", str(out)) == 0
    assert run_cli(*common, "--runs", "5", "--out", str(fresh), "--workers", "2") == 0
    resumed, reference = pd.read_csv(out), pd.read_csv(fresh)
    keys = ["algo", "assist", "seed"]
    assert not resumed.duplicated(keys).any() and len(resumed) == 10
    pd.testing.assert_frame_equal(
        resumed.sort_values(keys).reset_index(drop=True), reference.sort_values(keys).reset_index(drop=True)
    )
    capsys.readouterr()
    assert run_cli(*common[:2], "--budget", "1000", "--runs", "2", "--out", str(out)) == 2
    assert "was made with other settings (budget: file has '2000', this run '1000')" in capsys.readouterr().err


def test_search_context_runs_vanilla_and_assisted_specs(scores_csv):
    context = SearchContext(SearchSettings(budget=3000.0, candidates=3, scores=scores_csv), ["gradsign"])
    vanilla, assisted = context.run(RunSpec("rs", "none", 5)), context.run(RunSpec("rs", "gradsign", 5))
    assert vanilla.proxy_scored == 0 and vanilla.proxy_seconds == 0.0
    assert assisted.proxy_scored >= 3 * assisted.evaluations - 3 and assisted.proxy_seconds > 0
    assert vanilla.seconds_used <= 3000 and assisted.seconds_used <= 3000
    assert vanilla.finals["c10_test_200ep"] == NB201Table.load().finals.at[vanilla.best_index, "c10_test_200ep"]


def test_scores_missing_from_the_table_come_from_the_fallback(tmp_path, scores_csv):
    from gradsign_rs.search.runner import scores_id

    partial = tmp_path / "partial.csv"
    full = pd.read_csv(scores_csv)
    full[full["index"] != 99].to_csv(partial, index=False)
    asked = []
    scores = ProxyScores("gradsign", ProxyTable(partial), on_the_fly=lambda i: asked.append(i) or (5.0, 0.25))
    assert scores.lookup(99) == (5.0, 0.25) and asked == [99]
    assert scores.lookup(98) == tuple(full.set_index("index").loc[98, ["score", "seconds"]])
    on_the_fly = SearchSettings(scores=str(partial), allow_on_the_fly=True)
    assert scores_id(on_the_fly, ["gradsign"]).endswith("+on-the-fly")
    assert not scores_id(SearchSettings(scores=scores_csv, allow_on_the_fly=True), ["gradsign"]).endswith("on-the-fly")


def test_skip_evaluated_picks_the_best_new_candidate_and_scores_only_new_ones(table, scores, scores_csv):
    values = pd.read_csv(scores_csv).set_index("index")
    ranked = values["score"].sort_values(ascending=False).index.to_numpy()
    best, second, third = (nb201.Arch.from_index(int(i)) for i in ranked[:3])
    sim = Simulator(table, budget=1e6)
    sim.evaluate(best)
    plain, skipping = Assistant(scores, 3), Assistant(scores, 3, skip_evaluated=True)
    assert plain.pick(sim, [third, best, second]) == 1  # the paper's rule re-proposes the evaluated best
    charged = sim.proxy_seconds
    assert skipping.pick(sim, [third, best, second]) == 2  # the best of the new ones, at its position in the list
    assert skipping.scored == 2  # the evaluated network is neither scored nor charged
    assert sim.proxy_seconds - charged == pytest.approx(values.loc[[third.index, second.index], "seconds"].sum())
    sim.evaluate(second)
    sim.evaluate(third)
    assert skipping.pick(sim, [third, best, second]) == 1  # nothing new: all compete as usual


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_skip_evaluated_runs_repeat_a_network_only_when_every_candidate_was_seen(table, scores, algo):
    assistant = RecordingAssistant(scores, 6, skip_evaluated=True)
    sim = Simulator(table, budget=6000.0)
    with pytest.raises(BudgetExhausted):
        ALGORITHMS[algo](sim, np.random.default_rng(5), assistant)
    seen: set[int] = set()
    picks = iter(assistant.picks)
    start = 10 if algo == "rea" else 0
    seen.update(e.index for e in sim.history[:start])
    for evaluation in sim.history[start:]:
        candidates, chosen = next(picks)
        assert candidates[chosen] == evaluation.index
        if evaluation.index in seen:
            assert all(i in seen for i in candidates)
        seen.add(evaluation.index)


def test_the_runs_file_records_skip_evaluated_and_refuses_to_mix(tmp_path, scores_csv, capsys):
    out = tmp_path / "runs.csv"
    common = ["--algo", "rea", "--assist", "gradsign", "--scores", scores_csv, "--runs", "2", "--budget", "1500"]
    assert run_cli(*common, "--skip-evaluated", "--out", str(out)) == 0
    runs = pd.read_csv(out, keep_default_na=False)
    assert (runs.loc[runs["assist"] == "gradsign", "skip_evaluated"] == "yes").all()
    assert (runs.loc[runs["assist"] == "none", "skip_evaluated"] == "").all()
    capsys.readouterr()
    assert run_cli(*common, "--out", str(out)) == 2
    assert "skip_evaluated: file has 'yes', this run 'no'" in capsys.readouterr().err
