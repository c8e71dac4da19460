"""Rank statistics (gradsign_rs.stats) against scipy, a numpy reference for top-k, and the `correlate` command."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from gradsign_rs import GradSignError, stats
from gradsign_rs.cli import main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TOLERANCE = 1e-12
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The comparisons with scipy explore the most: lengths up to 5000, every kind and dtype.
AGAINST_SCIPY = settings(PROPERTY, max_examples=400)

# Value shapes: heavy ties (few levels), integer-valued (narrow float bits), fractions (wide float bits, few
# values: the hashed path), continuous (wide bits, many values), constant.
KINDS = ("few_levels", "integers", "fractions", "continuous", "constant")
DTYPES = ("float64", "float32", "int64", "int32", "int16", "uint8")


def _column(rng: np.random.Generator, base: np.ndarray, kind: str, dtype: str) -> np.ndarray:
    if kind == "few_levels":
        values = np.round(base * rng.integers(1, 4))
    elif kind == "integers":
        values = np.round(base * 1000)
    elif kind == "fractions":
        values = np.round(base * 20) / 7.3
    elif kind == "constant":
        values = np.full(base.shape, 3.0)
    else:
        values = base
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return np.clip(np.round(values * (10 if kind == "continuous" else 1)), info.min, info.max).astype(dtype)
    return values.astype(dtype)


@st.composite
def paired_samples(draw, max_n: int = 5000, nan: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated arrays of one length (0..max_n) with random kinds and dtypes, NaN in float ones."""
    n = draw(st.integers(0, max_n) if draw(st.booleans()) else st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rho = draw(st.floats(-1, 1))
    base = rng.standard_normal(n)
    other = rho * base + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    x = _column(rng, base, draw(st.sampled_from(KINDS)), draw(st.sampled_from(DTYPES)))
    y = _column(rng, other, draw(st.sampled_from(KINDS)), draw(st.sampled_from(DTYPES)))
    if nan:
        for values in (x, y):
            if values.dtype.kind == "f" and n:
                values[rng.random(n) < draw(st.sampled_from([0.0, 0.01, 0.3, 1.0]))] = np.nan
    return x, y


def scipy_statistic(function, x, y, **kwargs) -> float:
    """scipy's statistic, its warnings (constant input, small sample) silenced: the tests compare values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(x, y, **kwargs).statistic)


def complete_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    keep = ~(np.isnan(np.asarray(x, np.float64)) | np.isnan(np.asarray(y, np.float64)))
    return np.asarray(x)[keep], np.asarray(y)[keep]


def assert_same(got: float, want: float) -> None:
    assert isinstance(got, float)
    assert (np.isnan(got) and np.isnan(want)) or abs(got - want) <= TOLERANCE, (got, want)


# --- Spearman and Kendall against scipy ----------------------------------------------------------------------


@AGAINST_SCIPY
@given(paired_samples())
def test_spearman_matches_scipy_on_the_pairs_without_nan(sample):
    # nan_policy="omit" is "drop the pairs with a NaN, then compute": scipy.stats.spearmanr's own omit path
    # (scipy.stats.mstats) differs from that in degenerate cases (see test_scipy_spearman_omit_quirks).
    x, y = sample
    assert_same(stats.spearman(x, y), scipy_statistic(scipy.stats.spearmanr, *complete_pairs(x, y)))


@AGAINST_SCIPY
@given(paired_samples(), st.sampled_from(["b", "c"]))
def test_kendall_tau_matches_scipy_omit(sample, variant):
    x, y = sample
    want = scipy_statistic(scipy.stats.kendalltau, x, y, variant=variant, nan_policy="omit")
    assert_same(stats.kendall_tau(x, y, variant=variant), want)


@PROPERTY
@given(paired_samples(max_n=300))
def test_propagate_gives_nan_exactly_when_scipy_does(sample):
    x, y = sample
    assert_same(stats.spearman(x, y, nan_policy="propagate"), scipy_statistic(scipy.stats.spearmanr, x, y))
    assert_same(stats.kendall_tau(x, y, nan_policy="propagate"), scipy_statistic(scipy.stats.kendalltau, x, y))


@PROPERTY
@given(paired_samples(max_n=300))
def test_raise_names_the_first_nan_or_computes(sample):
    x, y = sample
    nan = np.isnan(x.astype(np.float64)) | np.isnan(y.astype(np.float64))
    for function in (stats.spearman, stats.kendall_tau):
        if not nan.any():
            assert_same(function(x, y, nan_policy="raise"), function(x, y))
            continue
        position = int(nan.argmax())
        name = "x" if np.isnan(float(x[position])) else "y"
        with pytest.raises(GradSignError, match=rf"^{name} is NaN at position {position} "):
            function(x, y, nan_policy="raise")


@pytest.mark.parametrize(
    "x, y",
    [
        ([], []),
        ([1.0], [2.0]),
        ([1.0, 2.0], [2.0, 1.0]),
        ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]),
        ([5.0, 5.0, 5.0, 5.0], [1.0, 2.0, 3.0, 4.0]),
        ([1.0, 1.0, 2.0, 2.0], [1.0, 2.0, 1.0, 2.0]),
        ([0.0, -0.0, 1.0], [1.0, 2.0, 3.0]),
        ([np.inf, 2.0, 3.0, 3.0], [1.0, 2.0, 1.0, -np.inf]),
    ],
)
def test_degenerate_inputs_give_what_scipy_gives(x, y):
    # scipy: nan for a constant input and for n < 2, a value from n = 2 on; infinities are ordinary values.
    x, y = np.array(x), np.array(y)
    assert_same(stats.spearman(x, y), scipy_statistic(scipy.stats.spearmanr, x, y))
    for variant in ("b", "c"):
        assert_same(
            stats.kendall_tau(x, y, variant=variant), scipy_statistic(scipy.stats.kendalltau, x, y, variant=variant)
        )


@pytest.mark.parametrize(
    "x, y",
    [
        ([1.0, np.nan, np.nan], [1.0, 2.0, 3.0]),  # one pair left
        ([np.nan, np.nan], [1.0, 2.0]),  # none left
        ([1.0, 1.0, np.nan], [1.0, 2.0, 3.0]),  # constant once the NaN pair is dropped
    ],
)
def test_omit_leaving_too_few_or_constant_pairs_is_nan(x, y):
    assert np.isnan(stats.spearman(x, y)) and np.isnan(stats.kendall_tau(x, y))
    assert np.isnan(scipy_statistic(scipy.stats.kendalltau, x, y, nan_policy="omit"))


def test_scipy_spearman_omit_quirks():
    # Why spearman's omit is compared against scipy on the complete pairs: scipy 1.17's own omit path
    # (mstats.spearmanr) returns 0.0 for an input that is constant after dropping NaN, and raises when
    # fewer than two pairs remain. gradsign_rs gives NaN in both, as scipy does without NaN.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert scipy.stats.spearmanr([1, 1, np.nan], [1, 2, 3], nan_policy="omit").statistic == 0.0
        with pytest.raises(ValueError):
            scipy.stats.spearmanr([1, np.nan, np.nan], [1, 2, 3], nan_policy="omit")
    assert np.isnan(stats.spearman([1, 1, np.nan], [1, 2, 3]))
    assert np.isnan(stats.spearman([1, np.nan, np.nan], [1, 2, 3]))


def test_lists_and_any_real_dtype_equal_float64():
    x, y = [3, 0, 2, 2, 5], [10, 30, 20, 20, 0]
    want = stats.kendall_tau(np.array(x, np.float64), np.array(y, np.float64))
    for dtype in (np.int8, np.uint16, np.int64, np.float32, bool):
        typed = np.array(x, dtype)
        assert stats.kendall_tau(typed, np.array(y)) == stats.kendall_tau(
            typed.astype(np.float64), np.array(y, np.float64)
        )
    assert stats.kendall_tau(x, y) == want
    assert stats.spearman(x, y) == stats.spearman(np.array(x, np.float64), np.array(y, np.float64))
    # Non-contiguous views are read correctly.
    wide = np.array([x, y], np.float64).T
    assert stats.spearman(wide[:, 0], wide[:, 1]) == stats.spearman(x, y)


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(GradSignError, match="'skip'"):
        stats.spearman([1, 2], [1, 2], nan_policy="skip")
    with pytest.raises(GradSignError, match="'d'"):
        stats.kendall_tau([1, 2], [1, 2], variant="d")
    with pytest.raises(GradSignError, match="x has 3 values but y has 2"):
        stats.kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(GradSignError, match="scores has 3 values but truth has 4"):
        stats.precision_at_k([1, 2, 3], [1, 2, 3, 4], 1)
    with pytest.raises(GradSignError, match="dtype"):
        stats.spearman(["a", "b"], [1, 2])
    with pytest.raises(GradSignError, match="1-D"):
        stats.spearman(np.zeros((2, 2)), np.zeros((2, 2)))
    assert issubclass(GradSignError, ValueError)


# --- precision@k and top-k regret against numpy ---------------------------------------------------------------


def top_k_reference(values: np.ndarray, k: int) -> set[int]:
    """Positions of the k largest, ties to the earlier position (a stable descending sort)."""
    return set(np.argsort(-values.astype(np.float64), kind="stable")[:k].tolist())


@PROPERTY
@given(paired_samples(max_n=400, nan=False), st.data())
def test_precision_and_regret_match_a_numpy_reference(sample, data):
    x, y = (v.astype(np.float64) for v in sample)
    if len(x) == 0:
        return
    k = data.draw(st.integers(1, len(x)))
    assert stats.precision_at_k(x, y, k) == len(top_k_reference(x, k) & top_k_reference(y, k)) / k
    assert stats.top_k_regret(x, y, k) == y.max() - y[sorted(top_k_reference(x, k))].max()


def test_precision_and_regret_by_hand_and_their_errors():
    scores = [0.9, 0.8, 0.1, 0.5, 0.7, np.nan]
    truth = [50.0, 10.0, 90.0, 60.0, 20.0, 99.0]
    assert stats.precision_at_k(scores, truth, 4) == 0.75  # NaN pair omitted: {0,1,4,3} vs {2,3,0,4}
    assert stats.top_k_regret(scores, truth, 2) == 40.0
    assert np.isnan(stats.precision_at_k(scores, truth, 2, nan_policy="propagate"))
    with pytest.raises(GradSignError, match="k = 6 is outside 1..=5"):
        stats.precision_at_k(scores, truth, 6)
    with pytest.raises(GradSignError, match="k must be an integer >= 1"):
        stats.top_k_regret(scores, truth, 0)


# --- correlate -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table():
    """Four score columns against one target: correlated, anti-correlated, tied, and one with NaN."""
    rng = np.random.default_rng(7)
    n = 400
    truth = np.round(70 + 10 * rng.standard_normal(n), 1)
    noisy = truth + 8 * rng.standard_normal(n)
    columns = {
        "good": np.round(noisy * 100),
        "reversed": -noisy,
        "coarse": np.round(noisy / 10),
        "holes": np.where(rng.random(n) < 0.1, np.nan, noisy + 5 * rng.standard_normal(n)),
    }
    return columns, truth


def test_correlate_estimates_equal_the_single_calls(table):
    columns, truth = table
    result = stats.correlate(columns, truth, methods=("spearman", "kendall", "kendall_c"), bootstrap=20)
    assert list(result.index) == list(columns)
    assert list(result.columns) == [
        "n",
        "spearman",
        "spearman_low",
        "spearman_high",
        "kendall",
        "kendall_low",
        "kendall_high",
        "kendall_c",
        "kendall_c_low",
        "kendall_c_high",
    ]
    for name, x in columns.items():
        row = result.loc[name]
        assert row["n"] == np.sum(~np.isnan(x))
        assert row["spearman"] == stats.spearman(x, truth)
        assert row["kendall"] == stats.kendall_tau(x, truth)
        assert row["kendall_c"] == stats.kendall_tau(x, truth, variant="c")


def test_correlate_intervals_are_the_percentiles_of_the_resampled_statistics(table):
    columns, truth = table
    bootstrap, confidence = 50, 0.9
    result = stats.correlate(columns, truth, bootstrap=bootstrap, seed=11, confidence=confidence)
    rows = stats.bootstrap_rows(len(truth), bootstrap, 11)
    assert rows.shape == (bootstrap, len(truth)) and rows.min() >= 0 and rows.max() < len(truth)
    for name, x in columns.items():
        for method, function in (("spearman", scipy.stats.spearmanr), ("kendall", scipy.stats.kendalltau)):
            resampled = [scipy_statistic(function, *complete_pairs(x[r], truth[r])) for r in rows]
            low, high = np.nanpercentile(resampled, [50 * (1 - confidence), 50 * (1 + confidence)])
            assert abs(result.loc[name, f"{method}_low"] - low) <= TOLERANCE
            assert abs(result.loc[name, f"{method}_high"] - high) <= TOLERANCE


def test_correlate_is_deterministic_for_a_seed_and_any_thread_count(table):
    columns, truth = table
    one = stats.correlate(columns, truth, bootstrap=64, seed=3, num_threads=1)
    pd.testing.assert_frame_equal(one, stats.correlate(columns, truth, bootstrap=64, seed=3, num_threads=2))
    pd.testing.assert_frame_equal(one, stats.correlate(pd.DataFrame(columns), truth, bootstrap=64, seed=3))
    other = stats.correlate(columns, truth, bootstrap=64, seed=4, num_threads=2)
    assert not np.array_equal(one["spearman_low"], other["spearman_low"])


def test_correlate_intervals_hold_the_estimate_on_a_correlated_example(table):
    columns, truth = table
    result = stats.correlate(columns, truth, bootstrap=300)
    for method in ("spearman", "kendall"):
        assert (result[f"{method}_low"] <= result[method]).all() and (result[method] <= result[f"{method}_high"]).all()
        assert (result[f"{method}_high"] - result[f"{method}_low"] < 0.2).all()
    assert result.loc["good", "spearman_low"] > 0.5 and result.loc["reversed", "spearman_high"] < -0.5


def test_no_bootstrap_gives_nan_intervals(table):
    columns, truth = table
    result = stats.correlate(columns, truth, bootstrap=0)
    assert result[["spearman_low", "spearman_high", "kendall_low", "kendall_high"]].isna().all().all()
    assert result[["spearman", "kendall"]].notna().all().all()


def test_correlate_nan_policies(table):
    columns, truth = table
    propagate = stats.correlate(columns, truth, bootstrap=10, nan_policy="propagate")
    assert propagate.loc["holes"].drop("n").isna().all()
    omit = stats.correlate(columns, truth, bootstrap=10)
    pd.testing.assert_series_equal(propagate.loc["good"], omit.loc["good"])
    position = int(np.isnan(columns["holes"]).argmax())
    with pytest.raises(GradSignError, match=rf"score column 'holes' is NaN at position {position} "):
        stats.correlate(columns, truth, nan_policy="raise")


def test_correlate_refuses_bad_arguments(table):
    columns, truth = table
    with pytest.raises(GradSignError, match="pearson"):
        stats.correlate(columns, truth, methods=("pearson",))
    with pytest.raises(GradSignError, match="confidence 1.5"):
        stats.correlate(columns, truth, confidence=1.5)
    with pytest.raises(GradSignError, match="score column 'short' has 3 values but truth has 400"):
        stats.correlate({"short": [1, 2, 3]}, truth)
    with pytest.raises(GradSignError, match="num_threads"):
        stats.correlate(columns, truth, num_threads=0)


def test_report_evaluate_reads_the_intervals(table):
    from gradsign_rs.report import evaluate

    columns, truth = table
    frame = pd.DataFrame({"score": columns["good"], "acc": truth})
    evaluation = evaluate(frame, "acc", bootstrap=50, seed=1)
    assert evaluation.spearman == stats.spearman(columns["good"], truth)
    assert evaluation.spearman_ci[0] <= evaluation.spearman <= evaluation.spearman_ci[1]
    assert evaluation.kendall_ci[0] <= evaluation.kendall <= evaluation.kendall_ci[1]
    assert evaluation.precision_at_k[10] == stats.precision_at_k(columns["good"], truth, 10)


# --- gradsign correlate ----------------------------------------------------------------------------------------


@pytest.fixture
def csv_files(tmp_path, table):
    columns, truth = table
    n = len(truth)
    scores = pd.DataFrame(
        {
            "index": np.arange(n),
            "arch": [f"a{i}" for i in range(n)],
            **columns,
            "n_samples": 128,
            "n_weights": 1000,
            "seconds": 0.5,
        }
    )
    # The truth table covers all rows but in another order, and one extra network.
    truth_table = pd.DataFrame({"index": np.arange(n + 1), "acc": np.append(truth, 50.0), "other": 1.0}).iloc[::-1]
    scores.to_csv(tmp_path / "scores.csv", index=False)
    truth_table.to_csv(tmp_path / "truth.csv", index=False)
    return tmp_path / "scores.csv", tmp_path / "truth.csv"


def test_cli_json_matches_the_api(csv_files, table, capsys):
    columns, truth = table
    scores, truth_path = csv_files
    assert (
        main(
            [
                "correlate",
                str(scores),
                "--truth",
                str(truth_path),
                "--target",
                "acc",
                "--bootstrap",
                "40",
                "--seed",
                "5",
                "--json",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["rows"] == len(truth) and payload["target"] == "acc"
    assert list(payload["columns"]) == list(columns)  # the run metadata columns are not scores
    want = stats.correlate(columns, truth, bootstrap=40, seed=5)
    for name, x in columns.items():
        got = payload["columns"][name]
        assert got["n"] == want.loc[name, "n"]
        assert got["spearman"] == want.loc[name, "spearman"] and got["kendall_high"] == want.loc[name, "kendall_high"]
        assert got["precision@10"] == stats.precision_at_k(x, truth, 10)
        assert got["precision@100"] == stats.precision_at_k(x, truth, 100)


def test_cli_table_and_column_choice(csv_files, capsys):
    scores, truth_path = csv_files
    assert (
        main(
            [
                "correlate",
                str(scores),
                "--truth",
                str(truth_path),
                "--target",
                "acc",
                "--bootstrap",
                "0",
                "--columns",
                "good,coarse",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "400 rows" in lines[0]
    assert any(line.startswith("good ") for line in lines) and any(line.startswith("coarse ") for line in lines)
    assert "reversed" not in out and "precision@100" in out and "kendall_low" in out


def test_cli_errors_exit_2_with_a_message(csv_files, capsys):
    scores, truth_path = csv_files
    assert main(["correlate", str(scores), "--truth", str(truth_path), "--target", "missing"]) == 2
    assert "no column(s) ['missing']" in capsys.readouterr().err
    assert main(["correlate", str(scores), "--truth", str(truth_path), "--target", "acc", "--columns", "arch"]) == 2
    err = capsys.readouterr().err
    assert "'arch'" in err and ("not numeric" in err or "not a number" in err), err
