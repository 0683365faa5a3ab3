"""The Meta-World report's arithmetic on hand-built results: v2 targets, summary.json, runtime table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sarm.demo.protocol import SUMMARY_SCHEMA

_PATH = Path(__file__).parents[2] / "benchmarks" / "metaworld" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("metaworld_report", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _held(auroc, voc=0.9, mse=0.01):
    return {"auroc_success": auroc, "voc": voc, "demo_mse_clean": mse, "paper_rule_accuracy": 0.8}


def _results(task, best_auroc, rates):
    """One task's results.json: a best SARM with the given held-out AUROC, arms with the given seed rates."""
    runs = {m: [{"seed": s, "success_rate": v} for s, v in enumerate(vals)] for m, vals in rates.items()}
    return {
        "task": task,
        "protocol": {"version": 2},
        "evaluation": {"version": 2},
        "budget": {"quick": False},
        "sarm_best": "sarm_hold_keep",
        "reward_models": {
            "sarm_hold_keep": {"held_out": _held(best_auroc), "policy_rollouts": {"auroc_success": 0.7}},
            "linear_time": {"held_out": _held(float("nan")), "policy_rollouts": {}},
        },
        "policies": runs,
        "timings": {"data_s": 120.0, "policies_s": 600.0},
        "cpu_s": {"data_s": 60.0, "policies_s": 540.0},
    }


def test_targets_are_computed_from_the_means_over_seeds_and_tasks(report):
    a = _results("a", 0.95, {"rabc_sampler_sarm_best": [1.0, 0.6], "rabc_sampler_linear_time": [0.5, 0.5]})
    b = _results("b", 0.85, {"rabc_sampler_sarm_best": [0.4, 0.4], "rabc_sampler_linear_time": [0.4, 0.2]})
    results = {"a": a, "b": b}
    seeds = lambda r, m: [x["success_rate"] for x in r["policies"][m]]  # noqa: E731
    rates = {m: {t: seeds(r, m) for t, r in results.items()} for m in a["policies"]}
    text = "\n".join(report._targets(results, rates))
    assert "| a | sarm_hold_keep | 0.950 | yes |" in text
    assert "| b | sarm_hold_keep | 0.850 | no |" in text
    # sampler: SARM best (0.8 + 0.4) / 2 = 60%, linear time (0.5 + 0.3) / 2 = 40%: +20 points, met
    assert "| sampler | 60% | 40% |" in text and "+20 points | yes |" in text
    assert "| loss |" not in text  # no loss arms in these results: no row, rather than a made-up one


def test_summary_follows_the_schema_and_writes_nan_as_null(report, tmp_path):
    results = {"a": _results("a", 0.95, {"bc_all": [0.2, 0.4, 0.6]})}
    summary = report.summary_of(results)
    assert set(SUMMARY_SCHEMA) <= set(summary)
    assert summary["policies"] == {"bc_all": {"a": [0.2, 0.4, 0.6]}}
    assert summary["reward_models"]["linear_time"]["a"]["auroc_held_out"] is None
    assert summary["reward_models"]["sarm_hold_keep"]["a"]["auroc_rollouts"] == 0.7
    path = report.write_summary(tmp_path, results)
    assert json.loads(path.read_text())["sarm_best"] == {"a": "sarm_hold_keep"}


def test_runtime_table_has_a_row_per_stage_with_wall_and_cpu_minutes(report):
    text = "\n".join(report._runtime({"a": _results("a", 0.9, {})}))
    assert "| stage | a wall | a CPU |" in text
    assert "| data | 2.0 min | 1.0 min |" in text
    assert "| policies | 10.0 min | 9.0 min |" in text


def test_final_progress_is_read_at_each_held_out_episodes_last_frame(report, tmp_path):
    from rabc import ProgressTable, write_progress

    frames = [3, 2, 4, 2]  # episode 0 trains; 1 clean success, 2 failure, 3 clean success (held out)
    r = _results("a", 0.9, {})
    r["episodes"] = [
        {"episode": i, "split": "train" if i == 0 else "held_out", "frames": n, "mistake": None,
         "success": i != 2}
        for i, n in enumerate(frames)
    ]  # fmt: skip
    values = {
        "sarm_hold_keep": [0.1, 0.2, 0.3, 0.5, 0.9, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7],
        "linear_time": [0.0] * 11,
    }
    total = sum(frames)
    for name, column in values.items():
        table = ProgressTable(
            np.arange(total),
            np.repeat(np.arange(4), frames),
            np.concatenate([np.arange(n) for n in frames]),
            {"sparse": np.array(column, np.float32)},
        )
        (tmp_path / "a").mkdir(exist_ok=True)
        write_progress(tmp_path / "a" / f"progress_{name}.parquet", table)
    text = "\n".join(report._final_progress(tmp_path, {"a": r}))
    # last frames: episode 1 -> row 4 (0.9), episode 2 -> row 8 (0.4), episode 3 -> row 10 (0.7)
    assert "| a | sarm_hold_keep | 0.800 (0.700-0.900), n=2 | 0.400 (0.400-0.400), n=1 |" in text
    assert "| a | linear_time | 0.000 (0.000-0.000), n=2 |" in text


def test_weights_by_kind_separate_rising_from_flat_training_episodes(report, tmp_path):
    from rabc import ProgressTable, write_progress

    frames = [10, 10, 5]  # 0: clean success, progress rises; 1: failure, flat; 2: held out
    r = _results("a", 0.9, {})
    r["evaluation"] = {"version": 2, "chunk_size": 2, "kappa": 0.05}
    r["reward_models"] = {"linear_time": {}}
    r["episodes"] = [
        {"episode": i, "split": "held_out" if i == 2 else "train", "frames": n, "mistake": None,
         "success": i != 1}
        for i, n in enumerate(frames)
    ]  # fmt: skip
    column = np.concatenate([np.linspace(0, 0.9, 10), np.full(10, 0.3), np.linspace(0, 1, 5)])
    table = ProgressTable(
        np.arange(25),
        np.repeat(np.arange(3), frames),
        np.concatenate([np.arange(n) for n in frames]),
        {"sparse": column.astype(np.float32)},
    )
    (tmp_path / "a").mkdir()
    for name in ("truth", "linear_time"):
        write_progress(tmp_path / "a" / f"progress_{name}.parquet", table)
    rows = [line for line in report._weights_by_kind(tmp_path, {"a": r}) if line.startswith("| a |")]
    assert [line.split(" | ")[1] for line in rows] == ["truth", "linear_time"]
    clean, noisy, failed = rows[1].strip(" |").split(" | ")[2:]
    assert noisy == "none" and float(clean) > float(failed)
