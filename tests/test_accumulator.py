"""The Rust SignAccumulator against a numpy reference: exact, on blocks with zeros, NaN, inf and -0."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from gradsign_rs import GradSignError, SignAccumulator
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def numpy_gradsign(rows: np.ndarray) -> tuple[int, np.ndarray]:
    """Σ_k |Σ_i sign(g_ik)| with sign(0) = sign(NaN) = 0, as the authors' nansum."""
    signs = np.nan_to_num(np.sign(rows.astype(np.float64)), nan=0.0)
    counts = signs.sum(axis=0).astype(np.int64)
    return int(np.abs(counts).sum()), counts


special = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45])
values = st.one_of(special, st.floats(-1e3, 1e3, width=32))


@settings(max_examples=150, deadline=None)
@given(
    rows=hnp.arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(0, 300)), elements=values),
    threads=st.sampled_from([1, 2, 3]),
)
def test_matches_numpy_row_by_row_and_as_a_block(rows, threads):
    want, counts = numpy_gradsign(rows)
    one = SignAccumulator(rows.shape[1], num_threads=threads)
    for row in rows:
        one.update(0, row)
    block = SignAccumulator(rows.shape[1], num_threads=threads)
    block.update(0, rows)
    assert one.score() == block.score() == want
    np.testing.assert_array_equal(one.counts(), counts)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_offsets_and_segments(data):
    n = data.draw(st.integers(1, 200))
    acc = SignAccumulator(n)
    full = np.zeros((5, n), np.float32)
    for i in range(5):
        start = data.draw(st.integers(0, n - 1))
        length = data.draw(st.integers(0, n - start))
        block = data.draw(hnp.arrays(np.float32, length, elements=values))
        acc.update(start, block)
        full[i, start : start + length] = block
    want, counts = numpy_gradsign(full)
    assert acc.score() == want
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5)))
    bounds = [0, *cuts, n]
    assert acc.segment_scores(bounds) == [int(np.abs(counts[a:b]).sum()) for a, b in itertools.pairwise(bounds)]


def test_large_block_parallel_equals_serial():
    # Large enough to take the parallel path; "huge P" in the sense of many chunks per thread.
    rng = np.random.default_rng(1)
    block = rng.standard_normal((3, 1_200_007)).astype(np.float32)
    block[:, ::7] = 0.0
    block[:, ::11] = np.nan
    serial, parallel = SignAccumulator(block.shape[1], num_threads=1), SignAccumulator(block.shape[1], num_threads=2)
    serial.update(0, block)
    parallel.update(0, block)
    want, _ = numpy_gradsign(block)
    assert serial.score() == parallel.score() == want


def test_non_contiguous_views_are_read_correctly():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((6, 40)).astype(np.float32)
    view = base[::2, ::3]
    acc = SignAccumulator(view.shape[1])
    acc.update(0, view)
    assert acc.score() == numpy_gradsign(view)[0]


def test_reset_and_all_zero_gradients():
    acc = SignAccumulator(10)
    acc.update(0, np.zeros((4, 10), np.float32))
    assert acc.score() == 0
    acc.update(0, np.ones(10, np.float32))
    assert acc.score() == 10
    acc.reset()
    assert acc.score() == 0 and acc.n_weights == 10


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda a: a.update(8, np.ones(3, np.float32)),
            "block of 3 weights at offset 8 runs past the accumulator's 10",
        ),
        (
            lambda a: a.update(0, np.ones((2, 2, 2), np.float32)),
            r"block must be 1-D \(len,\) or 2-D \(samples, len\), got shape \(2, 2, 2\)",
        ),
        (lambda a: a.segment_scores([0, 5, 3]), "5 > 3 is decreasing"),
        (lambda a: a.segment_scores([0, 11]), "bound 11 is past"),
    ],
)
def test_bad_updates(call, match):
    acc = SignAccumulator(10)
    with pytest.raises(GradSignError, match=match):
        call(acc)
    assert acc.score() == 0


def test_other_real_dtypes_count_exactly_and_the_rest_are_refused_by_name():
    # float64 is read as it is (a float32 cast would turn 1e-300 into 0); float16, integers and bool convert.
    block = np.array([[1e-300, -1e-320, 0.0, np.nan], [2.0, -3.0, -0.0, 5.0]])
    for dtype in (np.float64, np.float16, np.int32, np.uint8, np.int64, bool, ">f8", "<f4", ">f4"):
        values = block if np.dtype(dtype).kind == "f" else np.nan_to_num(block)
        acc = SignAccumulator(4)
        acc.update(0, values.astype(dtype))
        np.testing.assert_array_equal(acc.counts(), numpy_gradsign(values.astype(dtype))[1], err_msg=str(dtype))
    for dtype in (np.complex64, object, "U3", np.longdouble if np.dtype(np.longdouble).itemsize > 8 else "M8[s]"):
        with pytest.raises(GradSignError, match=r"block must hold real numbers .* dtype"):
            SignAccumulator(4).update(0, np.zeros((2, 4), dtype))


def test_zero_threads_refused():
    with pytest.raises(GradSignError, match="num_threads must be an integer in 1..=1024, got 0"):
        SignAccumulator(3, num_threads=0)
