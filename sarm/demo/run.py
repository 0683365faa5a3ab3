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
   rollouts on goals not seen in training, side by side.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sarm.demo.collect import TASK_TEXT, Episode, annotation_spans, collect, mistake_record
from sarm.demo.metrics import auroc, demo_mse, paper_rule, success_scores
from sarm.demo.protocol import DEFAULT_EVALUATION, DEFAULT_PROTOCOL, Evaluation, Protocol
from sarm.labels.mistakes import FAILURE_POLICIES, MISTAKE_POLICIES

__all__ = [
    "REWARD_MODEL_SIZE",
    "DemoConfig",
    "episode_table",
    "progress_by_episode",
    "record_dataset",
    "reward_model_config",
    "run_demo",
]

CAMERA = "observation.images.corner"
REWARD_MODEL_SIZE = {"hidden_dim": 128, "num_layers": 2, "num_heads": 4, "frame_gap": 5}  # SARM overrides


def reward_model_config(steps: int, *, seed: int = 0, evaluations: int = 1, rewind_probability: float = 0.8):
    """The reward models' optimisation settings, shared by the demo and the benchmark."""
    from sarm.training.loop import TrainConfig

    return TrainConfig(
        steps=steps, batch_size=32, lr=3e-4, min_lr=3e-5, warmup_steps=min(100, steps),
        eval_every=max(steps // evaluations, 1), checkpoint_every=steps,
        rewind_probability=rewind_probability, seed=seed,
    )  # fmt: skip


def progress_by_episode(path: Path, bounds: np.ndarray) -> list[np.ndarray]:
    """The sparse progress column of a progress file, split at the episode `bounds` (rows)."""
    from rabc import read_progress

    values = read_progress(path).column("sparse")
    return [values[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


@dataclass(frozen=True)
class DemoConfig:
    task: str = "pick-place-v3"
    train_episodes: int = 60
    held_out_episodes: int = 16
    sarm_steps: int = 1500
    policy_steps: int = 2000
    rollouts: int = 50
    seed: int = 0
    kappa: float | str = "auto"
    threads: int | None = None  # torch.set_num_threads; None: one per core the load leaves free
    # SARM's label policy (docs/labels.md), from the recorded mistake spans and outcomes: the best one of
    # the Meta-World v2 benchmark (benchmarks/metaworld/results/RESULTS.md); "ignore", "keep" is v1's
    mistakes: str = "hold"
    failures: str = "exclude"
    smoke: bool = False  # tiny budgets: the numbers printed test that every stage runs, they are no result

    def __post_init__(self) -> None:
        for name, allowed in (("mistakes", MISTAKE_POLICIES), ("failures", FAILURE_POLICIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} should be one of {allowed}, but got {name}={getattr(self, name)!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads <= 0
        ):
            raise ValueError(
                f"threads should be a positive integer value or None, but got threads={self.threads!r}"
            )

    @classmethod
    def small(cls) -> DemoConfig:
        """The CI smoke run: every stage, tiny budgets."""
        return cls(
            train_episodes=12, held_out_episodes=4, sarm_steps=60, policy_steps=100, rollouts=4, smoke=True
        )


def _say(step: int, text: str) -> None:
    print(f"[{step}/6] {text}", flush=True)


SMOKE_NOTICE = (
    "--small: a smoke run with tiny budgets; its numbers only show that every stage runs, they are not "
    "results (run without --small for those)"
)


def auto_threads(default: int, cores: int, load: float) -> int:
    """Torch threads for a machine whose other work keeps `load` cores busy (the 1-minute load average).

    Measured here (`benchmarks/bench_demo_threads.py`, docs/benchmarks.md): on 2 idle cores two threads
    train the demo's SARM 1.38x faster than one; with two other busy processes one thread is 2.4x
    (SARM) and 4.8x (policy) faster than two, because the threads wait for each other. So: one thread
    per core left free, at least one, never more than torch's `default`.
    """
    return max(1, min(default, round(cores - load)))


def _set_threads(threads: int | None) -> str:
    """Apply `threads` to torch (None: `auto_threads` from the load when the demo starts) and say so."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
        return f"torch threads: {torch.get_num_threads()} (--threads {threads})"
    default, cores, load = torch.get_num_threads(), os.cpu_count() or 1, os.getloadavg()[0]
    chosen = auto_threads(default, cores, load)
    torch.set_num_threads(chosen)
    return (
        f"torch threads: {chosen} (auto: load {load:.1f} on {cores} cores, torch's default {default}; "
        "--threads N to choose)"
    )


def _rendering_available(protocol: Protocol, task: str) -> bool:
    from sarm.demo.collect import make_env

    try:
        mt1, env = make_env(task, protocol, render=True)
        env.set_task(mt1.train_tasks[0])
        env.reset(seed=0)
        env.render()
        env.close()
        return True
    except Exception as err:  # any GL failure: no EGL, no OSMesa, no display
        print(
            f"headless rendering is not available here ({type(err).__name__}: {err}); running state-only: "
            "the camera frames are blank, so SARM learns from the robot state alone",
            flush=True,
        )
        return False


def record_dataset(
    root: Path, task: str, ids: list[int], protocol: Protocol, policy=None, goal_seed: int = 0
) -> tuple[list[Episode], bool]:
    """Collect episodes `ids` and write them as a LeRobot v3.0 dataset at `root`, in a fresh process.

    With `policy`, the episodes are `len(ids)` rollouts of it on the goals of MT1(seed=goal_seed)
    instead of expert demonstrations.

    Rendering runs in its own spawned process: a GL context (EGL's Mesa) in the training process
    makes later native imports (Triton, through torch.compile's optimizer hooks) crash. Returns
    the episodes without their images, and whether frames were rendered.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_record_dataset, root, task, ids, protocol, policy, goal_seed).result()


def _record_dataset(root, task, ids, protocol, policy, goal_seed) -> tuple[list[Episode], bool]:
    from tqdm import tqdm

    from sarm.data.writer import LeRobotWriter
    from sarm.demo.collect import collect_rollouts

    render = _rendering_available(protocol, task)
    size, episodes = protocol.image_size, []
    extra = {name: {"dtype": "float32", "shape": (1,)} for name in ("progress_true", "stage_true")}
    cameras = {CAMERA: (size, size)}
    with LeRobotWriter(
        root,
        fps=protocol.fps,
        state_dim=39,
        action_dim=4,
        cameras=cameras,
        robot_type="sawyer",
        extra_features=extra,
    ) as writer:
        source = (
            collect(task, ids, protocol, render=render)
            if policy is None
            else collect_rollouts(task, policy, len(ids), protocol, goal_seed=goal_seed, render=render)
        )
        for ep in tqdm(source, total=len(ids), desc="episodes"):
            images = ep.images if render else np.zeros((len(ep.states), size, size, 3), np.uint8)
            writer.add_episode(
                state=ep.states,
                action=ep.actions,
                task=TASK_TEXT[ep.task],
                images={CAMERA: images},
                annotations={
                    "sparse": annotation_spans(ep.stage, end=ep.first_success if ep.success else None)
                },
                mistakes=mistake_record(ep),
                outcome=ep.success,
                extra={"progress_true": ep.progress, "stage_true": ep.stage.astype(np.float32)},
            )
            episodes.append(dataclasses.replace(ep, images=None))
    return episodes, render


def _success_end(ep: Episode, protocol: Protocol) -> int | None:
    """Where the last span of `ep` ends (`Protocol.last_span_end`): its first success, or None (the end)."""
    return ep.first_success if ep.success and protocol.last_span_end == "first_success" else None


def episode_table(episodes: list[Episode], held_out: set[int]) -> list[dict]:
    return [
        {
            "episode": i,
            "split": "held_out" if i in held_out else "train",
            "success": ep.success,
            "mistake": ep.mistake,
            "mistake_span": ep.mistake_span,
            "frames": len(ep.states),
        }
        for i, ep in enumerate(episodes)
    ]


def run_demo(
    out: str | Path,
    config: DemoConfig = DemoConfig(),
    protocol: Protocol = DEFAULT_PROTOCOL,
    evaluation: Evaluation = DEFAULT_EVALUATION,
) -> dict:
    import torch

    from rabc import RABCWeights, diagnose
    from sarm.data import open_dataset
    from sarm.demo.policy import evaluate, train_policy
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features
    from sarm.inference.progress import compute_progress
    from sarm.labels.annotations import read_lerobot_annotations
    from sarm.labels.records import read_mistakes, read_outcomes
    from sarm.training.from_cache import train_from_cache

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    threads = _set_threads(config.threads)
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
    states = np.concatenate([episodes[i].states for i in train_ids])
    actions = np.concatenate([episodes[i].actions for i in train_ids])
    episode_index = np.concatenate([np.full(len(episodes[i].states), i) for i in train_ids])
    results = {}
    with torch.random.fork_rng():
        for method, w in (("bc", None), ("sampler", weights.weights[rows])):
            policy = train_policy(
                states,
                actions,
                episode_index,
                method=method,
                weights=w,
                chunk_size=chunk,
                steps=config.policy_steps,
                batch_size=evaluation.batch_size,
                seed=config.seed,
                progress_bar=True,
            )
            results[method] = evaluate(
                policy, config.task, rollouts=config.rollouts, seed=config.seed, progress_bar=method
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
