"""Does the Meta-World benchmark's success AUROC measure more than episode length? (issue K, item 3)

    python benchmarks/metaworld/length_check.py --out /tmp/length_check       # 3 tasks, one at a time
    python benchmarks/metaworld/length_check.py --out /tmp/lc --tasks pick-place-v3   # one task
    python benchmarks/metaworld/length_check.py --out /tmp/lc --report        # the tables only

For each task of the committed Evidence v2 run (`results/<task>/results.json`) it records the data
again under the same protocol (`run._recorded`), extracts the same features and trains the same
`linear_time` and `sarm_hold_exclude` reward models (`reward_models.train_reward_model`; no policies).
It first checks that their held-out AUROC of final progress equals the committed one, then adds the
AUROC of episode length alone and the length-controlled AUROC of `rabc.metrics` (docs/curation.md,
"Success AUROC and episode length") on the same held-out episodes 100-124. The tables go to
`results/length_check.md` and `results/length_check.json`. A killed run resumes with the same command:
recordings, features and trained reward models are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run.py, reward_models.py
MODELS = ("linear_time", "sarm_hold_exclude")
TOLERANCE = 1e-9  # the committed AUROC must come back to this


def check_task(task: str, out: Path, results: Path) -> dict:
    """The task's held-out AUROCs (plain, length alone, length-controlled) for `MODELS`, in `out`."""
    import torch
    from reward_models import reward_metrics, reward_model_specs, train_reward_model
    from run import Budget, _recorded

    from sarm.data import open_dataset
    from sarm.demo.protocol import DEFAULT_PROTOCOL, EVALUATION_V2
    from sarm.demo.record import progress_by_episode
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features

    torch.set_num_threads(1)
    committed = json.loads((results / task / "results.json").read_text())
    budget = Budget()
    out.mkdir(parents=True, exist_ok=True)
    before = out / "length_check.json"  # a rerun keeps the wall times of the stages it reuses
    was_s = json.loads(before.read_text())["wall_s"] if before.exists() else {}
    fresh = not (out / "dataset.recorded.json").exists()
    start = time.perf_counter()
    total = budget.train_episodes + budget.held_out_episodes
    episodes, rendered = _recorded(out, "dataset", task, list(range(total)), DEFAULT_PROTOCOL)
    cache = extract_features(
        open_dataset(out / "dataset"), load_encoder("pixels"), out / "features", progress=False
    )
    wall = {"data_s": time.perf_counter() - start if fresh else was_s.get("data_s")}
    held = list(range(budget.train_episodes, total))
    bounds = np.cumsum([0] + [len(ep.states) for ep in episodes])
    lengths = np.diff(bounds)[held]
    success = np.array([episodes[i].success for i in held])
    frames = {e["episode"]: e["frames"] for e in committed["episodes"]}
    same_data = all(frames[i] == len(episodes[i].states) for i in range(total)) and all(
        e["success"] == episodes[e["episode"]].success for e in committed["episodes"]
    )
    specs = reward_model_specs(EVALUATION_V2)
    row = {"task": task, "rendered": rendered, "same_episodes_as_committed": same_data, "models": {}}
    for name in MODELS:
        t0 = time.perf_counter()
        path = out / f"progress_{name}.parquet"
        key = f"reward_model_{name}_s"
        if path.exists():
            wall[key] = was_s.get(key)
        else:
            train_reward_model(
                out, name, specs[name], cache, list(range(budget.train_episodes)), budget.sarm_steps
            )
            wall[key] = time.perf_counter() - t0
        from rabc.metrics import auroc_length, auroc_length_controlled  # after the slow part

        predicted = progress_by_episode(path, bounds)
        metrics = reward_metrics(predicted, episodes, held)
        final = np.array([predicted[i][-1] for i in held], np.float64)
        was = committed["reward_models"][name]["held_out"]["auroc_success"]
        row["models"][name] = {
            "auroc": metrics["auroc_success"],
            "auroc_committed": was,
            "reproduced": bool(abs(metrics["auroc_success"] - was) <= TOLERANCE),
            "auroc_length": auroc_length(lengths, success),
            "auroc_length_controlled": _none(auroc_length_controlled(final, lengths, success)),
            "voc": metrics["voc"],
            "demo_mse_clean": metrics["demo_mse_clean"],
            "demo_mse_clean_committed": committed["reward_models"][name]["held_out"]["demo_mse_clean"],
        }
        print(f"{task} {name}: {row['models'][name]}", flush=True)
    row["held_out"] = {
        "episodes": len(held),
        "failures": int((~success).sum()),
        "success_frames": sorted(lengths[success].tolist()),
        "failure_frames": sorted(lengths[~success].tolist()),
    }
    row["wall_s"] = wall
    (out / "length_check.json").write_text(json.dumps(row, indent=1))
    return row


def _none(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def write_report(rows: list[dict], results: Path) -> Path:
    """`results/length_check.md` and `.json` from the finished tasks' rows."""
    lines = [
        "# Success AUROC against episode length (Meta-World v2, held-out episodes 100-124)",
        "",
        "Written by `benchmarks/metaworld/length_check.py`: the data and the two reward models were",
        "trained again under the committed protocol; AUROC is that of final progress (`sarm eval`'s",
        "`auroc`), length is episode length alone (shorter = success), controlled is the AUROC within",
        "length-matched strata (docs/curation.md). n/a: no stratum holds both a success and a failure.",
        "",
        "| task | model | AUROC (committed) | reproduced | AUROC of length | length-controlled "
        "| demo MSE (committed) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name, m in row["models"].items():
            lines.append(
                f"| {row['task']} | {name} | {_fmt(m['auroc'])} ({_fmt(m['auroc_committed'])}) | "
                f"{'yes' if m['reproduced'] else 'NO'} | {_fmt(m['auroc_length'])} | "
                f"{_fmt(m['auroc_length_controlled'])} | {m['demo_mse_clean']:.4f} "
                f"({m['demo_mse_clean_committed']:.4f}) |"
            )
    lines += [
        "",
        "| task | held-out failures | success lengths (frames) | failure lengths (frames) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        h = row["held_out"]
        lines.append(
            f"| {row['task']} | {h['failures']} of {h['episodes']} | {min(h['success_frames'])}-"
            f"{max(h['success_frames'])} | {', '.join(map(str, sorted(set(h['failure_frames']))))} |"
        )
    lines += ["", "Wall seconds per stage:", ""]
    for row in rows:
        note = f" ({row['wall_s_note']})" if row.get("wall_s_note") else ""
        lines.append(f"- {row['task']}: {json.dumps(row['wall_s'])}{note}")
    md = results / "length_check.md"
    md.write_text("\n".join(lines) + "\n")
    (results / "length_check.json").write_text(json.dumps({r["task"]: r for r in rows}, indent=1))
    return md


def main() -> None:
    from sarm.demo.protocol import DEFAULT_PROTOCOL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (datasets, features, models)")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_PROTOCOL.tasks))
    parser.add_argument("--results", type=Path, default=HERE / "results", help="committed results folder")
    parser.add_argument("--report", action="store_true", help="only write the tables from finished tasks")
    args = parser.parse_args()
    if not args.report:
        for task in args.tasks:
            check_task(task, args.out / task, args.results)
    rows = [
        json.loads((args.out / t / "length_check.json").read_text())
        for t in DEFAULT_PROTOCOL.tasks
        if (args.out / t / "length_check.json").exists()
    ]
    print(write_report(rows, args.results).read_text())


if __name__ == "__main__":
    main()
