"""The Ray backend against a real Ray cluster on this machine (two nodes on loopback, `ray.cluster_utils.Cluster`):
the same table as the local backend, nothing lost or written twice when a node or the driver dies, clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import CIFAR10_TRAIN, DATA
from gradsign_rs import GradSignError
from gradsign_rs.batch import BatchConfig, resolve_archs, run_batch

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
from gradsign_rs.cluster import RayPool  # noqa: E402  (only with ray installed)

pytestmark = pytest.mark.skipif(not CIFAR10_TRAIN.is_file(), reason="needs the shared NAS-Bench-201 data")
TESTS = Path(__file__).resolve().parent
# Nodes notice a dead peer within about 2 s, not Ray's default 30 s.
FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}


def config() -> BatchConfig:
    return BatchConfig(space="nb201", data=str(CIFAR10_TRAIN), normalize="cifar10", num_classes=10, n=8, seed=42)


def start_cluster(nodes: int = 2, **head) -> cluster_utils.Cluster:
    """A head node and `nodes - 1` workers, 1 CPU each; their workers can import this folder's modules."""
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), path) if p)
    try:
        cluster = cluster_utils.Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "include_dashboard": False,
                "_system_config": FAST_FAILURE_DETECTION,
                **head,
            },
        )
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
    finally:
        os.environ["PYTHONPATH"] = path
    return cluster


@pytest.fixture(scope="module")
def cluster():
    cluster = start_cluster(2)
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    """The local backend's table of the networks the tests score, the reference every Ray run must reproduce."""
    out = tmp_path_factory.mktemp("local") / "local.csv"
    run_batch(config(), resolve_archs("sample:8", sample_seed=5), out, workers=2, progress=False)
    return out


def same_rows(path: Path, reference: Path) -> None:
    """Same header and the same row per network, each once (scores exactly; `seconds` is a measurement)."""
    assert path.read_text().splitlines()[0] == reference.read_text().splitlines()[0]
    got, want = pd.read_csv(path), pd.read_csv(reference)
    assert not got["index"].duplicated().any()
    got, want = (t.drop(columns="seconds").sort_values("index").reset_index(drop=True) for t in (got, want))
    pd.testing.assert_frame_equal(got, want)


def test_two_nodes_give_the_local_backends_table(cluster, local_table, tmp_path):
    out = tmp_path / "ray.csv"
    pool = RayPool(cluster.address, chunk_size=1)
    nodes: list[object] = []
    summary = run_batch(
        config(),
        resolve_archs("sample:8", sample_seed=5),
        out,
        pool=pool,
        progress=False,
        on_row=lambda row: nodes.append(pool.status()["nodes"]),
    )
    assert (summary.scored, summary.failed) == (8, 0)
    assert max(nodes) == 2  # both nodes scored
    same_rows(out, local_table)
    assert Path(f"{out}.meta.json").read_bytes() == Path(f"{local_table}.meta.json").read_bytes()
    assert not ray.is_initialized()  # the pool leaves the driver as it found it


def test_a_network_that_kills_its_worker_is_a_crash_and_the_rest_are_scored(cluster, tmp_path):
    import cluster_jobs

    archs = tmp_path / "archs.txt"
    archs.write_text("0\n1\n2\n3\n4\n5\n")
    out = tmp_path / "ray.csv"
    # One network a chunk, two chunks queued per actor: a network queued behind the crashing one dies with its actor
    # without having run, and must not be counted as a crash.
    summary = run_batch(
        config(),
        resolve_archs(str(archs)),
        out,
        pool=RayPool(cluster.address, chunk_size=1),
        progress=False,
        score_job=cluster_jobs.crash_on_one_network,
    )
    assert (summary.scored, summary.failed, summary.crashed) == (5, 1, 1)
    assert sorted(pd.read_csv(out)["index"]) == [0, 1, 3, 4, 5]
    error = Path(f"{out}.errors.jsonl").read_text()
    assert '"index": 2' in error and "Ray worker died on node" in error


def test_a_worker_node_killed_mid_run_loses_nothing_and_duplicates_nothing(local_table, tmp_path):
    cluster = start_cluster(2)
    try:
        worker = next(node for node in cluster.list_all_nodes() if node is not cluster.head_node)
        out = tmp_path / "ray.csv"
        pool = RayPool(cluster.address, chunk_size=1)
        removed: list[bool] = []

        def kill_the_worker_node(row):
            if not removed:
                cluster.remove_node(worker, allow_graceful=False)
                removed.append(True)

        summary = run_batch(
            config(),
            resolve_archs("sample:8", sample_seed=5),
            out,
            pool=pool,
            progress=False,
            on_row=kill_the_worker_node,
        )
        assert removed and (summary.scored, summary.failed) == (8, 0)
        same_rows(out, local_table)
    finally:
        cluster.shutdown()


def test_a_killed_driver_resumes_and_scores_each_network_once(cluster, local_table, tmp_path):
    out = tmp_path / "ray.csv"
    command = [
        *(sys.executable, "-m", "gradsign_rs", "batch", "--backend", "ray", "--address", cluster.address),
        *("--archs", "sample:8", "--sample-seed", "5", "--n", "8", "--out", str(out), "--no-progress"),
    ]
    env = {**os.environ, "GRADSIGN_DATA": str(DATA)}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            if out.is_file() and len(out.read_text().splitlines()) >= 3:  # the header and two rows
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the driver finished before it could be killed"
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    partial = len(out.read_text().splitlines()) - 1
    assert 2 <= partial < 8
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"already done {partial}" in resumed.stdout
    same_rows(out, local_table)


def test_search_runs_on_the_cluster_as_locally(cluster, tmp_path):
    from gradsign_rs.cli import main

    common = ["search", "--algo", "rs", "--runs", "3", "--budget", "3000", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--backend", "ray", "--address", cluster.address]) == 0
    local, remote = (
        pd.read_csv(tmp_path / name).sort_values("seed").reset_index(drop=True) for name in ("local.csv", "ray.csv")
    )
    pd.testing.assert_frame_equal(local, remote)


@pytest.mark.slow
def test_a_node_without_the_data_is_named(tmp_path, capsys):
    """A search needs the NAS-Bench-201 table on every node: a node that lacks it stops the run, named."""
    from gradsign_rs.cli import main

    cluster = start_cluster(1)
    try:
        saved = os.environ.get("GRADSIGN_DATA")
        os.environ["GRADSIGN_DATA"] = str(tmp_path / "nowhere")
        try:
            node = cluster.add_node(num_cpus=1)
        finally:
            os.environ.pop("GRADSIGN_DATA")
            if saved is not None:
                os.environ["GRADSIGN_DATA"] = saved
        cluster.wait_for_nodes()
        command = ["search", "--algo", "rs", "--runs", "2", "--budget", "3000", "--no-progress"]
        assert main([*command, "--backend", "ray", "--address", cluster.address]) == 2
        err = capsys.readouterr().err
        assert f"node {node.node_ip_address} (id {node.node_id[:12]}) cannot start a worker" in err
        assert "nowhere" in err
    finally:
        cluster.shutdown()


def test_cluster_errors_are_clear(cluster, tmp_path, capsys):
    from gradsign_rs.cli import main

    common = ["batch", "--archs", "sample:2", "--n", "8", "--out", str(tmp_path / "r.csv"), "--no-progress"]
    start = time.monotonic()
    assert main([*common, "--backend", "ray", "--address", "127.0.0.1:9"]) == 2  # nothing listens on port 9
    assert "cannot reach a Ray head node there" in capsys.readouterr().err
    assert time.monotonic() - start < 30
    assert main([*common, "--address", "auto"]) == 2
    assert "--address is for --backend ray" in capsys.readouterr().err
    assert main([*common, "--backend", "ray", "--address", cluster.address, "--workers", "3"]) == 2
    assert "--workers 3: the Ray cluster has 2 CPUs on 2 nodes" in capsys.readouterr().err
    with pytest.raises(GradSignError, match="--workers must be a positive integer"):
        RayPool(workers=0)


def test_a_cluster_with_no_free_cpu_is_named_not_waited_on_forever(cluster, tmp_path):
    @ray.remote(num_cpus=1)
    class Holder:
        def ready(self) -> bool:
            return True

    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        holders = [Holder.remote() for _ in range(2)]  # another job holding every CPU of the cluster
        ray.get([h.ready.remote() for h in holders])
        pool = RayPool(cluster.address, startup_timeout=3)
        with pytest.raises(GradSignError, match="no Ray worker started within 3 s: the cluster has 0 of 2 CPUs free"):
            run_batch(config(), resolve_archs("sample:2"), tmp_path / "r.csv", pool=pool, progress=False)
        assert ray.is_initialized()  # the pool did not end a connection it did not open
    finally:
        ray.shutdown()


def test_a_node_without_the_code_is_named(cluster, tmp_path, monkeypatch):
    """A worker function from a module only the driver has stands for a node without gradsign-rs: the actor cannot
    be created there, and the run stops naming the node and the missing module."""
    (tmp_path / "driver_only.py").write_text(
        "from gradsign_rs import batch\n\ndef score(job):\n    return batch._score_job(job)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import driver_only

    with pytest.raises(GradSignError) as error:
        run_batch(
            config(),
            resolve_archs("sample:2"),
            tmp_path / "r.csv",
            pool=RayPool(cluster.address),
            progress=False,
            score_job=driver_only.score,
        )
    message = str(error.value)
    assert "cannot start a gradsign-rs worker: ModuleNotFoundError: No module named 'driver_only'" in message
    assert message.startswith("node ") and "(id " in message
