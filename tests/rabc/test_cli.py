import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from rabc.cli import main
from rabc.weights import RABCWeights


def test_weights_command_writes_the_same_weights_as_the_api(tmp_path, fixtures_dir, capsys):
    progress = fixtures_dir / "sarm_progress.parquet"
    out = tmp_path / "w.parquet"
    assert main(["weights", str(progress), "--chunk-size", "5", "--kappa", "0.05", "-o", str(out)]) == 0
    expected = RABCWeights.from_progress(progress, chunk_size=5, kappa=0.05)
    np.testing.assert_array_equal(RABCWeights.load(out).weights, expected.weights)
    assert "wrote" in capsys.readouterr().out


def test_kappa_auto_and_diagnose_on_a_weights_file(tmp_path, fixtures_dir, capsys):
    out = tmp_path / "w.parquet"
    progress = str(fixtures_dir / "sarm_progress.parquet")
    assert main(["weights", progress, "--chunk-size", "5", "--kappa", "auto", "-o", str(out)]) == 0
    w = RABCWeights.load(out)
    assert w.mean_weight <= 0.55 + 1e-6 and w.kappa > 0
    assert main(["diagnose", str(out), "--json", str(tmp_path / "d.json")]) == 0
    metrics = json.loads((tmp_path / "d.json").read_text())["metrics"]
    assert metrics["kappa"] == pytest.approx(w.kappa)


def test_diagnose_plot(tmp_path, fixtures_dir):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "p.png"
    progress = str(fixtures_dir / "sarm_progress.parquet")
    assert main(["diagnose", progress, "--chunk-size", "5", "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 1000


def test_errors_are_one_line_with_exit_code_2(tmp_path, fixtures_dir, capsys):
    assert main(["diagnose", str(tmp_path / "missing.parquet"), "--chunk-size", "5"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["diagnose", str(fixtures_dir / "sarm_progress.parquet")]) == 2
    assert "--chunk-size is required" in capsys.readouterr().err
    assert (
        main(
            ["diagnose", str(fixtures_dir / "sarm_progress.parquet"), "--chunk-size", "5", "--head", "dense"]
        )
        == 2
    )
    assert "progress_dense" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["weights", "x.parquet", "--kappa", "lots", "-o", "y"])


def test_demo_runs_offline_on_the_bundled_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kappa auto" in out
    w = RABCWeights.load(tmp_path / "rabc_weights.parquet")
    assert len(w) > 1000 and 0.3 <= w.mean_weight <= 0.8
    assert pq.read_metadata(tmp_path / "rabc_weights.parquet").num_rows == len(w)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "diagnostics_kappa_0.01.png",
        "diagnostics_kappa_auto.png",
    ]
