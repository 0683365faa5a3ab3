"""Benchmark `sarm demo`'s small models at 1 vs 2 torch threads (`torch.set_num_threads`).

The demo's models are small (SARM 128 wide, 2 layers, batch 32; a 3 x 256 MLP policy, batch 256), so a
second thread may buy little or even cost time. This times them as `sarm demo` configures them
(`sarm.demo.config`: `REWARD_MODEL_SIZE`, `reward_model_config`, `DemoConfig`, `DEFAULT_EVALUATION`):

  SARM    `sarm.training.loop.train` for `--sarm-steps` steps, as `train_from_cache` runs it (the
          evaluations left out), on a feature cache shaped like the demo's (76 episodes of 55-220
          frames, 39-d state, one 64x64 camera, blank frames as in a state-only run, the offline
          `pixels` encoder, 60 annotated training episodes);
  policy  `train_policy(method="sampler")` for `--policy-steps` steps on those frames (chunk 10, batch 256).

Each (threads, repeat) runs in a fresh subprocess, the thread counts interleaved (1, 2, 1, 2, ...) so a
change in the machine's load hits both alike. Each process trains each model from scratch for 10
steps (untimed warm-up), 10 steps again and then the full count, and takes the difference of the last
two times, so start-up and checkpoint writing drop out. Printed: per model the median seconds per 100
steps at each thread count, the min-max over repeats, and the ratio 1 thread / 2 threads (> 1: two
threads are faster). Simulator rollouts are not timed (they run the policy one observation at a time).

    python benchmarks/bench_demo_threads.py                        # ~2-3 min on 2 cores
    python benchmarks/bench_demo_threads.py --threads 1 2 4 --repeats 5 --sarm-steps 300

Needs the `metaworld` extra's `av` (the cache is built from a small LeRobot dataset written with video).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's sarm, also when run as a script
from sarm.demo.config import DemoConfig  # noqa: E402

DEMO = DemoConfig()
TRAIN_EPISODES = DEMO.train_episodes
EPISODES = DEMO.train_episodes + DEMO.held_out_episodes
LENGTHS = (55, 220)  # frames per episode: the range of the demo's episodes (max_steps 220)


def build_cache(root: Path) -> Path:
    """A LeRobot v3.0 dataset shaped like the demo's, and its `pixels` feature cache; returns the cache."""
    from sarm.data import open_dataset
    from sarm.data.writer import LeRobotWriter
    from sarm.demo.collect import STAGES, TASK_TEXT, annotation_spans
    from sarm.demo.protocol import DEFAULT_PROTOCOL
    from sarm.demo.record import CAMERA
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features

    rng = np.random.default_rng(0)
    size = DEFAULT_PROTOCOL.image_size
    with LeRobotWriter(
        root / "dataset", fps=DEFAULT_PROTOCOL.fps, state_dim=39, action_dim=4, cameras={CAMERA: (size, size)}
    ) as writer:
        for _ in range(EPISODES):
            n = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
            stage = (np.arange(n) * len(STAGES) // n).astype(np.int64)
            writer.add_episode(
                state=rng.normal(size=(n, 39)).astype(np.float32),
                action=rng.uniform(-1, 1, size=(n, 4)).astype(np.float32),
                task=TASK_TEXT["pick-place-v3"],
                images={CAMERA: np.zeros((n, size, size, 3), np.uint8)},
                annotations={"sparse": annotation_spans(stage)},
            )
    dataset = open_dataset(root / "dataset")
    extract_features(dataset, load_encoder("pixels"), root / "features", progress=False)
    return root / "features"


WARMUP_STEPS = 10  # a short run's time, the fixed cost of a run, is subtracted from the long one's


def worker(cache: Path, threads: int, sarm_steps: int, policy_steps: int) -> dict:
    """Seconds per 100 steps of SARM and of the policy, in this (fresh) process at `threads` threads.

    Each model trains three times from scratch: `WARMUP_STEPS` (untimed, first-call costs), again
    `WARMUP_STEPS`, then the full count; per step is the difference of the last two times over the
    difference of their steps, so start-up and checkpoint writing drop out."""
    import torch

    torch.set_num_threads(threads)
    from sarm.data import open_dataset
    from sarm.demo.config import REWARD_MODEL_SIZE, reward_model_config
    from sarm.demo.policy import train_policy
    from sarm.demo.protocol import DEFAULT_EVALUATION
    from sarm.features.cache import FeatureCache
    from sarm.labels.annotations import read_lerobot_annotations
    from sarm.labels.negatives import NEGATIVE_TEXTS
    from sarm.model.network import SARM
    from sarm.training.from_cache import prepare_training
    from sarm.training.loop import train

    dataset_root = cache.parent / "dataset"
    spans = read_lerobot_annotations(dataset_root, head="sparse")
    train_spans = {e: s for e, s in spans.items() if e < TRAIN_EPISODES}
    features = FeatureCache(cache)
    data = prepare_training(
        features, annotations={"sparse": train_spans}, eval_fraction=0.1, model_overrides=REWARD_MODEL_SIZE
    )

    def sarm_run(steps: int) -> float:
        torch.manual_seed(0)
        model = SARM(data.config)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            train(  # as train_from_cache runs it, without the evaluations (eval_set=None)
                model,
                data.train_set,
                task_features=data.task_features,
                out_dir=out,
                config=reward_model_config(steps, seed=0),
                negative_text_features=data.negative_text_features,
                negative_texts=list(NEGATIVE_TEXTS),
                progress=False,
            )
            return time.perf_counter() - start

    lengths = np.asarray(open_dataset(dataset_root).episode_lengths)[:TRAIN_EPISODES]
    n = int(lengths.sum())
    states = np.concatenate([features.episode_state(e) for e in range(TRAIN_EPISODES)])
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(n, 4)).astype(np.float32)
    episode_index = np.repeat(np.arange(TRAIN_EPISODES), lengths)
    weights = rng.uniform(0, 1, size=n)

    def policy_run(steps: int) -> float:
        start = time.perf_counter()
        train_policy(
            states,
            actions,
            episode_index,
            method="sampler",
            weights=weights,
            chunk_size=DEFAULT_EVALUATION.chunk_size,
            steps=steps,
            batch_size=DEFAULT_EVALUATION.batch_size,
            seed=0,
        )
        return time.perf_counter() - start

    result = {"threads": torch.get_num_threads()}
    for name, run, steps in (("sarm", sarm_run, sarm_steps), ("policy", policy_run, policy_steps)):
        run(WARMUP_STEPS)  # first-call costs (allocator, thread pool, lazy imports) land here
        short = run(WARMUP_STEPS)
        result[name] = (run(steps) - short) * 100 / (steps - WARMUP_STEPS)
    return result


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per thread count")
    parser.add_argument(
        "--sarm-steps", type=int, default=50, help=f"SARM steps per run (demo: {DEMO.sarm_steps})"
    )
    parser.add_argument(
        "--policy-steps", type=int, default=400, help=f"policy steps per run (demo: {DEMO.policy_steps})"
    )
    parser.add_argument("--worker", nargs=2, metavar=("CACHE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        cache, threads = Path(args.worker[0]), int(args.worker[1])
        print(json.dumps(worker(cache, threads, args.sarm_steps, args.policy_steps)))
        return 0
    if any(t <= 0 for t in args.threads) or args.repeats <= 0:
        parser.error("--threads and --repeats should be positive integers")
    if min(args.sarm_steps, args.policy_steps) <= WARMUP_STEPS:
        parser.error(f"--sarm-steps and --policy-steps should be more than {WARMUP_STEPS} (the warm-up run)")

    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("OMP_NUM_THREADS", None)  # torch.set_num_threads decides, not the caller's environment
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = build_cache(Path(tmp))
        print(f"feature cache built in {time.perf_counter() - start:.0f} s", flush=True)
        runs: dict[int, list[dict]] = {t: [] for t in args.threads}
        for repeat in range(args.repeats):
            for threads in args.threads:
                command = [sys.executable, __file__, "--worker", str(cache), str(threads)]
                command += ["--sarm-steps", str(args.sarm_steps), "--policy-steps", str(args.policy_steps)]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                runs[threads].append(result)
                print(
                    f"repeat {repeat + 1}/{args.repeats}, {threads} thread(s): "
                    f"SARM {result['sarm']:.2f} s, policy {result['policy']:.2f} s per 100 steps",
                    flush=True,
                )

    per100 = {model: {t: [r[model] for r in runs[t]] for t in args.threads} for model in ("sarm", "policy")}
    base, other = args.threads[0], args.threads[-1]
    print()
    print(
        f"sarm demo's models, seconds per 100 steps: median (min-max) over {args.repeats} fresh processes; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {_torch_version()}"
    )
    print(f"runs of {args.sarm_steps} SARM steps (no evaluations) and {args.policy_steps} policy steps")
    header = "| model | " + " | ".join(f"{t} thread(s)" for t in args.threads) + f" | {base} / {other} |"
    print(header)
    print("|---" * (len(args.threads) + 2) + "|")
    for model, label in (("sarm", "SARM (train)"), ("policy", "policy (train_policy)")):
        cells = [_spread(per100[model][t]) for t in args.threads]
        ratio = statistics.median(per100[model][base]) / statistics.median(per100[model][other])
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    return 0


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    sys.exit(main())
