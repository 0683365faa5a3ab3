"""`sarm demo`: the whole pipeline on a small noisy Meta-World dataset, offline, in minutes on a CPU.

    sarm demo --out sarm_demo          # minutes on a CPU; `--small` for a 1-minute smoke run
    sarm demo --threads 1              # torch threads (default: one per core the load leaves free)

1. demonstrations: scripted experts with the protocol's mistakes -> a LeRobot v3.0 dataset with SARM
   annotation columns (`sarm.data.writer`), plus ground-truth progress and success per episode;
2. features: every frame encoded once (the offline `pixels` encoder: no model download);
3. SARM: a small model trained on the annotated training episodes (rewind augmentation on);
4. progress on every frame -> `sarm_progress.parquet`; reward-model metrics on held-out episodes;
5. RA-BC weights, diagnostics and plots;
6. the same small policy trained with BC and with RA-BC (weighted sampler), success over simulator
   rollouts on goals not seen in training, side by side (`compare_policies`; the spread of that
   stage over seeds is measured by `benchmarks/bench_demo_seeds.py`, and the demo says where its own
   number sits in it: `sarm.demo.spread`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from pathlib import Path

import numpy as np

from sarm.demo.config import REWARD_MODEL_SIZE, SMOKE_NOTICE, DemoConfig, reward_model_config, set_threads
from sarm.demo.metrics import auroc, demo_mse, paper_rule, success_scores
from sarm.demo.protocol import DEFAULT_EVALUATION, DEFAULT_PROTOCOL, Evaluation, Protocol
from sarm.demo.record import episode_table, progress_by_episode, record_dataset

__all__ = ["compare_policies", "run_demo"]


def _say(step: int, text: str) -> None:
    print(f"[{step}/6] {text}", flush=True)


def run_demo(
    out: str | Path,
    config: DemoConfig | None = None,
    protocol: Protocol = DEFAULT_PROTOCOL,
    evaluation: Evaluation = DEFAULT_EVALUATION,
) -> dict:
    import torch

    from rabc import RABCWeights, diagnose
    from sarm.data import open_dataset
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features
    from sarm.inference.progress import compute_progress
    from sarm.labels.annotations import read_lerobot_annotations
    from sarm.labels.records import read_mistakes, read_outcomes
    from sarm.training.from_cache import train_from_cache

    config = DemoConfig() if config is None else config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    threads = set_threads(config.threads)
    if config.smoke:
        print(SMOKE_NOTICE, flush=True)
    print(threads, flush=True)
    print("protocol:", protocol.describe(task=config.task), sep="\n")

    total = config.train_episodes + config.held_out_episodes
    _say(1, f"{total} demonstrations of {config.task} ({protocol.noisy_share:.0%} with one mistake)")
    root = out / "dataset"
    if root.exists():
        raise FileExistsError(f"`{root}` exists: run the demo into a new --out directory")
    episodes, render = record_dataset(root, config.task, list(range(total)), protocol)
    held_out = set(range(config.train_episodes, total))
    (out / "episodes.json").write_text(json.dumps(episode_table(episodes, held_out), indent=1))

    _say(2, "frame features (offline pixels encoder)")
    cache = extract_features(open_dataset(root), load_encoder("pixels"), out / "features", progress=True)

    _say(
        3,
        f"SARM: {config.sarm_steps} steps on {config.train_episodes} annotated episodes "
        f"(mistakes {config.mistakes}, failures {config.failures})",
    )
    spans = read_lerobot_annotations(root, head="sparse")
    train_spans = {e: s for e, s in spans.items() if e not in held_out}
    labels = {}  # the protocol's record of its injected mistakes and the success flags
    if config.mistakes != "ignore":
        labels["mistake_spans"] = {e: m for e, m in read_mistakes(root).items() if e not in held_out}
    if config.failures != "keep":
        labels["outcomes"] = {e: o for e, o in read_outcomes(root).items() if e not in held_out}
    model, _, report = train_from_cache(
        cache,
        out / "sarm",
        annotations={"sparse": train_spans},
        config=reward_model_config(config.sarm_steps, seed=config.seed, evaluations=3),
        eval_fraction=0.1,
        model_overrides=REWARD_MODEL_SIZE,
        mistakes=config.mistakes,
        failures=config.failures,
        **labels,
    )

    _say(4, "progress on every frame")
    progress_path = compute_progress(model.eval(), cache, out / "sarm_progress.parquet")
    bounds = np.cumsum([0] + [len(ep.states) for ep in episodes])
    predicted = progress_by_episode(progress_path, bounds)
    held = sorted(held_out)
    clean = [i for i in held if episodes[i].mistake is None and episodes[i].success]
    metrics = {
        "held_out_episodes": len(held),
        "demo_mse_clean_held_out": demo_mse(
            [predicted[i] for i in clean], [episodes[i].progress for i in clean]
        )
        if clean
        else float("nan"),
        "auroc_success_held_out": auroc(
            success_scores([predicted[i] for i in held]), np.array([episodes[i].success for i in held])
        ),
        "paper_rule_accuracy_held_out": float(
            np.mean([paper_rule(predicted[i]) == episodes[i].success for i in held])
        ),
    }

    _say(5, "RA-BC weights and diagnostics")
    chunk = evaluation.chunk_size
    weights = RABCWeights.from_progress(progress_path, chunk_size=chunk, kappa=config.kappa)
    weights.save(out / "rabc_weights.parquet")
    diagnosis = diagnose(weights)
    print(diagnosis)
    _plots(out, episodes, predicted, weights.weights, bounds, held)

    _say(6, f"policies: BC vs RA-BC (sampler), {config.policy_steps} steps, {config.rollouts} rollouts each")
    train_ids = [i for i in range(total) if i not in held_out]
    rows = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in train_ids])
    results = compare_policies(
        np.concatenate([episodes[i].states for i in train_ids]),
        np.concatenate([episodes[i].actions for i in train_ids]),
        np.concatenate([np.full(len(episodes[i].states), i) for i in train_ids]),
        weights.weights[rows],
        config,
        evaluation,
        progress_bar=True,
    )
    summary = {
        "task": config.task,
        "config": dataclasses.asdict(config),
        "episodes": {"train": len(train_ids), "held_out": len(held), "rendered": render},
        "reward_model": metrics,
        "mean_weight": weights.mean_weight,
        "kappa": weights.kappa,
        "success_rate": {m: r["success_rate"] for m, r in results.items()},
        "minutes": (time.perf_counter() - start) / 60,
        "torch_threads": torch.get_num_threads(),
        "sarm_report": report,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    from sarm.demo.plots import plot_success

    plot_success(
        out / "plots" / "success.png",
        {"BC": [results["bc"]["success_rate"]], "RA-BC (sampler)": [results["sampler"]["success_rate"]]},
        f"{config.task}: success over {config.rollouts} rollouts",
    )
    _print_summary(out, summary)
    return summary


def compare_policies(
    states: np.ndarray,
    actions: np.ndarray,
    episode_index: np.ndarray,
    weights: np.ndarray,
    config: DemoConfig,
    evaluation: Evaluation = DEFAULT_EVALUATION,
    *,
    seed: int | None = None,
    progress_bar: bool = False,
) -> dict[str, dict]:
    """Stage 6: the same policy trained by BC and by RA-BC (sampler), each rolled out in the simulator.

    `states`, `actions`, `episode_index` and `weights` are the training frames (float (n, 39), (n, 4),
    int (n,), float (n,)); `seed` (default `config.seed`) seeds the policies' training and the
    evaluation goals. Returns `{"bc": ..., "sampler": ...}`, each `sarm.demo.policy.evaluate`'s result.
    The global torch RNG is left as it was.
    """
    import torch

    from sarm.demo.policy import evaluate, train_policy

    seed = config.seed if seed is None else seed
    results = {}
    with torch.random.fork_rng():
        for method, w in (("bc", None), ("sampler", weights)):
            policy = train_policy(
                states,
                actions,
                episode_index,
                method=method,
                weights=w,
                chunk_size=evaluation.chunk_size,
                steps=config.policy_steps,
                batch_size=evaluation.batch_size,
                seed=seed,
                progress_bar=progress_bar,
            )
            results[method] = evaluate(
                policy, config.task, rollouts=config.rollouts, seed=seed, progress_bar=progress_bar and method
            )
    return results


def _plots(out: Path, episodes, predicted, weights, bounds, held) -> None:
    from sarm.demo.plots import plot_episode_weights

    kinds = {
        "clean": next((i for i in held if episodes[i].mistake is None and episodes[i].success), None),
        "noisy": next((i for i in held if episodes[i].mistake and episodes[i].success), None),
        "failed": next((i for i in held if not episodes[i].success), None),
    }
    for kind, i in kinds.items():
        if i is not None:
            ep = episodes[i]
            plot_episode_weights(
                out / "plots" / f"progress_{kind}_episode_{i}.png",
                predicted=predicted[i],
                truth=ep.progress,
                weights=weights[bounds[i] : bounds[i + 1]],
                mistake_span=ep.mistake_span,
                title=f"{kind} held-out episode {i} ({ep.mistake or 'no mistake'}, "
                f"{'success' if ep.success else 'failure'})",
            )


def _print_summary(out: Path, summary: dict) -> None:
    rm, sr = summary["reward_model"], summary["success_rate"]
    print()
    print(
        f"== sarm demo: {summary['task']}, {summary['minutes']:.1f} min, "
        f"{summary['torch_threads']} torch thread(s)"
    )
    if summary["config"]["smoke"]:
        print(SMOKE_NOTICE)
    print(
        f"reward model on {rm['held_out_episodes']} held-out episodes: demo MSE (clean) "
        f"{rm['demo_mse_clean_held_out']:.4f}, success AUROC {rm['auroc_success_held_out']:.3f}, "
        f"paper rule accuracy {rm['paper_rule_accuracy_held_out']:.2f}"
    )
    print(f"RA-BC weights: kappa {summary['kappa']:.4g}, mean weight {summary['mean_weight']:.3f}")
    print(
        f"policy success over {summary['config']['rollouts']} rollouts: BC {sr['bc']:.0%}  |  "
        f"RA-BC (sampler) {sr['sampler']:.0%}"
    )
    if not summary["config"]["smoke"]:
        from sarm.demo.spread import load_spread, spread_line

        print(spread_line(summary, load_spread()))
    print(
        f"plots: {out / 'plots'}; progress: {out / 'sarm_progress.parquet'}; summary: {out / 'summary.json'}"
    )
    files = [
        out / "dataset",
        "--progress",
        out / "sarm_progress.parquet",
        "--weights",
        out / "rabc_weights.parquet",
    ]
    print("watch it: sarm explore " + " ".join(shlex.quote(str(f)) for f in files))
