"""`sarm eval` beside episode length: `auroc_length`, `auroc_length_controlled` and the verdict, on
progress files whose answer is known (pure elapsed time; a signal that ignores length; Meta-World's
shape, where every failure runs to the cap)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rabc.progress_io import read_progress
from sarm.cli import main
from sarm.eval import evaluate

NOTHING_BEYOND = "the model adds nothing beyond episode length"
BEYOND = "beyond what length tells"
CANNOT = "cannot be shown to add anything beyond episode length"


def _episodes(n=2000, seed=0):
    """Lengths 50-220 frames; short episodes tend to fail (aborted early)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 221, n)
    success = rng.random(n) < 1 / (1 + np.exp(-(lengths - 135) / 15))
    return lengths, success


def _file(lengths, final_of, path=None):
    """A progress file: episode e ramps linearly to `final_of(e, frame, length)` per frame."""
    ep = np.repeat(np.arange(len(lengths)), lengths)
    frame = np.concatenate([np.arange(n) for n in lengths])
    progress = final_of(ep, frame, lengths[ep]).astype(np.float32)
    t = pa.table(
        {"index": np.arange(len(ep)), "episode_index": ep, "frame_index": frame, "progress_sparse": progress}
    )
    if path is None:
        return read_progress(t)
    pq.write_table(t, path)
    return path


def _pure_time(lengths):
    return lambda ep, frame, length: frame / lengths.max()  # elapsed time, the same clock for every episode


def _signal(success, seed=1):
    rng = np.random.default_rng(seed)
    end = np.where(success, rng.uniform(0.6, 1.0, len(success)), rng.uniform(0.3, 0.7, len(success)))
    return lambda ep, frame, length: end[ep] * frame / (length - 1)  # ramps to its end, whatever the length


def test_pure_elapsed_time_adds_nothing_beyond_length():
    lengths, success = _episodes()
    r = evaluate(_file(lengths, _pure_time(lengths)), success=dict(enumerate(success.tolist())))
    assert r["auroc"] > 0.9  # long episodes succeed, and pure time ends high on long episodes
    assert r["auroc_length"] < 0.1  # shorter = success is this data's wrong way round: 1 - x separates
    assert abs(r["auroc_length_controlled"] - 0.5) < 0.1
    assert NOTHING_BEYOND in r["verdict"]


def test_a_signal_independent_of_length_keeps_a_high_controlled_auroc():
    lengths, success = _episodes()
    r = evaluate(_file(lengths, _signal(success)), success=dict(enumerate(success.tolist())))
    assert r["auroc"] > 0.9 and r["auroc_length_controlled"] > 0.9  # 1 - 1/32 in expectation, both
    assert BEYOND in r["verdict"] and NOTHING_BEYOND not in r["verdict"]


def test_length_alone_separates_metaworld_style_so_controlled_is_null():
    lengths = np.array([58, 61, 92, 106, 140, 159, 220, 220])  # every failure runs to the 220-frame cap
    success = {e: e < 6 for e in range(8)}
    r = evaluate(_file(lengths, lambda ep, frame, length: frame / 220), success=success)
    assert r["auroc"] == 0.0 and r["auroc_length"] == 1.0  # pure time: the failures end highest
    assert r["auroc_length_controlled"] is None and CANNOT in r["verdict"]


def test_keys_per_task_and_null_without_outcomes():
    lengths = np.array([10, 10, 10, 20, 20, 20])
    ends = np.array([0.9, 0.5, 0.5, 0.2, 0.8, 0.8])
    t = _file(lengths, lambda ep, frame, length: np.where(frame == length - 1, ends[ep], 0.0))
    success = dict(enumerate([True, False, True, False, True, False]))
    tasks = {e: "a" if e < 3 else "b" for e in range(6)}
    r = evaluate(t, success=success, tasks=tasks)
    # by hand (tests/rabc/test_length_metrics.py): within the 10- and 20-frame strata 1.5 of 2 pairs each
    assert r["auroc"] == pytest.approx(7 / 9) and r["auroc_length_controlled"] == pytest.approx(0.75)
    # shorter = success: each 10-frame success beats both 20-frame failures and ties the 10-frame one
    # (2.5 each), the 20-frame success ties both 20-frame failures (1): 6 of 9 pairs
    assert r["auroc_length"] == pytest.approx(2 / 3)
    assert r["per_task"]["a"]["auroc_length_controlled"] == pytest.approx(0.75)  # 0.9 > 0.5, 0.5 = 0.5
    assert r["per_task"]["b"]["auroc_length"] == 0.5  # one length only
    bare = evaluate(t)
    assert bare["auroc_length"] is None and bare["auroc_length_controlled"] is None
    assert "length-controlled" not in bare["verdict"]


def test_cli_json_and_printout(tmp_path, capsys):
    lengths, success = _episodes()
    outcomes = tmp_path / "s.json"
    outcomes.write_text(json.dumps({str(e): bool(s) for e, s in enumerate(success)}))
    for name, final_of, says in (
        ("time", _pure_time(lengths), NOTHING_BEYOND),
        ("signal", _signal(success), BEYOND),
    ):
        path = _file(lengths, final_of, tmp_path / f"{name}.parquet")
        out = tmp_path / f"{name}.json"
        assert main(["eval", str(path), "--success", str(outcomes), "--json", str(out)]) == 0
        r = json.loads(out.read_text())
        assert {"auroc", "auroc_length", "auroc_length_controlled"} <= set(r) and says in r["verdict"]
        printed = capsys.readouterr().out
        assert "episode length alone" in printed and "length-controlled" in printed and says in printed
        if name == "time":
            assert r["auroc"] > 0.9 and abs(r["auroc_length_controlled"] - 0.5) < 0.1
        else:
            assert r["auroc_length_controlled"] > 0.9
    meta = _file(
        np.array([58, 61, 92, 220, 220]), lambda ep, frame, length: frame / 220, tmp_path / "m.parquet"
    )
    (tmp_path / "m.json").write_text(json.dumps({"0": True, "1": True, "2": True, "3": False, "4": False}))
    assert (
        main(["eval", str(meta), "--success", str(tmp_path / "m.json"), "--json", str(tmp_path / "mo.json")])
        == 0
    )
    assert json.loads((tmp_path / "mo.json").read_text())["auroc_length_controlled"] is None
    assert "length-controlled n/a" in capsys.readouterr().out
