"""`sarm.eval.evaluate` and `sarm eval` on hand-built episodes; metrics checked against scipy / sklearn."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from rabc.progress_io import read_progress
from sarm.cli import main
from sarm.eval import evaluate

EPISODES = {
    0: np.linspace(0, 1, 30),  # clean success
    1: np.concatenate([np.linspace(0, 0.9, 20), np.full(10, 0.9)]),  # stalls at the end, success
    2: np.concatenate([np.linspace(0, 0.8, 15), np.linspace(0.5, 0.6, 15)]),  # regresses, fails
    3: np.linspace(0, 0.3, 30)[::-1].copy(),  # falls: a failure with VOC -1
}
SUCCESS = {0: True, 1: True, 2: False, 3: False}


def _table(path=None):
    p = np.concatenate(list(EPISODES.values())).astype(np.float32)
    ep = np.concatenate([np.full(len(v), e) for e, v in EPISODES.items()])
    fr = np.concatenate([np.arange(len(v)) for v in EPISODES.values()])
    t = pa.table({"index": np.arange(len(p)), "episode_index": ep, "frame_index": fr, "progress_sparse": p})
    t = t.replace_schema_metadata({b"reward_model_path": b"topreward/x"})  # another reward model's file
    if path is None:
        return read_progress(t)
    pq.write_table(t, path)
    return path


def test_voc_on_successful_episodes_and_auroc():
    sk = pytest.importorskip("sklearn.metrics")
    r = evaluate(_table(), success=SUCCESS)
    want = np.mean([stats.spearmanr(EPISODES[e].astype(np.float32), np.arange(30)).statistic for e in (0, 1)])
    assert r["voc"]["mean"] == pytest.approx(want) and r["voc"]["episodes"] == 2
    finals = [EPISODES[e][-1] for e in range(4)]
    assert r["auroc"] == pytest.approx(sk.roc_auc_score([1, 1, 0, 0], finals))
    assert r["paper_rule_accuracy"] == 1.0 and r["demo_mse"] is None and r["paper_rho"] is None
    assert r["worst_voc_episodes"][0] == 3


def test_without_outcomes_every_episode_counts_and_json_keys_are_null():
    r = evaluate(_table())
    assert r["voc"]["episodes"] == 4 and r["auroc"] is None and r["paper_rule_accuracy"] is None
    assert {"voc", "demo_mse", "auroc", "paper_rule_accuracy", "per_task"} <= set(r)


def test_paper_rho_labels_mse_and_per_task():
    t = _table()
    levels = {0: 2, 1: 1, 2: 1, 3: 0}
    labels = np.concatenate([np.linspace(0, 1, 30)] * 4)
    r = evaluate(t, success=SUCCESS, levels=levels, tasks={0: "a", 1: "a", 2: "b", 3: "b"}, labels=labels)
    finals = [float(np.float32(EPISODES[e][-1])) for e in range(4)]
    assert r["paper_rho"] == pytest.approx(stats.spearmanr(finals, [2, 1, 1, 0]).statistic)
    p = t.column("sparse").astype(np.float64)
    assert r["demo_mse"] == pytest.approx(np.mean((p - labels) ** 2))
    assert r["per_task"]["b"]["auroc"] is None and r["per_task"]["a"]["voc"]["episodes"] == 2


def test_verdict_says_noise():
    bad = {0: True, 1: True, 2: True, 3: True}
    r = evaluate(_table(), success=bad)
    assert r["voc"]["mean"] < 0.5 or "follows" in r["verdict"]
    noisy = np.random.default_rng(0).random(120).astype(np.float32)
    t = pa.table(
        {
            "index": np.arange(120),
            "episode_index": np.repeat(np.arange(4), 30),
            "frame_index": np.tile(np.arange(30), 4),
            "progress_sparse": noisy,
        }
    )
    assert "close to noise" in evaluate(read_progress(t))["verdict"]


def test_cli(tmp_path, capsys):
    path = _table(tmp_path / "p.parquet")
    (tmp_path / "s.json").write_text(json.dumps({str(k): v for k, v in SUCCESS.items()}))
    assert (
        main(["eval", str(path), "--success", str(tmp_path / "s.json"), "--json", str(tmp_path / "o.json")])
        == 0
    )
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["paper_rule_accuracy"] == 1.0 and "verdict:" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"7": true}')
    assert main(["eval", str(path), "--success", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("sarm eval: error: --success names episode(s) [7]")
