"""Same model and data: same score with 1 and 2 threads and across runs."""

from __future__ import annotations

import gradsign_rs
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import small_models as zoo  # noqa: E402


@pytest.fixture(scope="module")
def residual_model(cifar_batch):
    return gradsign_rs.from_torch(zoo.make("residual_cnn", seed=5), cifar_batch[0][:1])


def test_same_score_any_thread_count_and_run(residual_model, cifar_batch):
    x, y = cifar_batch
    runs = [gradsign_rs.score(residual_model, x, y, num_threads=t) for t in (1, 2, 1, 2, None)]
    assert len({r.value for r in runs}) == 1
    assert len({tuple(r.per_layer.items()) for r in runs}) == 1


def test_export_is_deterministic(cifar_batch):
    x = cifar_batch[0][:1]
    a = gradsign_rs.from_torch(zoo.make("affine_free_cnn", seed=1), x)
    b = gradsign_rs.from_torch(zoo.make("affine_free_cnn", seed=1), x)
    assert [t.raw_data for t in a.graph.initializer] == [t.raw_data for t in b.graph.initializer]


def test_sample_order_does_not_matter(residual_model, cifar_batch):
    x, y = cifar_batch
    perm = np.random.default_rng(0).permutation(len(y))
    assert gradsign_rs.score(residual_model, x, y).value == gradsign_rs.score(residual_model, x[perm], y[perm]).value


@pytest.mark.parametrize(
    "machine, vendor, family",
    [
        ("x86_64", "AuthenticAMD", "amd"),
        ("x86_64", "GenuineIntel", "intel"),
        ("x86_64", "HygonGenuine", "x86_64"),
        ("aarch64", "", "aarch64"),
    ],
)
def test_cpu_kernel_family_is_read_from_the_cpu_vendor(monkeypatch, tmp_path, machine, vendor, family):
    from gradsign_rs import _ort

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx avx2 fma avx512f\n")
    monkeypatch.setattr(_ort.platform, "machine", lambda: machine)
    monkeypatch.setattr(_ort, "Path", lambda _: cpuinfo)
    assert _ort.cpu_kernels() == family
