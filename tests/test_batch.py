"""Resumable batch scoring: exactly once across kills, settings checked, failures recorded and retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import CIFAR10_TRAIN
from gradsign_rs import GradSignError
from gradsign_rs.batch import BatchConfig, Job, ResultsFile, resolve_archs, run_batch

pytestmark = pytest.mark.skipif(not CIFAR10_TRAIN.is_file(), reason="needs the shared NAS-Bench-201 data")


def config(**overrides) -> BatchConfig:
    settings = dict(space="nb201", data=str(CIFAR10_TRAIN), normalize="cifar10", num_classes=10, n=4, seed=42)
    settings.update(overrides)
    return BatchConfig(**settings)


def rows(path) -> pd.DataFrame:
    return pd.read_csv(path)


def test_scores_match_the_api_and_resume_skips_done(tmp_path):
    import gradsign_rs
    from gradsign_rs.spaces import nb201

    out = tmp_path / "r.csv"
    jobs = resolve_archs("sample:3", sample_seed=1)
    first = run_batch(config(), jobs[:2], out, progress=False)
    second = run_batch(config(), jobs, out, progress=False)
    assert (first.scored, second.scored, second.skipped) == (2, 1, 2)
    table = rows(out)
    assert sorted(table["index"]) == sorted(j.index for j in jobs)
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=4)
    job = jobs[0]
    want = gradsign_rs.score(nb201.build_onnx(job.arch, seed=42), x, y).value
    assert int(table.set_index("index").loc[job.index, "score"]) == want


def test_a_row_cut_off_by_a_kill_is_dropped_and_redone(tmp_path):
    out = tmp_path / "r.csv"
    jobs = resolve_archs("sample:2", sample_seed=2)
    run_batch(config(), jobs, out, progress=False)
    complete = out.read_bytes()
    out.write_bytes(complete[: len(complete) - 7])  # the last line loses its end, as if killed mid-write
    summary = run_batch(config(), jobs, out, progress=False)
    assert summary.scored == 1 and summary.skipped == 1
    redone = rows(out).drop(columns="seconds")
    pd.testing.assert_frame_equal(redone, pd.read_csv(__import__("io").BytesIO(complete)).drop(columns="seconds"))


def test_other_settings_are_refused(tmp_path):
    out = tmp_path / "r.csv"
    run_batch(config(), resolve_archs("sample:1"), out, progress=False)
    with pytest.raises(GradSignError, match=r"made with other settings \(seed: file has 42, this run 7\)"):
        run_batch(config(seed=7), resolve_archs("sample:1"), out, progress=False)


def test_offset_scores_later_images_and_is_part_of_the_settings(tmp_path):
    import gradsign_rs
    from gradsign_rs.spaces import nb201

    out = tmp_path / "r.csv"
    job = resolve_archs("sample:1", sample_seed=4)[0]
    run_batch(config(offset=8), [job], out, progress=False)
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=12)
    want = gradsign_rs.score(nb201.build_onnx(job.arch, seed=42), x[8:12], y[8:12]).value
    assert int(rows(out)["score"].iloc[0]) == want
    assert json.loads((tmp_path / "r.csv.meta.json").read_text())["offset"] == 8
    assert "offset" not in config().to_json()  # files made before the option resume unchanged
    with pytest.raises(GradSignError, match=r"offset: file has 8, this run None"):
        run_batch(config(), [job], out, progress=False)


def test_a_foreign_file_is_not_appended_to(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("something,else\n1,2\n")
    with pytest.raises(GradSignError, match="exists without its r.csv.meta.json"):
        run_batch(config(), resolve_archs("sample:1"), out, progress=False)


def test_a_failing_network_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    from gradsign_rs.spaces import nb201

    jobs = resolve_archs("sample:3", sample_seed=3)
    bad = jobs[1]
    real = nb201.build_onnx

    def flaky(arch, **kwargs):
        if str(arch) == bad.arch:
            raise GradSignError("injected failure")
        return real(arch, **kwargs)

    monkeypatch.setattr(nb201, "build_onnx", flaky)
    out = tmp_path / "r.csv"
    summary = run_batch(config(), jobs, out, progress=False, isolate=False)  # the patch lives in this process
    assert (summary.scored, summary.failed) == (2, 1)
    errors = [json.loads(line) for line in (tmp_path / "r.csv.errors.jsonl").read_text().splitlines()]
    assert errors[0]["index"] == bad.index and errors[0]["error"] == "injected failure"
    monkeypatch.setattr(nb201, "build_onnx", real)
    retry = run_batch(config(), jobs, out, progress=False)
    assert (retry.scored, retry.skipped) == (1, 2)
    assert sorted(rows(out)["index"]) == sorted(j.index for j in jobs)


def _start_cli_batch(out, archs: str, lines: int) -> tuple[list[str], subprocess.Popen]:
    """`gradsign batch` on 2 workers in its own process group, returned once `out` has `lines` lines."""
    command = [
        sys.executable,
        "-m",
        "gradsign_rs",
        "batch",
        "--archs",
        archs,
        "--n",
        "4",
        "--workers",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--data",
        str(CIFAR10_TRAIN),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < lines):
        time.sleep(0.05)
    return command, process


def test_killed_cli_run_resumes_to_exactly_once(tmp_path):
    out = tmp_path / "r.csv"
    command, process = _start_cli_batch(out, "sample:12", 4)
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group: the parent and its workers
    process.wait()
    partial = len(out.read_text().splitlines()) - 1
    assert 3 <= partial < 12, "the kill should land mid-run"
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    table = rows(out)
    assert len(table) == 12 and table["index"].is_unique
    reference = tmp_path / "reference.csv"
    subprocess.run(
        [*command[: command.index("--out")], "--out", str(reference), "--no-progress", "--data", str(CIFAR10_TRAIN)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    merged = table.set_index("index")["score"].sort_index()
    assert merged.equals(rows(reference).set_index("index")["score"].sort_index())


def test_workers_exit_when_only_the_parent_is_killed(tmp_path):
    _, process = _start_cli_batch(tmp_path / "r.csv", "sample:40", 3)
    group = [
        int(p) for p in subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    ]
    assert len(group) >= 3, "the parent and its two workers"
    process.kill()  # the parent alone, as an OOM killer or `kill -9 PID` would
    process.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in group if pid != process.pid):
        time.sleep(0.1)
    left = [pid for pid in group if pid != process.pid and os.path.exists(f"/proc/{pid}")]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"


def test_arch_files_and_bad_specs(tmp_path):
    listing = tmp_path / "archs.txt"
    listing.write_text("# two networks\n0\n|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    jobs = resolve_archs(str(listing))
    assert jobs[0] == Job(0, jobs[0].arch) and len(jobs) == 2
    listing.write_text("|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    with pytest.raises(GradSignError, match=r"archs.txt:1: .*nor_conv_9x9"):
        resolve_archs(str(listing))
    with pytest.raises(GradSignError, match="expected sample:K"):
        resolve_archs("sample:many")
    with pytest.raises(GradSignError, match="not 'all', 'sample:K' or an existing file"):
        resolve_archs("nowhere.txt")


def test_results_file_rejects_duplicates(tmp_path):
    out = tmp_path / "r.csv"
    results = ResultsFile(out)
    results.open(config())
    row = {"index": 5, "arch": "a", "score": 1, "mean": 1, "n_weights": 1, "n_samples": 4, "seconds": 0.1}
    results.append(row)
    results.append(row)
    with pytest.raises(GradSignError, match="network 5 appears twice"):
        ResultsFile(out).open(config())


def _onnx_files(folder, count=3):
    """Small NB201 networks saved as .onnx files (any classifier works; these are cheap to score)."""
    from gradsign_rs.spaces import nb201

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        model = nb201.build_onnx(nb201.sample(rng), channels=4, cells_per_stage=1, seed=i)
        (folder / f"net{i}.onnx").write_bytes(model.SerializeToString())
    return sorted(folder.glob("*.onnx"))


def test_onnx_files_are_scored_keyed_by_path_and_resumed(tmp_path):
    import gradsign_rs
    from gradsign_rs.batch import resolve_models

    paths = _onnx_files(tmp_path / "models")
    files = config(space="files", num_classes=0, seed=0)
    assert files.columns == (
        "model",
        "score",
        "mean",
        "n_weights",
        "n_samples",
        "protocol",
        "protocol_reasons",
        "seconds",
    )
    assert "seed" not in files.to_json() and "num_classes" not in files.to_json()
    out = tmp_path / "r.csv"
    first = run_batch(files, resolve_models(str(paths[0])), out, progress=False)
    second = run_batch(files, resolve_models(str(tmp_path / "models")), out, progress=False)
    assert (first.scored, second.scored, second.skipped) == (1, 2, 1)
    table = rows(out).set_index("model")
    x, y = gradsign_rs.load_images(CIFAR10_TRAIN, n=4)
    for path in paths:
        assert int(table.loc[str(path.resolve()), "score"]) == gradsign_rs.score(path, x, y).value
    # A glob and a list of relative paths name the same files: nothing is scored twice.
    (tmp_path / "list.txt").write_text("# the models\nmodels/net2.onnx\nmodels/net0.onnx\n")
    assert run_batch(files, resolve_models(str(tmp_path / "list.txt")), out, progress=False).skipped == 2
    assert run_batch(files, resolve_models(str(tmp_path / "models" / "*.onnx")), out, progress=False).scored == 0


def test_a_broken_onnx_file_is_recorded_and_the_others_scored(tmp_path):
    from gradsign_rs.batch import resolve_models

    paths = _onnx_files(tmp_path / "models", count=2)
    paths[0].write_bytes(b"not a model")
    out = tmp_path / "r.csv"
    summary = run_batch(
        config(space="files", num_classes=0, seed=0), resolve_models(str(tmp_path / "models")), out, progress=False
    )
    assert (summary.scored, summary.failed) == (1, 1)
    (error,) = [json.loads(line) for line in (tmp_path / "r.csv.errors.jsonl").read_text().splitlines()]
    assert error["model"] == str(paths[0].resolve()) and "net0.onnx" in error["error"]


def test_model_specs_that_name_nothing_are_refused(tmp_path):
    from gradsign_rs.batch import resolve_models

    (tmp_path / "empty").mkdir()
    with pytest.raises(GradSignError, match="has no .onnx files"):
        resolve_models(str(tmp_path / "empty"))
    with pytest.raises(GradSignError, match="matches no file"):
        resolve_models(str(tmp_path / "*.onnx"))
    (tmp_path / "list.txt").write_text("gone.onnx\n")
    with pytest.raises(GradSignError, match=r"list.txt:1: model file 'gone.onnx' does not exist"):
        resolve_models(str(tmp_path / "list.txt"))
    with pytest.raises(GradSignError, match="does not belong to space"):
        run_batch(config(), [Job(model="x.onnx")], tmp_path / "r.csv", progress=False)


def test_batch_command_scores_a_folder_with_proxies(tmp_path, capsys):
    from gradsign_rs.cli import main

    _onnx_files(tmp_path / "models", count=2)
    out = tmp_path / "r.csv"
    args = [
        "batch",
        "--models",
        str(tmp_path / "models"),
        "--data",
        str(CIFAR10_TRAIN),
        "--n",
        "4",
        "--proxies",
        "gradsign,params",
        "--proxy-batch-size",
        "4",
        "--workers",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    table = rows(out)
    assert list(table.columns) == [
        "model",
        "score",
        "mean",
        "n_weights",
        "n_samples",
        "protocol",
        "protocol_reasons",
        "params",
        "seconds",
    ]
    assert (table["protocol"] == "paper").all()
    assert len(table) == 2 and (table["params"] > 0).all()
    assert main(args) == 0 and "scored 0, already done 2" in capsys.readouterr().out


def test_model_lists_skip_comments_and_refuse_binary_files_and_search_space_flags(tmp_path, capsys):
    from gradsign_rs.batch import resolve_models
    from gradsign_rs.cli import main

    paths = _onnx_files(tmp_path / "models", count=1)
    (tmp_path / "list.txt").write_text("  # a comment\nmodels/net0.onnx\n")
    assert [j.model for j in resolve_models(str(tmp_path / "list.txt"))] == [str(paths[0].resolve())]
    (tmp_path / "weights.bin").write_bytes(b"\x80\x81\xfe")
    with pytest.raises(GradSignError, match="not a .onnx file, and not a text list"):
        resolve_models(str(tmp_path / "weights.bin"))
    (tmp_path / "models" / "sub.onnx").mkdir()  # a folder matching the glob is not a model
    assert len(resolve_models(str(tmp_path / "models" / "*.onnx"))) == 1
    assert main(["batch", "--models", str(tmp_path / "models"), "--seed", "3", "--out", str(tmp_path / "r.csv")]) == 2
    assert "--seed choose search-space networks" in capsys.readouterr().err


def test_the_ray_backend_without_ray_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    from gradsign_rs.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where the extra is not installed
    command = ["batch", "--archs", "sample:1", "--n", "4", "--out", str(tmp_path / "r.csv"), "--backend", "ray"]
    assert main(command) == 2
    assert "--backend ray needs Ray: pip install 'gradsign-rs[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()  # refused before the results file was touched
