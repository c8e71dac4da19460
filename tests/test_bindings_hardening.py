"""The Rust bindings (`gradsign_rs._core`) under hostile input, issue 15.

No input panics or aborts the process: bad input is a `GradSignError` naming the argument, a buffer the machine
cannot hold a `MemoryError` naming the argument and the bytes, anything else a correct result (checked against
numpy). Calls that aborted the process before (allocation failures, thread storms) and the hypothesis properties
run in a child process, so that an abort fails a test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from gradsign_rs import _core, stats
from gradsign_rs._core import GradSignError, SignAccumulator, bootstrap_rows, hamming_matrix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

HERE = Path(__file__).resolve().parent
HUGE = 2**40


def _child(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with this file importable as `hardening`."""
    prelude = f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_bindings_hardening as hardening\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=HERE.parent,
        check=False,
    )


def _survived(result: subprocess.CompletedProcess[str]) -> str:
    """The child's report of how it ended, for assertion messages."""
    how = f"killed by signal {-result.returncode}" if result.returncode < 0 else f"exit status {result.returncode}"
    return f"child {how}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"


# --- (a) every case of the issue: the error type and the argument it names ------------------------------------


def _hamming_rows() -> int:
    """2**17 rows (the issue's case: a 128 GiB matrix) where that is more than the machine has, else more rows."""
    total = (
        next(
            (
                int(line.split()[1]) * 1024
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")
            ),
            0,
        )
        if Path("/proc/meminfo").exists()
        else 0
    )
    return 2**17 if total < 2**37 else 2**24


ONE = np.ones(3, np.float32)
# Cases that aborted the process or spawned threads for minutes: run in one child, each a (call, error, words).
CHILD_CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "accumulator 2**40 weights": ("SignAccumulator(2**40)", "MemoryError", ("n_weights=1099511627776", "bytes")),
    "correlate bootstrap 2**40": (
        "stats.correlate({'a': np.arange(10.0)}, np.arange(10.0), bootstrap=2**40)",
        "MemoryError",
        ("bootstrap=1099511627776", "bytes"),
    ),
    "core correlate bootstrap 2**64-1": (
        (
            "_core.correlate([np.arange(10.0)], np.arange(10.0), methods=['kendall'], bootstrap=2**64 - 1, seed=0,"
            " confidence=0.9)"
        ),
        "MemoryError",
        ("bootstrap=18446744073709551615", "bytes"),
    ),
    "bootstrap_rows 10**6 x 10**6": (
        "bootstrap_rows(10**6, 10**6, 0)",
        "MemoryError",
        ("bootstrap=1000000", "n=1000000", "bytes"),
    ),
    "hamming_matrix 2**17 rows": (
        "hamming_matrix(np.broadcast_to(np.zeros((1, 4), np.uint8), (hardening._hamming_rows(), 4)))",
        "MemoryError",
        ("codes with", "rows", "bytes"),
    ),
    "spearman on 2**40 broadcast values": (
        "_core.spearman(np.broadcast_to(1.0, 2**40), np.broadcast_to(1.0, 2**40))",
        "MemoryError",
        ("x and y", "bytes"),
    ),
    "num_threads 100000": ("SignAccumulator(3, num_threads=100000)", "GradSignError", ("num_threads", "1..=1024")),
    "hamming num_threads 2**70": (
        "hamming_matrix(np.zeros((2, 2), np.uint8), num_threads=2**70)",
        "GradSignError",
        ("num_threads",),
    ),
    "correlate num_threads 1025": (
        (
            "_core.correlate([np.arange(5.0)], np.arange(5.0), methods=['spearman'], bootstrap=1, seed=0,"
            " confidence=0.9, num_threads=1025)"
        ),
        "GradSignError",
        ("num_threads",),
    ),
    # Not errors any more: a broadcast (65536, 65536) view is counted in O(65536), exactly.
    "broadcast 65536 x 65536 update": (
        (
            "(lambda a: (a.update(0, np.broadcast_to(np.arange(65536, dtype=np.float32) - 100, (65536, 65536))),"
            " a.score()))(SignAccumulator(65536))[1]"
        ),
        "ok",
        (str(65536 * 65535),),
    ),
    "broadcast 2**31 samples": (
        "SignAccumulator(3).update(0, np.broadcast_to(np.float32(1), (2**31, 3)))",
        "GradSignError",
        ("block", "samples"),
    ),
}


def run_in_child() -> None:
    """The child's work: every abort-prone case, then every property, each reported on a line of its own."""
    import traceback

    def report(**record: object) -> None:
        print("@@" + json.dumps(record), flush=True)

    namespace = {
        "np": np,
        "_core": _core,
        "stats": stats,
        "SignAccumulator": SignAccumulator,
        "bootstrap_rows": bootstrap_rows,
        "hamming_matrix": hamming_matrix,
        "hardening": sys.modules[__name__],
    }
    for name, (call, _, _) in CHILD_CASES.items():
        try:
            report(case=name, type="ok", message=str(eval(call, namespace)))
        except Exception as exc:  # noqa: BLE001 -- the parent checks the type
            report(case=name, type=type(exc).__name__, message=str(exc))
    for name in PROPERTIES:
        try:
            globals()[name]()
            report(property=name, error="")
        except Exception:  # noqa: BLE001 -- hypothesis' falsifying example is in the traceback
            report(property=name, error=traceback.format_exc()[-4000:])


@pytest.fixture(scope="module")
def child_report() -> tuple[dict[str, dict[str, str]], str]:
    """What the child reported per case and property, and how it ended when it did not exit normally."""
    result = _child("hardening.run_in_child()", timeout=300)
    records = {}
    for line in result.stdout.splitlines():
        if line.startswith("@@"):
            record = json.loads(line[2:])
            records[record.pop("case", None) or record.pop("property")] = record
    return records, _survived(result) if result.returncode else ""


@pytest.mark.parametrize("case", list(CHILD_CASES))
def test_abort_prone_case_survives_and_names_the_argument(case, child_report):
    records, failure = child_report
    assert case in records, f"the child died before or at {case!r}: {failure}"
    _, error, words = CHILD_CASES[case]
    got = records[case]
    assert got["type"] == error, got
    for word in words:
        assert word in got["message"], got


def test_cli_correlate_with_10_12_resamples_fails_without_aborting(tmp_path):
    (tmp_path / "scores.csv").write_text("index,proxy\n" + "".join(f"{i},{i % 7}\n" for i in range(30)))
    (tmp_path / "truth.csv").write_text("index,acc\n" + "".join(f"{i},{i}\n" for i in range(30)))
    result = _child(f"""
        from gradsign_rs.cli import main
        sys.exit(main(["correlate", {str(tmp_path / "scores.csv")!r}, "--truth", {str(tmp_path / "truth.csv")!r},
                       "--target", "acc", "--bootstrap", str(10**12)]))
    """)
    assert result.returncode == 1, _survived(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradsign: out of memory:"), _survived(result)  # no traceback
    assert "bootstrap=1000000000000" in result.stderr, _survived(result)


BAD = [0.5, "3", None, [1], b"x", True, np.float64(2.0)]


def _acc_update(offset, block):
    return SignAccumulator(10).update(offset, block)


GRADSIGN_CASES = [
    # (id, call, words the message must contain)
    ("n_weights -1", lambda: SignAccumulator(-1), ("n_weights", ">= 0", "-1")),
    ("n_weights 2**70", lambda: SignAccumulator(2**70), ("n_weights", "too large")),
    ("n_weights float", lambda: SignAccumulator(3.0), ("n_weights", "float")),
    ("n_weights bool", lambda: SignAccumulator(True), ("n_weights", "bool")),
    ("n_weights str", lambda: SignAccumulator("3"), ("n_weights", "str")),
    ("num_threads 0", lambda: SignAccumulator(3, num_threads=0), ("num_threads", "1..=1024", "0")),
    ("num_threads -1", lambda: SignAccumulator(3, num_threads=-1), ("num_threads", "-1")),
    ("num_threads 1025", lambda: SignAccumulator(3, num_threads=1025), ("num_threads", "1025")),
    ("num_threads float", lambda: SignAccumulator(3, num_threads=2.0), ("num_threads", "float")),
    ("offset -1", lambda: _acc_update(-1, ONE), ("offset", ">= 0", "-1")),
    ("offset 2**64", lambda: _acc_update(2**64, ONE), ("offset", "too large")),
    ("offset past the end", lambda: _acc_update(8, ONE), ("offset 8", "runs past")),
    ("offset 2**63", lambda: _acc_update(2**63, ONE), ("offset 9223372036854775808", "runs past")),
    ("offset str", lambda: _acc_update("0", ONE), ("offset", "str")),
    ("block list", lambda: _acc_update(0, [1.0, 2.0]), ("block", "numpy array", "list")),
    ("block 3-D", lambda: _acc_update(0, np.ones((2, 2, 2), np.float32)), ("block", "shape (2, 2, 2)")),
    ("block 0-D", lambda: _acc_update(0, np.ones((), np.float32)), ("block", "shape ()")),
    ("block object", lambda: _acc_update(0, np.ones(3, object)), ("block", "dtype object")),
    ("block complex", lambda: _acc_update(0, np.ones(3, np.complex64)), ("block", "dtype complex64")),
    ("block str", lambda: _acc_update(0, np.array(["a", "b"])), ("block", "dtype <U1")),
    ("bounds -1", lambda: SignAccumulator(3).segment_scores([0, -1]), ("bounds[1]", "-1")),
    ("bounds str", lambda: SignAccumulator(3).segment_scores("012"), ("bounds", "list", "str")),
    ("bounds float item", lambda: SignAccumulator(3).segment_scores([0, 1.5]), ("bounds[1]", "float")),
    ("bounds decreasing", lambda: SignAccumulator(3).segment_scores([2, 1]), ("segment boundaries", "2 > 1")),
    ("codes float64", lambda: hamming_matrix(np.zeros((3, 4))), ("codes", "dtype float64")),
    ("codes int8", lambda: hamming_matrix(np.zeros((3, 4), np.int8)), ("codes", "dtype int8")),
    ("codes 1-D", lambda: hamming_matrix(np.zeros(4, np.uint8)), ("codes", "shape (4,)")),
    ("codes list", lambda: hamming_matrix([[1, 2]]), ("codes", "numpy array", "list")),
    ("codes num_threads 0", lambda: hamming_matrix(np.zeros((2, 2), np.uint8), num_threads=0), ("num_threads",)),
    ("bootstrap_rows n -1", lambda: bootstrap_rows(-1, 2, 0), ("n must", "-1")),
    ("bootstrap_rows n 2**31", lambda: bootstrap_rows(2**31, 1, 0), ("n must", "2147483648")),
    ("bootstrap_rows bootstrap 2**61", lambda: bootstrap_rows(0, 2**61, 0), ("bootstrap must", str(2**61))),
    ("bootstrap_rows bootstrap -1", lambda: bootstrap_rows(3, -1, 0), ("bootstrap", "-1")),
    ("bootstrap_rows seed -1", lambda: bootstrap_rows(3, 2, -1), ("seed", "-1")),
    ("bootstrap_rows seed 2**64", lambda: bootstrap_rows(3, 2, 2**64), ("seed", "too large")),
    ("bootstrap_rows n float", lambda: bootstrap_rows(3.0, 2, 0), ("n must", "float")),
    ("spearman x int64", lambda: _core.spearman(np.arange(3), np.ones(3)), ("x must", "dtype int64")),
    ("spearman y object", lambda: _core.spearman(np.ones(3), np.ones(3, object)), ("y must", "dtype object")),
    ("spearman x 2-D", lambda: _core.spearman(np.ones((3, 1)), np.ones(3)), ("x must", "shape (3, 1)")),
    ("spearman x list", lambda: _core.spearman([1.0, 2.0], np.ones(2)), ("x must", "numpy array")),
    ("spearman lengths", lambda: _core.spearman(np.ones(3), np.ones(2)), ("x has 3", "y has 2")),
    ("spearman nan_policy int", lambda: _core.spearman(np.ones(3), np.ones(3), nan_policy=1), ("nan_policy",)),
    (
        "spearman nan_policy unknown",
        lambda: _core.spearman(np.ones(3), np.ones(3), nan_policy="skip"),
        ("nan_policy", "skip"),
    ),
    ("kendall variant", lambda: _core.kendall_tau(np.ones(3), np.ones(3), variant="a"), ("variant", "'a'")),
    ("kendall variant int", lambda: _core.kendall_tau(np.ones(3), np.ones(3), variant=2), ("variant",)),
    ("precision k -1", lambda: _core.precision_at_k(np.ones(3), np.ones(3), -1), ("k must", "-1")),
    ("precision k 0", lambda: _core.precision_at_k(np.ones(3), np.ones(3), 0), ("k must", "0")),
    ("precision k 4", lambda: _core.precision_at_k(np.ones(3), np.ones(3), 4), ("k = 4", "1..=3")),
    ("regret k 2**70", lambda: _core.top_k_regret(np.ones(3), np.ones(3), 2**70), ("k =", "too large")),
    (
        "regret scores float16 2-D",
        lambda: _core.top_k_regret(np.ones((1, 3), np.float16), np.ones(3), 1),
        ("scores must", "float16"),
    ),
]


def _correlate(**overrides):
    kwargs = {"methods": ["spearman"], "bootstrap": 3, "seed": 0, "confidence": 0.9, **overrides}
    columns = kwargs.pop("columns", [np.arange(5.0)])
    truth = kwargs.pop("truth", np.arange(5.0))
    return _core.correlate(columns, truth, **kwargs)


GRADSIGN_CASES += [
    ("correlate columns str", lambda: _correlate(columns="abc"), ("columns must be a list",)),
    ("correlate columns[1] int64", lambda: _correlate(columns=[np.ones(5), np.arange(5)]), ("columns[1]", "int64")),
    ("correlate truth list", lambda: _correlate(truth=[1.0] * 5), ("truth must", "numpy array")),
    ("correlate lengths", lambda: _correlate(truth=np.arange(4.0)), ("columns[0] has 5", "truth has 4")),
    ("correlate methods str", lambda: _correlate(methods="spearman"), ("methods must be a list",)),
    ("correlate methods[0] int", lambda: _correlate(methods=[1]), ("methods[0]", "string")),
    ("correlate method unknown", lambda: _correlate(methods=["pearson"]), ("method 'pearson'",)),
    ("correlate bootstrap -1", lambda: _correlate(bootstrap=-1), ("bootstrap", "-1")),
    ("correlate bootstrap float", lambda: _correlate(bootstrap=1e3), ("bootstrap", "float")),
    ("correlate seed -1", lambda: _correlate(seed=-1), ("seed", "-1")),
    ("correlate confidence 1", lambda: _correlate(confidence=1.0), ("confidence 1",)),
    ("correlate confidence str", lambda: _correlate(confidence="0.9"), ("confidence", "real number")),
    ("correlate num_threads 0", lambda: _correlate(num_threads=0), ("num_threads",)),
]


@pytest.mark.parametrize("call, words", [c[1:] for c in GRADSIGN_CASES], ids=[c[0] for c in GRADSIGN_CASES])
def test_bad_argument_is_a_gradsign_error_naming_it(call, words):
    with pytest.raises(GradSignError) as info:
        call()
    for word in words:
        assert word in str(info.value), str(info.value)


# --- layouts and dtypes: counted correctly or refused by name --------------------------------------------------


def _signs(values: np.ndarray) -> np.ndarray:
    """sign as int64 with sign(NaN) = 0, for any real dtype."""
    return np.nan_to_num(np.sign(np.asarray(values, dtype=np.float64)), nan=0.0).astype(np.int64)


def test_fortran_order_and_every_view_count_like_the_c_ordered_copy():
    rng = np.random.default_rng(5)
    block = rng.standard_normal((7, 300)).astype(np.float32)
    block[rng.random(block.shape) < 0.2] = 0.0
    want = _signs(block).sum(axis=0)
    views = [
        np.asfortranarray(block),
        block[::-1],
        block[:, ::-1],
        block.T.copy().T,
        np.asfortranarray(block)[::2],
        np.asfortranarray(block.astype(np.float64)),
        block.astype(np.float16)[:, ::3],
    ]
    for view in views:
        acc = SignAccumulator(view.shape[1], num_threads=2)
        acc.update(0, view)
        np.testing.assert_array_equal(acc.counts(), _signs(view).sum(axis=0))
    acc = SignAccumulator(300)
    acc.update(0, np.asfortranarray(block))
    np.testing.assert_array_equal(acc.counts(), want)
    # Large enough for the parallel column walk and for several bounded row-major copies.
    large = rng.standard_normal((5, 400_003)).astype(np.float32)
    large[:, ::5] = 0.0
    for view in (np.asfortranarray(large), large[:, ::-1], np.asfortranarray(large)[::-1]):
        acc = SignAccumulator(view.shape[1], num_threads=2)
        acc.update(0, view)
        np.testing.assert_array_equal(acc.counts(), _signs(view).sum(axis=0))
    codes = rng.integers(0, 256, (9, 13), dtype=np.uint8)
    want_codes = hamming_matrix(codes)
    for view in (np.asfortranarray(codes), codes[::-1][::-1], np.asfortranarray(codes)[:, :]):
        np.testing.assert_array_equal(hamming_matrix(view), want_codes)
    strided = codes[::2, 1::3]
    np.testing.assert_array_equal(hamming_matrix(strided), hamming_matrix(np.ascontiguousarray(strided)))


# --- (b) properties: any input either gives numpy's answer or GradSignError/MemoryError naming the argument ----

SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-300, -1e-300, 1.0, -1.0, 3.5, -70000.0]
REAL_DTYPES = ["float32", "float64", "float16", ">f4", ">f8", "int32", "int8", "uint64", "bool"]
OTHER_DTYPES = ["object", "complex64", "U3"]
LAYOUTS = ["C", "F", "strided", "reversed", "unaligned", "broadcast_rows", "broadcast_cols", "broadcast_all"]
SIZES = st.one_of(st.integers(0, 7), st.just(HUGE))


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    kind = np.dtype(dtype).kind
    if kind in "biu":
        values = np.clip(np.nan_to_num(values, posinf=100.0, neginf=-100.0), -100, 100)
        values = np.abs(values) if kind == "u" else values
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return values.astype(dtype)


def _lay_out(base: np.ndarray, layout: str) -> np.ndarray:
    """`base` (its logical values kept) in `layout`; broadcast layouts are applied by the caller."""
    index = (slice(None, None, -1),) * base.ndim
    if base.ndim == 0:
        return np.array(base)
    if layout == "F":
        return np.asfortranarray(base)
    if layout == "strided":
        big = np.zeros(tuple(2 * d + 1 for d in base.shape), base.dtype)
        view = big[(slice(1, None, 2),) * base.ndim]
        view[...] = base
        return view
    if layout == "reversed":
        return np.ascontiguousarray(base[index])[index]
    if layout == "unaligned" and base.dtype.itemsize > 1 and base.dtype.kind != "O":
        raw = bytearray(base.nbytes + 1)
        view = np.frombuffer(raw, dtype=base.dtype, count=base.size, offset=1).reshape(base.shape)
        view[...] = base
        return view
    return np.ascontiguousarray(base)


@st.composite
def arrays(draw, max_ndim: int = 2, dtypes: list[str] | None = None, sizes: st.SearchStrategy[int] = SIZES):
    """(array, base, shape): `array` is `base` broadcast to `shape` (or `base` itself) in a random layout; only
    broadcast axes take the huge sizes."""
    dtypes = dtypes or REAL_DTYPES * 3 + OTHER_DTYPES
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.sampled_from([1, 1, 2, 2, 2, 2, 2, 0, 3] if max_ndim >= 2 else [1, 1, 1, 1, 1, 0, 2]))
    layout = draw(st.sampled_from(LAYOUTS))
    shape = tuple(draw(sizes) for _ in range(ndim))
    broadcast_axes = set()
    if layout.startswith("broadcast") and ndim >= 1:
        wanted = {"broadcast_rows": [0], "broadcast_cols": [ndim - 1], "broadcast_all": range(ndim)}[layout]
        broadcast_axes = set(wanted)
    base_shape = tuple(1 if (axis in broadcast_axes or d > 64) else d for axis, d in enumerate(shape))
    shape = tuple(d if (axis in broadcast_axes or d <= 64) else base_shape[axis] for axis, d in enumerate(shape))
    if np.prod([max(d, 1) for d in shape], dtype=object) >= 2**56:  # more than numpy can index: one huge axis
        shape = tuple(d if d < 2**31 or axis == shape.index(max(shape)) else 1 for axis, d in enumerate(shape))
    values = draw(hnp.arrays(np.float64, base_shape, elements=st.sampled_from(SPECIALS) | st.floats(-1e5, 1e5)))
    base = _lay_out(_cast(values, dtype), layout)
    array = np.broadcast_to(base, shape) if broadcast_axes else base
    return array, base, shape


def _names(error: Exception, *names: str) -> bool:
    return any(name in str(error) for name in names)


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Mostly valid, so that most examples check a result against numpy.
COUNTS = st.integers(0, 12) | st.integers(0, 12) | st.integers(0, 12) | st.sampled_from([-1, 2**63, 2**64, 2**70, HUGE])


@PROPERTY
@given(
    data=arrays(sizes=st.one_of(st.integers(0, 7), st.sampled_from([2**31, HUGE]))),
    draw=st.data(),
    threads=st.sampled_from([None, 1, 2]),
)
def property_sign_accumulator(data, draw, threads):
    array, base, shape = data
    # Mostly a block that fits (so that most examples check counts against numpy), else any count.
    cols = shape[-1] if array.ndim in (1, 2) and shape[-1] <= 64 else 0  # huge blocks never fit
    n_weights = draw.draw(st.integers(cols, cols + 5) | COUNTS, label="n_weights")
    fitting = st.integers(0, n_weights - cols) if 0 <= n_weights - cols < 2**40 else COUNTS
    offset = draw.draw(fitting | fitting | COUNTS, label="offset")
    try:
        acc = SignAccumulator(n_weights, num_threads=threads)
    except GradSignError as exc:
        assert (n_weights < 0 or n_weights >= 2**64) and _names(exc, "n_weights"), exc
        return
    except MemoryError as exc:
        assert n_weights >= HUGE and _names(exc, f"n_weights={n_weights}"), exc
        return
    assert n_weights < HUGE
    real = array.dtype.kind in "biuf" and array.dtype.itemsize <= 8 and array.ndim in (1, 2)
    rows, cols = (1, shape[0]) if array.ndim == 1 else shape[:2] if array.ndim == 2 else (0, 0)
    fits = 0 <= offset and offset + cols <= n_weights
    try:
        acc.update(offset, array)
    except GradSignError as exc:
        bad_offset = offset < 0 or offset >= 2**64 or (real and not fits)
        assert (
            (bad_offset and _names(exc, "offset"))
            or (not real and _names(exc, "block"))
            or (real and fits and rows >= 2**31 and _names(exc, "samples"))
        ), exc
        assert acc.score() == 0, "a refused update must not touch the counters"
        return
    assert real and fits and rows < 2**31, (array.dtype, array.shape, offset)
    signs = _signs(base.reshape((1, -1)) if base.ndim == 1 else base).sum(axis=0)
    if (base.shape[0] if base.ndim == 2 else 1) == 1:
        signs = signs * rows
    want = np.zeros(n_weights, np.int64)
    want[offset : offset + cols] = np.broadcast_to(signs, (cols,))
    np.testing.assert_array_equal(acc.counts(), want)
    assert acc.score() == int(np.abs(want).sum())


@PROPERTY
@given(
    data=arrays(dtypes=["uint8"] * 6 + ["int8", "bool", "uint16", "float32", "object"]),
    threads=st.sampled_from([None, 1, 2]),
)
def property_hamming_matrix(data, threads):
    array, _, shape = data
    try:
        got = hamming_matrix(array, num_threads=threads)
    except GradSignError as exc:
        assert (array.dtype != np.uint8 or array.ndim != 2) and _names(exc, "codes"), exc
        return
    except MemoryError as exc:
        assert shape[0] >= HUGE or shape[0] * shape[1] >= HUGE, shape
        assert _names(exc, "codes") and "bytes" in str(exc), exc
        return
    assert array.dtype == np.uint8 and array.ndim == 2
    bits = np.unpackbits(np.ascontiguousarray(array), axis=1).astype(bool)
    want = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    assert got.dtype == np.uint64 and got.shape == (shape[0], shape[0])
    np.testing.assert_array_equal(got, want)


STAT_DTYPES = ["float64", "float32", "float16", "int32", "bool", "int64", "object", ">f8"]
POLICIES = st.sampled_from(["omit", "omit", "propagate", "raise", "skip", 3])


def _stat_ok(array: np.ndarray) -> bool:
    kind, size = array.dtype.kind, array.dtype.itemsize
    return array.ndim == 1 and (kind in "bf" and size <= 8 or kind in "iu" and size <= 4)


@PROPERTY
@given(
    x=arrays(max_ndim=1, dtypes=STAT_DTYPES),
    y=arrays(max_ndim=1, dtypes=STAT_DTYPES),
    policy=POLICIES,
    k=st.one_of(st.integers(-1, 8), st.just(2**70)),
    which=st.sampled_from(["spearman", "kendall_tau", "precision_at_k", "top_k_regret"]),
)
def property_rank_statistics(x, y, policy, k, which):
    (x, _, _), (y, _, _) = x, y
    function = getattr(_core, which)
    extra = (k,) if which in ("precision_at_k", "top_k_regret") else ()
    try:
        got = function(x, y, *extra, nan_policy=policy)
    except GradSignError as exc:
        assert _names(
            exc, "x must", "y must", "x has", "x is NaN", "y is NaN", "scores", "truth", "nan_policy", "k must", "k ="
        ), exc
        if _stat_ok(x) and _stat_ok(y) and policy in ("omit", "propagate", "raise") and len(x) == len(y):
            assert extra or policy == "raise", exc  # only k or a NaN under "raise" can be at fault
        return
    except MemoryError as exc:
        assert len(x) == len(y) >= HUGE and _names(exc, "x and y", "scores and truth") and "bytes" in str(exc), exc
        return
    assert _stat_ok(x) and _stat_ok(y) and policy in ("omit", "propagate", "raise")
    want = function(np.array(x, np.float64), np.array(y, np.float64), *extra, nan_policy=policy)
    assert got == want or (np.isnan(got) and np.isnan(want)), (got, want)


@PROPERTY
@given(
    n=st.one_of(st.integers(0, 9), st.sampled_from([-1, 2**31, HUGE, 2**70])),
    bootstrap=st.one_of(st.integers(0, 9), st.sampled_from([-1, HUGE, 2**61 - 1, 2**61, 2**64])),
    seed=st.one_of(st.integers(0, 5), st.sampled_from([-1, 2**64 - 1, 2**64])),
)
def property_bootstrap_rows(n, bootstrap, seed):
    try:
        rows = bootstrap_rows(n, bootstrap, seed)
    except GradSignError as exc:
        assert (
            (not 0 <= n < 2**31 and _names(exc, "n must"))
            or (not 0 <= bootstrap < 2**61 and _names(exc, "bootstrap"))
            or (not 0 <= seed < 2**64 and _names(exc, "seed"))
        ), exc
        return
    except MemoryError as exc:
        assert n * bootstrap * 4 >= 2**40 and _names(exc, f"bootstrap={bootstrap}", f"n={n}"), exc
        return
    assert rows.shape == (bootstrap, n) and rows.dtype == np.uint32
    assert (rows < max(n, 1)).all()
    if bootstrap:
        np.testing.assert_array_equal(bootstrap_rows(n, 1, seed)[0], rows[0])


@PROPERTY
@given(
    columns=st.lists(arrays(max_ndim=1, dtypes=["float64"] * 4 + ["float32", "int64"]), max_size=3),
    truth=arrays(max_ndim=1, dtypes=["float64"] * 4 + ["object"]),
    methods=st.one_of(
        st.lists(st.sampled_from(["spearman", "kendall", "kendall_c"]), max_size=3),
        st.sampled_from(["spearman", ["pearson"], [1]]),
    ),
    bootstrap=st.one_of(st.integers(0, 6), st.sampled_from([-1, HUGE])),
    confidence=st.sampled_from([0.9, 0.5, 0.0, 1.0, float("nan"), "0.9"]),
    threads=st.sampled_from([None, 1, 2, 0, 1025]),
)
def property_correlate(columns, truth, methods, bootstrap, confidence, threads):
    columns, truth = [c[0] for c in columns], truth[0]
    try:
        got = _core.correlate(
            columns, truth, methods=methods, bootstrap=bootstrap, seed=1, confidence=confidence, num_threads=threads
        )
    except GradSignError as exc:
        assert _names(exc, "columns", "truth", "method", "bootstrap", "confidence", "num_threads", "observations"), exc
        return
    except MemoryError as exc:
        assert (bootstrap >= HUGE or len(truth) >= 2**31) and "bytes" in str(exc), exc
        return
    assert all(_stat_ok(c) for c in columns) and _stat_ok(truth) and 0 < confidence < 1
    assert threads in (None, 1, 2) and isinstance(methods, list)
    assert bootstrap < HUGE or not (columns and methods), "resamples with no statistic to hold need no memory"
    want = _core.correlate(
        [np.array(c, np.float64) for c in columns],
        np.array(truth, np.float64),
        methods=methods,
        bootstrap=bootstrap,
        seed=1,
        confidence=confidence,
        num_threads=1,
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


PROPERTIES = [
    "property_sign_accumulator",
    "property_hamming_matrix",
    "property_rank_statistics",
    "property_bootstrap_rows",
    "property_correlate",
]


@pytest.mark.parametrize("name", PROPERTIES)
def test_no_input_panics_or_aborts(name, child_report):
    """The properties run in the child: a panic or abort fails these tests with the child's last words."""
    records, failure = child_report
    assert name in records, f"the child died before or at {name}: {failure}"
    assert not records[name]["error"], records[name]["error"]
