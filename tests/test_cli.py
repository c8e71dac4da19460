"""The `gradsign score` command."""

from __future__ import annotations

import json
import subprocess
import sys

import gradsign_rs
import numpy as np
import pytest
from gradsign_rs.cli import main
from onnx_builders import conv_head


@pytest.fixture
def files(tmp_path):
    model_path = tmp_path / "m.onnx"
    model_path.write_bytes(conv_head().SerializeToString())
    rng = np.random.default_rng(0)
    data_path = tmp_path / "d.npz"
    np.savez(data_path, x=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), y=rng.integers(0, 10, 20))
    return model_path, data_path


def test_json_output_matches_the_api(files, capsys):
    model_path, data_path = files
    assert main(["score", str(model_path), "--data", str(data_path), "--n", "12", "--json", "--per-layer"]) == 0
    payload = json.loads(capsys.readouterr().out)
    x, y = gradsign_rs.load_images(data_path, n=12)
    want = gradsign_rs.score(model_path, x, y)
    assert payload["value"] == want.value
    assert payload["n_samples"] == 12 and payload["n_weights"] == want.n_weights
    assert payload["per_layer"] == want.per_layer


def test_score_proxies_by_name_match_the_api(files, capsys):
    from gradsign_rs import proxies

    model_path, data_path = files
    args = [
        "score",
        str(model_path),
        "--data",
        str(data_path),
        "--n",
        "12",
        "--proxies",
        "gradsign,synflow,params",
        "--proxy-batch-size",
        "4",
    ]
    assert main([*args, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    x, y = gradsign_rs.load_images(data_path, n=12)
    want = proxies.compute(["gradsign", "synflow", "params"], model_path, x, y, batch_size=4)
    assert payload["proxies"] == pytest.approx(want, rel=1e-6) and set(payload["seconds"]) == set(want)
    assert main(args) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["gradsign", "synflow", "params"]
    assert main(["score", str(model_path), "--data", str(data_path), "--proxies", "gradsign,zen"]) == 2
    assert "unknown proxies ['zen']" in capsys.readouterr().err


def test_seed_draws_a_reproducible_subset(files, capsys):
    model_path, data_path = files
    args = ["score", str(model_path), "--data", str(data_path), "--n", "8", "--seed", "4", "--json"]
    main(args)
    first = json.loads(capsys.readouterr().out)["value"]
    main(args)
    assert json.loads(capsys.readouterr().out)["value"] == first


def test_table_output_and_per_layer(files, capsys):
    model_path, data_path = files
    main(["score", str(model_path), "--data", str(data_path), "--n", "4", "--per-layer"])
    out = capsys.readouterr().out
    assert "gradsign" in out and "samples   4" in out and "w1" in out and "w2" in out


def test_bad_input_exits_2_with_a_message(files, capsys):
    _, data_path = files
    assert main(["score", "missing.onnx", "--data", str(data_path)]) == 2
    assert "model file 'missing.onnx' does not exist" in capsys.readouterr().err


def test_python_dash_m_and_version():
    result = subprocess.run([sys.executable, "-m", "gradsign_rs", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("gradsign-rs ")


def test_eval_restricted_to_a_sample(tmp_path, capsys):
    import numpy as np
    import pandas as pd
    from gradsign_rs.batch import resolve_archs
    from gradsign_rs.cli import main

    rng = np.random.default_rng(0)
    truth = pd.DataFrame({"index": np.arange(100), "acc": rng.standard_normal(100)})
    scores = truth.assign(score=truth["acc"] + rng.standard_normal(100))[["index", "score"]]
    truth.to_csv(tmp_path / "truth.csv", index=False)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    listing = tmp_path / "archs.txt"
    listing.write_text("\n".join(str(i) for i in range(20)) + "\n")
    assert (
        main(
            [
                "eval",
                str(tmp_path / "scores.csv"),
                "--truth",
                str(tmp_path / "truth.csv"),
                "--target",
                "acc",
                "--archs",
                str(listing),
                "--bootstrap",
                "0",
            ]
        )
        == 0
    )
    assert "20 networks in both" in capsys.readouterr().out
    assert [j.index for j in resolve_archs(str(listing))] == list(range(20))


def test_eval_of_a_negative_proxy_column_writes_its_report(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    truth = pd.DataFrame({"index": np.arange(60), "acc": rng.uniform(10, 90, 60)})
    scores = truth.assign(jacob_cov=-100 + truth["acc"] + rng.standard_normal(60))[["index", "jacob_cov"]]
    truth.to_csv(tmp_path / "truth.csv", index=False)
    scores.to_csv(tmp_path / "proxies.csv", index=False)
    report = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                str(tmp_path / "proxies.csv"),
                "--truth",
                str(tmp_path / "truth.csv"),
                "--target",
                "acc",
                "--score",
                "jacob_cov",
                "--bootstrap",
                "20",
                "--report",
                str(report),
                "--json",
            ]
        )
        == 0
    )
    (evaluation,) = json.loads(capsys.readouterr().out)
    assert evaluation["n"] == 60 and evaluation["spearman"] > 0.9
    assert (report / "scatter_acc.png").stat().st_size > 0 and (report / "topk.png").is_file()


def test_eval_splits_nb201_cells_with_and_without_dead_operations(tmp_path, capsys):
    import numpy as np
    import pandas as pd
    from gradsign_rs.spaces import nb201

    rng = np.random.default_rng(2)
    index = rng.choice(nb201.NUM_ARCHS, 80, replace=False)
    archs = [str(nb201.Arch.from_index(int(i))) for i in index]
    dead = nb201.dead_operation_mask(archs)
    truth = pd.DataFrame({"index": index, "acc": rng.uniform(10, 90, 80)})
    scores = pd.DataFrame({"index": index, "arch": archs, "score": truth["acc"] + rng.standard_normal(80)})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    report = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                str(tmp_path / "scores.csv"),
                "--truth",
                str(tmp_path / "truth.csv"),
                "--target",
                "acc",
                "--bootstrap",
                "10",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "with dead operations: acc Spearman" in out and f"(n={int(dead.sum())})" in out
    subsets = json.loads((report / "evaluation.json").read_text())[-1]["subsets"]
    assert subsets["without dead operations"]["acc"]["n"] == int((~dead).sum())
    assert "| with dead operations |" in (report / "summary.md").read_text()


def test_eval_appendix_ends_the_report_and_a_missing_one_is_named(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    truth = pd.DataFrame({"index": np.arange(40), "acc": rng.uniform(10, 90, 40)})
    truth.assign(score=truth["acc"] + rng.standard_normal(40))[["index", "score"]].to_csv(
        tmp_path / "s.csv", index=False
    )
    truth.to_csv(tmp_path / "truth.csv", index=False)
    (tmp_path / "why.md").write_text("## Analysis\n\nThe gap is the image batch.\n")
    args = [
        "eval",
        str(tmp_path / "s.csv"),
        "--truth",
        str(tmp_path / "truth.csv"),
        "--target",
        "acc",
        "--bootstrap",
        "10",
        "--report",
        str(tmp_path / "report"),
    ]
    assert main([*args, "--appendix", str(tmp_path / "why.md")]) == 0
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert summary.rstrip().endswith("The gap is the image batch.") and summary.index("## Analysis") > summary.index(
        "topk.png"
    )
    capsys.readouterr()
    assert main([*args, "--appendix", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err


def test_report_score_axis_keeps_zero_scores_one_step_from_the_rest():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from gradsign_rs.report import _set_score_scale

    fig, axes = plt.subplots(1, 3)
    _set_score_scale(axes[0], pd.Series([7e5, 1e6, 1e7]))
    _set_score_scale(axes[1], pd.Series([0.0, 0.0, 7e5, 1e7]))  # disconnected cells score 0
    _set_score_scale(axes[2], pd.Series([-67.0, -65.5, -80.0]))  # jacob_cov is negative
    assert axes[0].get_xscale() == "log"
    assert axes[1].get_xscale() == "symlog" and axes[1].xaxis.get_transform().linthresh == 7e5
    assert axes[2].get_xscale() == "symlog" and axes[2].xaxis.get_transform().linthresh == 65.5
    plt.close(fig)
