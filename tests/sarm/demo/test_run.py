"""`sarm demo`: the reward-model metrics by hand, and the whole pipeline as a small smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sarm.demo.metrics import auroc, demo_mse, paper_rule, success_scores


def test_demo_mse_by_hand():
    predicted = [np.array([0.0, 0.5, 1.0]), np.array([0.2, 0.2])]
    truth = [np.array([0.0, 0.25, 1.0]), np.array([0.0, 0.4])]
    assert demo_mse(predicted, truth) == pytest.approx((0.0625 + 0.04 + 0.04) / 5)
    assert demo_mse(predicted, truth, every=2) == pytest.approx((0 + 0 + 0.04) / 3)
    with pytest.raises(ValueError, match="shape"):
        demo_mse([np.zeros(3)], [np.zeros(2)])


def test_auroc_by_hand():
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0])) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.9]), np.array([1, 1, 0])) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(0.875)  # a tie
    assert np.isnan(auroc(np.array([0.5, 0.6]), np.array([1, 1])))
    assert success_scores([np.array([0.1, 0.7]), np.array([0.9])]).tolist() == [0.7, 0.9]


def test_paper_rule():
    assert paper_rule(np.linspace(0, 1, 30))  # final 1.0, last third mean ~0.83
    assert not paper_rule(np.r_[np.zeros(20), np.ones(10) * 0.5, [0.9]])  # tail too low
    assert not paper_rule(np.linspace(0, 0.79, 30))  # never above 0.8


@pytest.mark.slow(
    reason="`sarm demo --small` end to end (collect, label, train, score, two policies) and the "
    "seed-spread benchmark on its files, as subprocesses: ~50 s idle on 2 cores"
)
def test_sarm_demo_small_runs_every_stage(tmp_path):
    pytest.importorskip("metaworld")
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "sarm.cli", "demo", "--small", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for step in range(1, 7):
        assert f"[{step}/6]" in run.stdout
    assert (
        "policy success over 4 rollouts: BC" in run.stdout
        and "plots:" in run.stdout
        and "sarm explore " in run.stdout
    )
    assert run.stdout.count("smoke run with tiny budgets") == 2  # at the start and beside the numbers
    assert "torch threads: 1 (--threads 1)" in run.stdout and "1 torch thread(s)" in run.stdout
    assert '  task: "pick-place-v3"' in run.stdout and "assembly-v3" not in run.stdout  # only the task run
    for bar in ("train bc", "train sampler", "rollouts bc", "rollouts sampler"):  # stage 6 is not silent
        assert bar in run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["success_rate"]) == {"bc", "sampler"} and summary["torch_threads"] == 1
    assert all(0 <= r <= 1 for r in summary["success_rate"].values())
    assert summary["episodes"] == {"train": 12, "held_out": 4, "rendered": summary["episodes"]["rendered"]}
    # SARM trains under the default label policy, from the dataset's own mistake and outcome records
    assert "(mistakes hold, failures exclude)" in run.stdout
    report = summary["sarm_report"]
    assert report["label_policy"] == {"order": "error", "mistakes": "hold", "failures": "exclude"}
    table = json.loads((out / "episodes.json").read_text())
    failed = sorted(e["episode"] for e in table if e["split"] == "train" and not e["success"])
    noisy = sorted(e["episode"] for e in table if e["split"] == "train" and e["mistake"])
    assert report["excluded_failures"] == failed
    assert set(report["mistake_episodes"]) <= set(noisy) and (report["mistake_episodes"] or not noisy)

    from rabc import RABCWeights, read_progress
    from sarm.data import open_dataset
    from sarm.labels.annotations import read_lerobot_annotations

    ds = open_dataset(out / "dataset")
    episodes = json.loads((out / "episodes.json").read_text())
    assert len(ds.episodes) == len(episodes) == 16
    assert sum(e["frames"] for e in episodes) == ds.num_frames
    progress = read_progress(out / "sarm_progress.parquet")
    assert len(progress) == ds.num_frames and np.isfinite(progress.column("sparse")).all()
    assert len(RABCWeights.load(out / "rabc_weights.parquet")) == ds.num_frames
    spans = read_lerobot_annotations(out / "dataset", head="sparse")
    assert all(s[0].name == "reach" for s in spans.values())
    assert (out / "plots" / "success.png").is_file()
    assert list((out / "plots").glob("progress_*.png"))

    # the seed-spread benchmark rebuilds stage 6 from the demo's files: its seed 0 is the demo's own run
    bench = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_demo_seeds.py"
    seeds = subprocess.run(
        [sys.executable, str(bench), "--demo", str(out), "--small", "--seeds", "0", "1", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert seeds.returncode == 0, seeds.stderr[-3000:]
    assert "policy seed 0 reproduces the demo's own run" in seeds.stdout
    record = json.loads((out / "policy_seeds.json").read_text())
    assert record["policy_seeds"] == [0, 1] and record["torch_threads"] == 1
    assert {m: rates[0] for m, rates in record["success_rate"].items()} == summary["success_rate"]
    assert "| mean (range) |" in seeds.stdout
