"""`rabc.metrics`, `rabc.episodes`, `rabc.curation` and their CLI on hand-built episodes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy import stats

from rabc.cli import main
from rabc.curation import curate, read_drop_list
from rabc.episodes import score_episodes
from rabc.metrics import auroc, paper_rule, voc
from rabc.progress_io import read_progress
from rabc.weights import RABCWeights

L = 30
EPISODES = {
    0: np.linspace(0, 1, L),  # clean
    1: np.concatenate([np.linspace(0, 0.5, 10), np.full(10, 0.5), np.linspace(0.5, 1, 10)]),  # stalled
    2: np.concatenate([np.linspace(0, 0.8, 15), np.linspace(0.5, 1, 15)]),  # regressing: falls 0.3
    3: np.linspace(0, 0.3, L),  # failing
}


def _table(episodes=EPISODES, metadata=None, dense=False):
    p = np.concatenate(list(episodes.values())).astype(np.float32)
    ep = np.concatenate([np.full(len(v), e) for e, v in episodes.items()])
    frame = np.concatenate([np.arange(len(v)) for v in episodes.values()])
    cols = {"index": np.arange(len(p)), "episode_index": ep, "frame_index": frame, "progress_sparse": p}
    if dense:
        cols["progress_dense"] = p
    t = pa.table(cols)
    return t.replace_schema_metadata(metadata) if metadata else t


def _runs(episodes=EPISODES):
    n = np.array([len(v) for v in episodes.values()])
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    return np.concatenate(list(episodes.values())), starts, starts + n


def test_voc_matches_scipy_spearman_with_ties_and_nan():
    rng = np.random.default_rng(0)
    eps = {i: np.round(rng.random(rng.integers(3, 40)), 1) for i in range(20)}  # many ties
    eps[20] = np.array([0.2, np.nan, 0.5, 0.4])
    eps[21] = np.array([0.3])  # one frame
    eps[22] = np.full(5, np.nan)  # all NaN
    eps[23] = np.full(6, 0.4)  # constant
    values, starts, ends = _runs(eps)
    got = voc(values, starts, ends)
    for i, v in eps.items():
        ok = ~np.isnan(v)
        if ok.sum() < 2 or np.ptp(v[ok]) == 0:
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(stats.spearmanr(v[ok], np.flatnonzero(ok)).statistic, abs=1e-12)


def test_auroc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(200), 1)
    labels = rng.random(200) < 0.4
    assert auroc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))
    assert np.isnan(auroc(scores, np.ones(200, bool)))


def test_paper_rule_known_answers():
    values, starts, ends = _runs()
    success, final, tail = paper_rule(values, starts, ends)
    assert success.tolist() == [True, True, True, False]
    assert final[3] == pytest.approx(0.3)
    assert tail[0] == pytest.approx(EPISODES[0][-10:].mean())


def test_scores_known_answers():
    s = score_episodes(_table(), chunk_size=5)
    assert s["num_frames"].tolist() == [L] * 4
    assert s["max_drop"][0] == 0 and s["max_drop"][2] == pytest.approx(0.3, abs=1e-6)
    # stalled: 6 frames of the plateau move 0 over 5 frames (frames 10..15 -> 15..20 still 0.5), plus the last
    assert s["stalled_fraction"][1] > s["stalled_fraction"][0]
    assert s["stalled_fraction"][0] == pytest.approx(1 / L)  # only the last frame's delta is 0
    assert s["score"][0] == pytest.approx((1 - 1 / L), abs=1e-6)
    assert s["score"][0] == s["score"].max() and s["score"][3] == s["score"].min()
    assert s["rank"][0] == 1 and s["percentile"][0] == 100 and s["percentile"][3] == 0
    assert s.rows()[0]["episode_index"] == 3  # worst first
    w = RABCWeights.from_progress(_table(), 5)
    assert s["mean_weight"][2] == pytest.approx(w.weights[2 * L : 3 * L].mean())


def test_ranks_per_task():
    tasks = {0: "a", 1: "b", 2: "a", 3: "b"}
    s = score_episodes(_table(), chunk_size=5, tasks=tasks)
    assert s["rank"].tolist() == [1, 1, 2, 2]
    with pytest.raises(ValueError, match="no entry for episode"):
        score_episodes(_table(), chunk_size=5, tasks={0: "a"})


def test_all_nan_and_one_frame_episodes():
    eps = {0: np.linspace(0, 1, L), 1: np.full(10, np.nan), 2: np.array([0.9])}
    s = score_episodes(_table(eps), chunk_size=5)
    assert np.isnan(s["score"][1]) and not s["predicted_success"][1] and np.isnan(s["rank"][1])
    assert s["num_frames"][2] == 1 and s["final_progress"][2] == pytest.approx(0.9)
    assert s.rows()[0]["episode_index"] == 1 and s.rows()[0]["score"] is None


def test_curate_rules_and_reasons(tmp_path):
    s = score_episodes(_table(), chunk_size=5)
    r = curate(s, ["predicted-failures"])
    assert r["drop"] == [3] and r["keep"] == [0, 1, 2] and "predicted failure" in r["reasons"]["3"][0]
    assert '--operation.type delete_episodes --operation.episode_indices "[3]"' in r["lerobot_command"]
    assert curate(s, ["worst:2"])["drop"] == [2, 3]
    assert curate(s, ["max-drop:0.2"])["drop"] == [2]
    assert curate(s, ["below:0"])["drop"] == [] and curate(s, ["below:0"])["lerobot_command"] is None
    (tmp_path / "l.txt").write_text("1, 2\n")
    assert curate(s, [f"list:{tmp_path / 'l.txt'}"])["drop"] == [1, 2]
    (tmp_path / "bad.json").write_text("[1, 99]")
    with pytest.raises(ValueError, match=r"episode\(s\) \[99\]"):
        curate(s, [f"list:{tmp_path / 'bad.json'}"])
    with pytest.raises(ValueError, match="not a rule"):
        curate(s, ["worst"])
    with pytest.raises(ValueError, match="explicit"):
        curate(s, [])


def test_curate_manual_drops_hand_picked_episodes():
    s = score_episodes(_table(), chunk_size=5)
    r = curate(s, [], manual={2: "picked", 0: ""})
    assert r["rules"] == ["manual"] and r["drop"] == [0, 2] and r["keep"] == [1, 3]
    assert r["reasons"] == {"0": ["manual"], "2": ["manual: picked"]}
    both = curate(s, ["predicted-failures"], manual={3: "picked"})
    assert both["rules"] == ["predicted-failures", "manual"] and len(both["reasons"]["3"]) == 2
    assert curate(s, [], manual={})["drop"] == []  # nothing picked: an explicit, empty drop list
    with pytest.raises(ValueError, match=r"episode\(s\) \[9\]"):
        curate(s, [], manual={9: "picked"})
    with pytest.raises(ValueError, match="--drop manual"):
        curate(s, ["manual"])


def test_drop_episodes_get_weight_zero_and_survive_save_load(tmp_path):
    w = RABCWeights.from_progress(_table(), 5, drop_episodes=[1])
    assert (w.weights[L : 2 * L] == 0).all() and w.weights[:L].max() > 0
    assert (w.with_kappa(0.05).weights[L : 2 * L] == 0).all()
    w.save(tmp_path / "w.parquet")
    assert (RABCWeights.load(tmp_path / "w.parquet").with_kappa(0.1).weights[L : 2 * L] == 0).all()
    with pytest.raises(ValueError, match="not in"):
        RABCWeights.from_progress(_table(), 5, drop_episodes=[7])


def test_other_reward_models_schema(tmp_path):
    """A Robometer / TOPReward-style file: sparse only, `reward_model_path` metadata."""
    path = tmp_path / "robometer_progress.parquet"
    pq.write_table(_table(metadata={b"reward_model_path": b"robometer/v1"}), path)
    assert main(["episodes", str(path), "--chunk-size", "5", "--json", str(tmp_path / "e.json")]) == 0
    rows = json.loads((tmp_path / "e.json").read_text())
    keys = {
        "episode_index",
        "task",
        "num_frames",
        "final_progress",
        "max_progress",
        "max_drop",
        "stalled_fraction",
        "mean_weight",
        "zero_weight_fraction",
        "predicted_success",
        "score",
    }
    assert keys <= set(rows[0]) and rows[0]["episode_index"] == 3


def test_cli_curate_then_weights(tmp_path, capsys):
    path = tmp_path / "p.parquet"
    pq.write_table(_table(), path)
    out = tmp_path / "drop.json"
    assert (
        main(["curate", str(path), "--chunk-size", "5", "--drop", "predicted-failures", "-o", str(out)]) == 0
    )
    assert read_drop_list(out) == [3]
    assert (
        main(
            [
                "weights",
                str(path),
                "--chunk-size",
                "5",
                "--drop-episodes",
                str(out),
                "-o",
                str(tmp_path / "w.parquet"),
            ]
        )
        == 0
    )
    assert (RABCWeights.load(tmp_path / "w.parquet").weights[3 * L :] == 0).all()
    capsys.readouterr()
    assert main(["curate", str(path), "--chunk-size", "5", "--drop", "worst:x", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rabc curate: error: --drop worst:x")
    pq.write_table(pa.table({"index": [0], "episode_index": [0]}), tmp_path / "m.parquet")
    assert main(["episodes", str(tmp_path / "m.parquet"), "--chunk-size", "5"]) == 2
    assert "not found" in capsys.readouterr().err


def test_scoring_bar_shows_on_stderr_only_when_slow(tmp_path, capsys, monkeypatch):
    import rabc.cli.episodes

    path = tmp_path / "p.parquet"
    pq.write_table(_table(), path)
    assert main(["episodes", str(path), "--chunk-size", "5"]) == 0
    assert "score episodes" not in capsys.readouterr().err  # a small file: done before the delay
    monkeypatch.setattr(rabc.cli.episodes, "SCORE_BAR_DELAY_S", 0.0)
    assert main(["episodes", str(path), "--chunk-size", "5"]) == 0
    out, err = capsys.readouterr()
    assert "score episodes" in err and "2/2" in err and "score episodes" not in out


def test_length_percentile_by_hand_in_every_output(tmp_path, capsys):
    # lengths 30, 10, 30, 40: sorted 10 < 30 = 30 < 40; the 30s share mean rank (1 + 2) / 2 of 0..3
    eps = {
        0: np.linspace(0, 1, 30),
        1: np.linspace(0, 1, 10),
        2: np.linspace(0, 0.5, 30),
        3: np.linspace(0, 1, 40),
    }
    want = {0: 50.0, 1: 0.0, 2: 50.0, 3: 100.0}
    s = score_episodes(read_progress(_table(eps)), 5)
    assert dict(zip(s["episode_index"].tolist(), s["length_percentile"].tolist(), strict=True)) == want
    assert score_episodes(read_progress(_table({7: np.linspace(0, 1, 5)})), 5)[
        "length_percentile"
    ].tolist() == [50.0]
    path = tmp_path / "p.parquet"
    pq.write_table(_table(eps), path)
    args = ["episodes", str(path), "--chunk-size", "5", "--json", str(tmp_path / "e.json")]
    assert main([*args, "-o", str(tmp_path / "e.csv")]) == 0
    assert "len_pct" in capsys.readouterr().out
    rows = json.loads((tmp_path / "e.json").read_text())
    assert {r["episode_index"]: r["length_percentile"] for r in rows} == want
    csv = pacsv.read_csv(tmp_path / "e.csv").to_pydict()
    assert dict(zip(csv["episode_index"], csv["length_percentile"], strict=True)) == want
    assert main(["episodes", str(path), "--chunk-size", "5", "-o", str(tmp_path / "e.parquet")]) == 0
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    assert dict(zip(table["episode_index"], table["length_percentile"], strict=True)) == want
