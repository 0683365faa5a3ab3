"""Tables and plots of the Meta-World benchmark from each task's `results.json` (see run.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

METHOD_NAMES = {
    "bc_all": "BC, all data",
    "rabc_sampler": "RA-BC, sampler (SARM)",
    "rabc_loss": "RA-BC, loss (SARM)",
    "bc_clean": "BC, clean only (oracle)",
    "rabc_true_progress": "RA-BC, sampler (true progress)",
    # v2 (issue 14): every RA-BC arm names its weights' reward model
    "rabc_sampler_sarm_ignore_keep": "RA-BC, sampler (SARM, annotator's labels)",
    "rabc_loss_sarm_ignore_keep": "RA-BC, loss (SARM, annotator's labels)",
    "rabc_sampler_sarm_best": "RA-BC, sampler (SARM, best label policy)",
    "rabc_loss_sarm_best": "RA-BC, loss (SARM, best label policy)",
    "rabc_sampler_linear_time": "RA-BC, sampler (linear time)",
    "rabc_loss_linear_time": "RA-BC, loss (linear time)",
    "rabc_sampler_rewind_single": "RA-BC, sampler (ReWiND-style)",
    "rabc_loss_rewind_single": "RA-BC, loss (ReWiND-style)",
}


def _mean_spread(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.0%} ± {values.std():.0%}" if len(values) > 1 else f"{values.mean():.0%}"


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def write_report(out: Path, tasks: list[str]) -> Path:
    from sarm.demo.plots import plot_episode_weights, plot_success

    results = {
        t: json.loads((out / t / "results.json").read_text())
        for t in tasks
        if (out / t / "results.json").exists()
    }
    lines = ["## Results", ""]
    if not results:
        raise FileNotFoundError(f"no results.json under {out}; run the benchmark first")
    first = next(iter(results.values()))
    lines += [
        f"Budget: {first['budget']}; rendered frames: {all(r['rendered'] for r in results.values())}.",
        "",
        "### Data",
        "",
        "| task | episodes (train / held-out) | with a mistake | succeed: clean / with a mistake |",
        "|---|---|---|---|",
    ]
    for task, r in results.items():
        eps = r["episodes"]
        noisy = [e for e in eps if e["mistake"]]
        clean = [e for e in eps if not e["mistake"]]
        n_train = sum(e["split"] == "train" for e in eps)
        lines.append(
            f"| {task} | {n_train} / {len(eps) - n_train} | {len(noisy)} | "
            f"{sum(e['success'] for e in clean)}/{len(clean)} / "
            f"{sum(e['success'] for e in noisy)}/{len(noisy)} |"
        )
    lines += [
        "",
        "### Reward models",
        "",
        "Held-out episodes: demo MSE on the clean successful ones (every 10th frame), success-vs-failure "
        "AUROC by final progress, accuracy of the paper's rule (final > 0.8 and last-third mean > 0.6). "
        "Policy rollouts: the same for recorded rollouts of the BC-all policy (seed 0).",
        "",
        "| task | model | VOC | demo MSE | AUROC held-out | rule held-out | AUROC rollouts | rule rollouts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        for name, m in r["reward_models"].items():
            h, p = m["held_out"], m.get("policy_rollouts", {})
            lines.append(
                f"| {task} | {name} | {_fmt(h.get('voc'))} | {_fmt(h['demo_mse_clean'], '.4f')} | "
                f"{_fmt(h['auroc_success'])} "
                f"({h['successes']}/{h['episodes']} succeed) | {_fmt(h['paper_rule_accuracy'], '.2f')} | "
                f"{_fmt(p.get('auroc_success'))} ({p.get('successes')}/{p.get('episodes')}) | "
                f"{_fmt(p.get('paper_rule_accuracy'), '.2f')} |"
            )
    lines += [
        "",
        "### Policies",
        "",
        "Success rate over simulator rollouts on goals unseen in the demonstrations, "
        "mean ± std over training seeds.",
        "",
    ]
    plan = first["evaluation"].get("methods") or list(METHOD_NAMES)
    methods = [m for m in plan if all(m in r["policies"] for r in results.values())]
    lines += ["| method | " + " | ".join(results) + " | mean |", "|---" * (len(results) + 2) + "|"]
    rates: dict[str, dict[str, list[float]]] = {}
    for m in methods:
        per_task = [[run["success_rate"] for run in r["policies"][m]] for r in results.values()]
        rates[m] = dict(zip(results, per_task, strict=True))
        overall = np.mean([np.mean(v) for v in per_task])
        lines.append(
            f"| {METHOD_NAMES.get(m, m)} | "
            + " | ".join(_mean_spread(v) for v in per_task)
            + f" | {overall:.0%} |"
        )
    if any(r["weights"].get("kappa_sweep") for r in results.values()):  # v2 runs no sweep
        lines += [
            "",
            "### Kappa (RA-BC sampler, SARM weights)",
            "",
            "| task | kappa | mean weight (train frames) | success |",
            "|---|---|---|---|",
        ]
        for task, r in results.items():
            for key, k in r["weights"]["kappa_sweep"].items():
                name = "rabc_sampler" if key == str(r["evaluation"]["kappa"]) else f"rabc_sampler_kappa_{key}"
                runs = r["policies"].get(name, [])
                lines.append(
                    f"| {task} | {key} ({k['kappa']:.4g}) | {k['mean_weight']:.3f} | "
                    f"{_mean_spread([x['success_rate'] for x in runs]) if runs else 'n/a'} |"
                )
    if any(r.get("sarm_best") for r in results.values()):
        lines += _targets(results, rates)
        lines += _final_progress(out, results)
        lines += _weights_by_kind(out, results)
    lines += _runtime(results)

    plots = out / "plots"
    for task in results:
        plot_success(
            plots / f"success_{task}.png", {METHOD_NAMES.get(m, m): rates[m][task] for m in methods}, task
        )
        _episode_plots(out / task, results[task], plots, plot_episode_weights)
    if any(r.get("sarm_best") for r in results.values()):
        _v2_plots(out, results, rates, plots)
    lines += ["", "Plots: " + ", ".join(f"[{p.name}](plots/{p.name})" for p in sorted(plots.glob("*.png")))]
    if any(r.get("sarm_best") for r in results.values()):
        lines += ["", "SARM chosen for the `_sarm_best` arms: " + ", ".join(
            f"{t}: {r['sarm_best']}" for t, r in results.items())]  # fmt: skip
    summary = write_summary(out, results)
    lines += ["", f"Machine-readable: [{summary.name}]({summary.name})"]
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _targets(results: dict, rates: dict) -> list[str]:
    """The v2 targets (protocol.py, EVALUATION_V2), computed, not judged by hand."""
    lines = [
        "",
        "### Against the targets (Evidence v2)",
        "",
        "| task | SARM chosen | its AUROC held-out | >= 0.9 |",
    ]
    lines.append("|---|---|---|---|")
    for task, r in results.items():
        best = r["sarm_best"]
        auroc = r["reward_models"][best]["held_out"]["auroc_success"]
        met = "n/a" if not np.isfinite(auroc) else ("yes" if auroc >= 0.9 else "no")
        lines.append(f"| {task} | {best} | {_fmt(auroc)} | {met} |")
    lines += ["", "| weighting | SARM best | linear time | ReWiND-style | SARM best - linear time | >= +10 |"]
    lines.append("|---|---|---|---|---|---|")
    for how in ("sampler", "loss"):
        mean = {
            m: float(np.mean([np.mean(v) for v in rates[f"rabc_{how}_{m}"].values()]))
            for m in ("sarm_best", "linear_time", "rewind_single")
            if f"rabc_{how}_{m}" in rates
        }
        if {"sarm_best", "linear_time"} <= set(mean):
            gap = 100 * (mean["sarm_best"] - mean["linear_time"])
            lines.append(
                f"| {how} | {mean['sarm_best']:.0%} | {mean['linear_time']:.0%} | "
                f"{mean.get('rewind_single', float('nan')):.0%} | {gap:+.0f} points | "
                f"{'yes' if gap >= 10 else 'no'} |"
            )
    return lines


def _final_progress(out: Path, results: dict) -> list[str]:
    """Each reward model's last predicted progress on the held-out clean successes and failures: does a
    success end at 1.0 (issue 14), and how far below it does a failure end?"""

    lines = [
        "",
        "### Final progress on held-out episodes",
        "",
        "Mean (min-max) of each model's prediction at an episode's last frame; ground truth ends near 1.0 on "
        "a success.",
        "",
        "| task | model | clean successes | failures |",
        "|---|---|---|---|",
    ]
    for task, r in results.items():
        ends = np.cumsum([e["frames"] for e in r["episodes"]]) - 1
        held = [e for e in r["episodes"] if e["split"] == "held_out"]
        groups = {kind: [e["episode"] for e in held if _kind(e) == kind] for kind in ("clean", "failed")}
        for name in r["reward_models"]:
            last = _progress(out / task / f"progress_{name}.parquet")[ends]
            cells = [
                f"{last[ids].mean():.3f} ({last[ids].min():.3f}-{last[ids].max():.3f}), n={len(ids)}"
                if ids
                else "none"
                for ids in groups.values()
            ]
            lines.append(f"| {task} | {name} | " + " | ".join(cells) + " |")
    return lines


def _weights_by_kind(out: Path, results: dict) -> list[str]:
    """Mean RA-BC weight (the plan's chunk and kappa) of the training frames of clean successes,
    successes with a mistake and failures, per weight source: how much each one filters."""
    from rabc import RABCWeights

    kinds = {"clean": "clean", "noisy": "mistake, success", "failed": "failure"}  # kind -> column
    lines = [
        "",
        "### Mean RA-BC weight by kind of training episode",
        "",
        "| task | weights from | " + " | ".join(kinds.values()) + " |",
        "|---" * (len(kinds) + 2) + "|",
    ]
    for task, r in results.items():
        bounds = np.cumsum([0] + [e["frames"] for e in r["episodes"]])
        rows = {k: [] for k in kinds}
        for e in r["episodes"]:
            if e["split"] == "train":
                rows[_kind(e)].append(np.arange(bounds[e["episode"]], bounds[e["episode"] + 1]))
        for name in ["truth", *r["reward_models"]]:
            w = RABCWeights.from_progress(
                out / task / f"progress_{name}.parquet",
                chunk_size=r["evaluation"]["chunk_size"],
                kappa=r["evaluation"]["kappa"],
            ).weights
            cells = [f"{w[np.concatenate(rows[k])].mean():.2f}" if rows[k] else "none" for k in kinds]
            lines.append(f"| {task} | {name} | " + " | ".join(cells) + " |")
    return lines


def _runtime(results: dict) -> list[str]:
    """Stages as rows, each task's wall and CPU minutes as columns."""
    stages = list(dict.fromkeys(k for r in results.values() for k in r["timings"]))
    head = " | ".join(f"{t} wall | {t} CPU" for t in results)
    lines = [
        "",
        "### Runtime on this CPU (one torch thread per process; CPU: all of a task's processes)",
        "",
        f"| stage | {head} |",
    ]
    lines.append("|---" * (2 * len(results) + 1) + "|")
    for stage in stages:
        cells = []
        for r in results.values():
            wall, cpu = r["timings"].get(stage), r.get("cpu_s", {}).get(stage)
            cells += [f"{wall / 60:.1f} min" if wall is not None else "n/a"]
            cells += [f"{cpu / 60:.1f} min" if cpu is not None else "n/a"]
        lines.append(f"| {stage.removesuffix('_s')} | " + " | ".join(cells) + " |")
    return lines


def _v2_plots(out: Path, results: dict, rates: dict, plots: Path) -> None:
    from sarm.demo.plots import plot_curves, plot_grouped

    tasks = list(results)
    arms = {t: {METHOD_NAMES.get(m, m): v[t] for m, v in rates.items()} for t in tasks}
    plot_grouped(
        plots / "v2_policies.png", arms, title="Policy success per arm (dots: seeds)", ylabel="success"
    )
    for key, label in (("auroc_success", "AUROC held-out"), ("voc", "VOC (clean held-out)")):
        values = {
            t: {name: [m["held_out"].get(key, np.nan)] for name, m in results[t]["reward_models"].items()}
            for t in tasks
        }
        name = "v2_reward_models_" + ("auroc" if key == "auroc_success" else "voc") + ".png"
        plot_grouped(plots / name, values, title=f"Reward models: {label}", ylabel=label, ylim=(-0.05, 1.05))
    for task, r in results.items():
        bounds = np.cumsum([0] + [e["frames"] for e in r["episodes"]])
        truth = _progress(out / task / "progress_truth.parquet")
        models = {n: _progress(out / task / f"progress_{n}.parquet") for n in r["reward_models"]}
        for kind, e in _held_out_picks(r["episodes"]).items():
            if e is None or kind == "clean":
                continue
            rows = slice(bounds[e["episode"]], bounds[e["episode"] + 1])
            plot_curves(
                plots / f"v2_models_{task}_{kind}.png",
                curves={n: v[rows] for n, v in models.items()},
                truth=truth[rows],
                mistake_span=tuple(e["mistake_span"]) if e["mistake_span"] else None,
                title=f"{task}: every reward model on {kind} held-out episode {e['episode']} "
                f"({e['mistake'] or 'no mistake'}, {'success' if e['success'] else 'failure'})",
            )


def _number(x):
    return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else float(x)


def summary_of(results: dict[str, dict]) -> dict:
    """summary.json (`sarm.demo.protocol.SUMMARY_SCHEMA`) from each task's results.json."""
    first = next(iter(results.values()))
    reward: dict[str, dict] = {}
    for task, r in results.items():
        for name, m in r["reward_models"].items():
            held, roll = m["held_out"], m.get("policy_rollouts", {})
            reward.setdefault(name, {})[task] = {
                "voc": _number(held.get("voc")),
                "auroc_held_out": _number(held.get("auroc_success")),
                "auroc_rollouts": _number(roll.get("auroc_success")),
                "demo_mse": _number(held.get("demo_mse_clean")),
                "rule_accuracy_held_out": _number(held.get("paper_rule_accuracy")),
                "rule_accuracy_rollouts": _number(roll.get("paper_rule_accuracy")),
            }
    policies: dict[str, dict] = {}
    for task, r in results.items():
        for method, runs in r["policies"].items():
            policies.setdefault(method, {})[task] = [run["success_rate"] for run in runs]
    return {
        "protocol": {"data": first["protocol"], "evaluation": first["evaluation"], "budget": first["budget"]},
        "policies": policies,
        "reward_models": reward,
        "sarm_best": {t: r.get("sarm_best") for t, r in results.items()},
        "wall_s": {t: r["timings"] for t, r in results.items()},
        "cpu_s": {t: r.get("cpu_s", {}) for t, r in results.items()},
    }


def write_summary(out: Path, results: dict[str, dict]) -> Path:
    path = out / "summary.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary_of(results), indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def _kind(e: dict) -> str:
    """An episode row's kind: "clean" (success, no mistake), "noisy" (success with a mistake), "failed"."""
    return "failed" if not e["success"] else ("noisy" if e["mistake"] else "clean")


@functools.lru_cache(maxsize=64)
def _progress(path: Path) -> np.ndarray:
    """The sparse column of a progress file, read once per report (the tables and plots share it)."""
    from rabc import read_progress

    return read_progress(path).column("sparse")


def _held_out_picks(episodes: list[dict]) -> dict[str, dict | None]:
    """The first clean success, noisy success and failure among the held-out episodes (None if none)."""
    held = [e for e in episodes if e["split"] == "held_out"]
    return {kind: next((e for e in held if _kind(e) == kind), None) for kind in ("clean", "noisy", "failed")}


def _episode_plots(task_dir: Path, r: dict, plots: Path, plot_episode_weights) -> None:
    from rabc import RABCWeights

    episodes = r["episodes"]
    bounds = np.cumsum([0] + [e["frames"] for e in episodes])
    sarm = f"progress_{r.get('sarm_best') or 'sarm'}.parquet"
    predicted = _progress(task_dir / sarm)
    truth = _progress(task_dir / "progress_truth.parquet")
    weights = RABCWeights.from_progress(
        task_dir / sarm,
        chunk_size=r["evaluation"]["chunk_size"],
        kappa=r["evaluation"]["kappa"],
    ).weights
    for kind, e in _held_out_picks(episodes).items():
        if e is not None:
            i = e["episode"]
            rows = slice(bounds[i], bounds[i + 1])
            plot_episode_weights(
                plots / f"episode_{r['task']}_{kind}.png",
                predicted=predicted[rows],
                truth=truth[rows],
                weights=weights[rows],
                mistake_span=tuple(e["mistake_span"]) if e["mistake_span"] else None,
                title=f"{r['task']}: {kind} held-out episode {i} ({e['mistake'] or 'no mistake'}, "
                f"{'success' if e['success'] else 'failure'})",
            )
