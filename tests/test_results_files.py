"""Results and runs files under hostile conditions: two writers, damaged rows, a worker that crashes on one model,
a parent killed while its workers start, and bad numbers on the command line (issue 15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CIFAR10_TRAIN, DATA
from gradsign_rs import GradSignError, batch
from gradsign_rs.batch import BatchConfig, Job, ResultsFile, resolve_models, run_batch
from gradsign_rs.cli import main

needs_images = pytest.mark.skipif(not CIFAR10_TRAIN.is_file(), reason="needs the shared CIFAR-10 images")
needs_nb201 = pytest.mark.skipif(
    not (DATA / "nb201" / "nb201_cifar10.csv").is_file(), reason="needs the shared NAS-Bench-201 table"
)
ROW = {
    "index": 5,
    "arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "score": 12,
    "mean": "0.5",
    "n_weights": 24,
    "n_samples": 4,
    "seconds": "0.1000",
}


def config(**overrides) -> BatchConfig:
    settings: dict = {
        "space": "nb201",
        "data": str(CIFAR10_TRAIN),
        "normalize": "cifar10",
        "num_classes": 10,
        "n": 4,
        "seed": 42,
    }
    settings.update(overrides)
    return BatchConfig(**settings)


def files_config() -> BatchConfig:
    return config(space="files", num_classes=0, seed=0)


def _results(tmp_path: Path, rows: int = 3) -> Path:
    """A results file of `rows` valid rows (indices 0..rows-1) with its settings, as a finished run leaves it."""
    out = tmp_path / "r.csv"
    results = ResultsFile(out)
    results.open(config())
    for i in range(rows):
        results.append({**ROW, "index": i})
    return out


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding the lock of `path`, returned once it holds it."""
    code = (
        "import sys, time\nfrom gradsign_rs.batch import ResultsFile\nResultsFile(sys.argv[1]).lock()\n"
        "print('locked', flush=True)\ntime.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.kill()
    holder.wait()
    holder.stdout.close()


# ---- 1. one writer at a time ----


@needs_images
def test_a_second_writer_is_refused_naming_the_first_and_the_lock_dies_with_it(tmp_path, capsys):
    out = tmp_path / "r.csv"
    holder = _hold_lock(out)
    try:
        with pytest.raises(GradSignError, match=rf"r.csv is being written by another process \(pid {holder.pid}: "):
            run_batch(config(), batch.resolve_archs("sample:1"), out, progress=False)
        assert (
            main(["batch", "--archs", "sample:1", "--data", str(CIFAR10_TRAIN), "--out", str(out), "--no-progress"])
            == 2
        )
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "-c" in err and len(err.strip().splitlines()) == 1
        assert not out.exists() or out.stat().st_size == 0, "the refused run wrote nothing"
    finally:
        _release(holder)
    with ResultsFile(out):  # the kernel released the dead holder's lock
        assert (tmp_path / "r.csv.lock").read_text().split("\n")[0] == str(os.getpid())
    assert not (tmp_path / "r.csv.lock").exists(), "a released lock leaves no file"


@needs_nb201
def test_a_second_search_on_one_runs_file_is_refused(tmp_path, capsys):
    out = tmp_path / "runs.csv"
    holder = _hold_lock(out)
    try:
        assert (
            main(["search", "--algo", "rs", "--runs", "1", "--budget", "500", "--out", str(out), "--no-progress"]) == 2
        )
        assert f"runs.csv is being written by another process (pid {holder.pid}" in capsys.readouterr().err
    finally:
        _release(holder)
    assert main(["search", "--algo", "rs", "--runs", "1", "--budget", "500", "--out", str(out), "--no-progress"]) == 0


# ---- 2. rows checked on resume ----

MALFORMED = {
    "garbage": (b"hello world\n", "1 fields, the header has 7"),
    "nul": (b"7,|none~0|,1,0.5,2,4,0.1\x00\n", "contains a NUL byte"),
    "columns": (b"7,|none~0|,1,0.5,2,4\n", "6 fields, the header has 7"),
    "text score": (b"7,|none~0|,many,0.5,2,4,0.1\n", "column 'score': 'many' is not a non-negative integer"),
    "nan mean": (b"7,|none~0|,1,nan,2,4,0.1\n", "column 'mean': 'nan' is not a finite number"),
    "not utf-8": ("7,|caf\u00e9|,1,0.5,2,4,0.1\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at column 7)"),
    "duplicate": (b"1,|none~0|,1,0.5,2,4,0.1\n", "network 1 appears twice (also on line 3)"),
    "blank": (b"\n", "a blank line"),
}


@needs_images
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_row_is_refused_by_line_and_can_be_moved_aside(tmp_path, case):
    line, problem = MALFORMED[case]
    out = _results(tmp_path, rows=2)
    with open(out, "ab") as f:
        f.write(line)
        f.write(b"2,|none~0|,3,0.5,2,4,0.1\n")  # a good row after the bad one is kept
    with pytest.raises(GradSignError, match=r"r.csv:4: malformed row: ") as refused:
        ResultsFile(out).open(config())
    assert problem in str(refused.value) and "--drop-malformed" in str(refused.value)
    results = ResultsFile(out)
    assert results.open(config(), drop_malformed=True) == {"0", "1", "2"}
    assert [line for line, _ in results.dropped] == [4]
    assert (tmp_path / "r.csv.malformed").read_bytes().startswith(line.rstrip(b"\n"))
    assert list(pd.read_csv(out)["index"]) == [0, 1, 2]
    assert ResultsFile(out).open(config()) == {"0", "1", "2"}  # clean now


@needs_images
def test_unreadable_files_and_settings_are_named(tmp_path):
    out = _results(tmp_path, rows=1)
    out.write_bytes(out.read_text().encode("utf-16"))
    with pytest.raises(GradSignError, match=r"r.csv:1: not UTF-8 text"):
        ResultsFile(out).open(config(), drop_malformed=True)  # no header: nothing to keep
    meta = tmp_path / "r.csv.meta.json"
    for text, problem in (("", "empty"), ("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object")):
        meta.write_text(text)
        with pytest.raises(GradSignError, match=rf"r.csv.meta.json: {problem}.*restore it, or use another --out"):
            ResultsFile(out).open(config())
    (tmp_path / "folder").mkdir()
    with pytest.raises(GradSignError, match="--out .*folder' is a folder"):
        run_batch(config(), batch.resolve_archs("sample:1"), tmp_path / "folder", progress=False)


@needs_images
def test_batch_command_reports_a_damaged_row_then_drops_it_and_goes_on(tmp_path, capsys):
    out = _results(tmp_path, rows=0)
    job = batch.resolve_archs("sample:1", sample_seed=5)[0]
    with open(out, "a") as f:
        f.write("garbage\x00row\n")
    args = [
        "batch",
        "--archs",
        "sample:1",
        "--sample-seed",
        "5",
        "--n",
        "4",
        "--data",
        str(CIFAR10_TRAIN),
        "--workers",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "r.csv:2: malformed row: contains a NUL byte" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--drop-malformed"]) == 0
    assert "moved 1 malformed rows" in capsys.readouterr().out
    assert list(pd.read_csv(out)["index"]) == [job.index]
    assert (tmp_path / "r.csv.malformed").read_bytes() == b"garbage\x00row\n"


@pytest.fixture
def tables(tmp_path) -> tuple[Path, Path]:
    truth = pd.DataFrame({"index": np.arange(30), "acc": np.linspace(10, 90, 30)})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    truth.assign(score=truth["acc"] * 2)[["index", "score"]].to_csv(tmp_path / "scores.csv", index=False)
    return tmp_path / "scores.csv", tmp_path / "truth.csv"


DAMAGED_TABLES = {
    "garbage": (b"hello world\n", "scores.csv:5: 1 fields, the header on line 1 has 2"),
    "nul": (b"40,1\x00\n", "scores.csv:5: contains a NUL byte"),
    "text score": (b"40,lots\n", "scores.csv:5: column 'score' holds 'lots', not a number"),
    "text key": (b"x40,1\n", "scores.csv:5: column 'index' holds 'x40', not a number"),
    "empty key": (b",1\n", "scores.csv:5: no value in column 'index'"),
    "open quote": (b'41,"1\n', "scores.csv:5: a quote is not closed"),
}


@pytest.mark.parametrize("command", ["eval", "correlate"])
@pytest.mark.parametrize("case", sorted(DAMAGED_TABLES))
def test_eval_and_correlate_refuse_a_table_they_cannot_read(tables, capsys, command, case):
    scores, truth = tables
    line, message = DAMAGED_TABLES[case]
    data = scores.read_bytes().splitlines(keepends=True)
    scores.write_bytes(b"".join(data[:4]) + line + b"".join(data[4:]))
    assert main([command, str(scores), "--truth", str(truth), "--target", "acc", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_eval_refuses_utf16_no_overlap_and_folders(tables, capsys):
    scores, truth = tables
    common = ["--truth", str(truth), "--target", "acc", "--bootstrap", "0"]
    original = scores.read_text()
    scores.write_bytes(original.encode("utf-16"))
    assert main(["eval", str(scores), *common]) == 2
    assert "scores.csv:1: not UTF-8 text (byte 0xff at column 1); it looks like UTF-16" in capsys.readouterr().err
    scores.write_text("index,score\n100,1\n101,2\n")
    assert main(["eval", str(scores), *common]) == 2
    assert "no network has both a 'score' value" in capsys.readouterr().err
    assert main(["eval", str(scores.parent), *common]) == 2
    assert "is a folder, not a CSV file" in capsys.readouterr().err
    scores.write_text(original)
    (scores.parent / "file").write_text("")
    assert main(["eval", str(scores), *common, "--report", str(scores.parent / "file" / "report")]) == 2
    assert "--report" in capsys.readouterr().err
    (scores.parent / "notes.md").write_bytes(b"\xff\xfe\x00")
    assert main(["eval", str(scores), *common, "--appendix", str(scores.parent / "notes.md")]) == 2
    err = capsys.readouterr().err
    assert "--appendix" in err and "notes.md: not UTF-8 text" in err


@needs_nb201
def test_a_damaged_runs_file_is_refused_by_line_then_dropped(tmp_path, capsys):
    out = tmp_path / "runs.csv"
    common = ["search", "--algo", "rs", "--budget", "500", "--out", str(out), "--no-progress"]
    assert main([*common, "--runs", "2"]) == 0
    content = out.read_text().splitlines(keepends=True)
    out.write_text(content[0] + content[1].replace("rs,", "zz,", 1) + content[2])
    capsys.readouterr()
    assert main([*common, "--runs", "2"]) == 2
    assert "runs.csv:2: malformed row: column 'algo': 'zz' is not one of" in capsys.readouterr().err
    assert main([*common, "--runs", "2", "--drop-malformed"]) == 0
    runs = pd.read_csv(out)
    assert sorted(runs["seed"]) == [0, 1] and (tmp_path / "runs.csv.malformed").read_text().startswith("zz,")


# ---- 3. a worker that crashes on one model ----


def crash_on_marked_models(job: Job) -> batch.JobResult:
    """The batch worker's job, except that a model named crash*.onnx takes the process down as a segfaulting
    onnxruntime would (abort: SIGABRT), exit139*.onnx exits with status 139 and oom*.onnx is SIGKILLed."""
    import resource

    name = Path(job.model or "").name
    if name.startswith("crash"):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the test's abort
        os.abort()
    if name.startswith("exit139"):
        os._exit(139)
    if name.startswith("oom"):  # as the kernel's out-of-memory killer would
        os.kill(os.getpid(), signal.SIGKILL)
    return batch._score_job(job)


@needs_images
def test_a_worker_killed_by_sigkill_is_reported_with_the_memory_hint(tmp_path):
    paths = _models(tmp_path / "models", ["a.onnx", "oom.onnx"])
    out = tmp_path / "r.csv"
    summary = run_batch(
        files_config(), resolve_models(str(tmp_path / "models")), out, progress=False, score_job=crash_on_marked_models
    )
    assert (summary.scored, summary.crashed) == (1, 1)
    (error,) = _errors(out)
    assert error["model"] == str(paths[1].resolve()) and error["crash"] == "signal 9, SIGKILL"
    assert "out-of-memory killer" in error["error"] and "fewer --workers" in error["error"]


def _models(folder: Path, names: list[str]) -> list[Path]:
    from gradsign_rs.spaces import nb201

    folder.mkdir()
    for i, name in enumerate(names):
        model = nb201.build_onnx(nb201.Arch.from_index(i), channels=4, cells_per_stage=1, seed=i)
        (folder / name).write_bytes(model.SerializeToString())
    return sorted(folder.glob("*.onnx"))


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.with_name(out.name + ".errors.jsonl").read_text().splitlines()]


@needs_images
def test_a_model_that_crashes_its_worker_is_recorded_and_not_retried_forever(tmp_path):
    paths = _models(tmp_path / "models", ["a.onnx", "crash.onnx", "b.onnx"])
    jobs = resolve_models(str(tmp_path / "models"))
    out = tmp_path / "r.csv"
    first = run_batch(files_config(), jobs, out, progress=False, score_job=crash_on_marked_models)
    assert (first.scored, first.failed, first.crashed) == (2, 1, 1)
    (error,) = _errors(out)
    crashed = str(paths[2].resolve())  # sorted: a, b, crash
    assert error["model"] == crashed and error["crash"] == "signal 6, SIGABRT"
    assert error["error"] == f"worker process crashed (signal 6, SIGABRT) while scoring {crashed}"
    assert sorted(pd.read_csv(out)["model"]) == [str(p.resolve()) for p in paths[:2]]
    second = run_batch(files_config(), jobs, out, progress=False, score_job=crash_on_marked_models)
    assert (second.scored, second.skipped, second.crashed, second.given_up) == (0, 2, 1, 0)  # tried once more
    third = run_batch(files_config(), jobs, out, progress=False, score_job=crash_on_marked_models)
    assert (third.failed, third.given_up) == (0, 1)  # crashed two runs in a row: left alone
    assert ResultsFile(out, files_config().columns).crashes() == {crashed: 2}


@needs_images
def test_two_workers_survive_a_crash_and_the_run_goes_on(tmp_path):
    _models(tmp_path / "models", ["a.onnx", "b.onnx", "c.onnx", "exit139.onnx"])
    out = tmp_path / "r.csv"
    summary = run_batch(
        files_config(),
        resolve_models(str(tmp_path / "models")),
        out,
        workers=2,
        progress=False,
        score_job=crash_on_marked_models,
    )
    assert (summary.scored, summary.failed, summary.crashed) == (3, 1, 1)
    (error,) = _errors(out)
    assert error["model"].endswith("exit139.onnx") and "worker process crashed (exit code 139)" in error["error"]
    again = run_batch(
        files_config(),
        resolve_models(str(tmp_path / "models")),
        out,
        workers=2,
        progress=False,
        retry_crashed=True,
        score_job=crash_on_marked_models,
    )
    assert (again.skipped, again.crashed) == (3, 1)


# ---- 4. workers die with their parent at every point of start-up ----


def _groups() -> dict[int, list[int]]:
    """Live processes (not zombies) by process group."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found.setdefault(int(fields[2]), []).append(int(entry.name))
    return found


@needs_images
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_only_the_parent_during_worker_start_up_leaves_no_process(tmp_path):
    # One `gradsign batch` per moment, side by side: each parent is killed that long after its first worker appeared.
    # 200 networks keep the workers busy past the last moment even on a fast machine (6 once finished within 2 s).
    delays = (0.0, 0.3, 1.0, 2.0)
    parents = {}
    for delay in delays:
        command = [
            sys.executable,
            "-m",
            "gradsign_rs",
            "batch",
            "--archs",
            "sample:200",
            "--n",
            "4",
            "--workers",
            "2",
            "--out",
            str(tmp_path / f"r{delay}.csv"),
            "--no-progress",
            "--data",
            str(CIFAR10_TRAIN),
        ]
        parents[delay] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    first_worker: dict[float, float] = {}
    started: dict[float, list[int]] = {}
    deadline = time.time() + 90
    while len(started) < len(delays) and time.time() < deadline:
        groups, now = _groups(), time.time()
        for delay, parent in parents.items():
            workers = [pid for pid in groups.get(parent.pid, []) if pid != parent.pid]
            if delay in started or not (workers or delay in first_worker):
                continue
            first_worker.setdefault(delay, now)
            if now - first_worker[delay] >= delay:
                started[delay] = workers
                parent.kill()  # the parent alone, as an OOM killer or `kill -9 PID` would
                parent.wait()
        time.sleep(0.01)
    deadline = time.time() + 10
    while time.time() < deadline and any(_groups().get(p.pid) for p in parents.values()):
        time.sleep(0.05)
    groups = _groups()
    left = {delay: groups.get(parent.pid, []) for delay, parent in parents.items()}
    for parent in parents.values():
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in groups.get(parent.pid, []):
            os.kill(pid, signal.SIGKILL)
    assert all(started.get(delay) for delay in delays), f"workers seen at each kill: {started}"
    assert not any(left.values()), f"processes that outlived their parent, by moment of the kill (s): {left}"


# ---- 5. bad numbers refused up front, naming the flag ----


@needs_images
@pytest.mark.parametrize(
    "flags, named",
    [
        (["--proxies", "gradsign,params", "--proxy-batch-size", "0"], "--proxy-batch-size"),
        (["--seed", "-1"], "--seed"),
        (["--n", "0"], "--n"),
        (["--offset", "-3"], "--offset"),
        (["--workers", "0"], "--workers"),
        (["--workers", "100000"], "--workers"),
        (["--size", "0"], "--size"),
        (["--sample-seed", "-1"], "--sample-seed"),
    ],
)
def test_batch_refuses_bad_numbers_before_scoring(tmp_path, capsys, flags, named):
    out = tmp_path / "r.csv"
    assert (
        main(["batch", "--archs", "sample:2", "--data", str(CIFAR10_TRAIN), "--no-progress", "--out", str(out), *flags])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(f"gradsign: error: {named} must be an integer in ") and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--budget", "inf"], "--budget"),
        (["--budget", "nan"], "--budget"),
        (["--budget", "0"], "--budget"),
        (["--budget", "1e300"], "--budget"),
        (["--runs", "0"], "--runs"),
        (["--runs", "1000000000"], "--runs"),
        (["--candidates", "0"], "--candidates"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**63)], "--seed"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_search_refuses_bad_budgets_and_counts_up_front(capsys, flags, named):
    assert main(["search", "--algo", "rs", "--runs", "1", "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gradsign: error: {named} must be ") and len(err.strip().splitlines()) == 1


def test_unreadable_arch_lists_are_named(tmp_path):
    listing = tmp_path / "archs.txt"
    listing.write_bytes("0\n1\n".encode("utf-16"))
    with pytest.raises(GradSignError, match=r"--archs .*archs.txt': not UTF-8 text"):
        batch.resolve_archs(str(listing))


@needs_images
def test_a_model_file_gone_from_the_workers_host_is_a_failure_naming_the_host(tmp_path):
    import socket

    paths = _models(tmp_path / "models", ["a.onnx", "b.onnx"])
    jobs = resolve_models(str(tmp_path / "models"))
    paths[1].unlink()  # as on a cluster node without the shared file system
    out = tmp_path / "r.csv"
    summary = run_batch(files_config(), jobs, out, progress=False)
    assert (summary.scored, summary.failed) == (1, 1)
    (error,) = _errors(out)
    assert error["error"] == f"model file {str(paths[1].resolve())!r} does not exist on host {socket.gethostname()}"
