"""SARM as an online reward in Meta-World: the stream equals offline progress on policy rollouts,
success-with-hysteresis against the simulator's success, and a small online experiment.

    sarm demo --out sarm_demo                                        # the SARM and data (~5 min)
    python benchmarks/online_metaworld.py --demo sarm_demo --out benchmarks/metaworld/results/online

Everything below reads the `sarm demo` output: its dataset (60 training demonstrations of
pick-place-v3, half with one mistake), its SARM (`sarm/model`, window "past", offline pixels encoder) and
its protocol. Rollouts are recorded with `sarm.demo.record.record_dataset(policy=...)` (a fresh
rendering process, LeRobot v3.0 files, 64x64 corner camera) on goals that no demonstration and no
evaluation uses (MT1 seeds from 10^6).

Part 1, stream vs offline, and success detection. The BC-all policy of the demo (BC on all 60
demonstrations, seed 0, the demo's settings) is rolled out 30 times, recording 30 steps past the first
success (the protocol's 10 leave a detector no time). Progress offline: `sarm features` (float32) +
`compute_progress`. Streamed: one `ProgressStream` over all 30 rollouts as 30 environments in lockstep,
fed each frame as decoded from the same videos (so both see the same pixels) with its raw state.
Reported: the max abs difference over all frames. Success with hysteresis (`RewardSpec("success",
threshold, steps)`) fires at the first frame where progress has been >= threshold for `steps`
frames; it is compared per rollout with the simulator's `info["success"]` (rollout successful: the
simulator reported success at any step). Precision and recall over rollouts; the delay is the frame
that fires minus the first frame recorded after the simulator's first success (negative: fired early).

Part 2, the online experiment. Protocol, fixed before it was run:
- policy: the demo's chunking MLP; start: BC-all trained with seed s (2000 steps, batch 256).
- arms: "sparse" (the simulator's success: rollout frames weighted 1 if the rollout succeeded, else 0)
  and "sarm" (SARM's shaped reward only, no simulator signal: rollout frames weighted by RA-BC's
  Eq. 8-9 on the streamed progress, the chunk's progress delta = the sum of the potential-based
  shaping rewards over the chunk, gamma = 1, kappa "auto" as the demo does).
- 2 iterations: roll out the arm's current policy 30 times (iteration 1 is shared: both arms start from
  the same policy), then refit the policy from scratch, seed s, 2000 steps, with frames drawn by
  `RABCWeightedSampler` from the 60 demonstrations (weight 1 in both arms) plus every rollout of the
  arm so far (the arm's weights): reward-weighted regression on its own rollouts.
- the same budget in both arms: 60 rollouts, 2 refits of 2000 steps.
- measure: success over the demo's 50 evaluation rollouts (`sarm.demo.policy.evaluate`, seed s) of
  BC-all and of each arm after each iteration; seeds 0, 1, 2. Reported as is, also if SARM's reward
  does not help.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rabc import RABCWeights
from sarm import SARM
from sarm.data import open_dataset
from sarm.demo.collect import TASK_TEXT
from sarm.demo.config import DemoConfig
from sarm.demo.policy import evaluate, train_policy
from sarm.demo.protocol import DEFAULT_EVALUATION, DEFAULT_PROTOCOL
from sarm.demo.record import CAMERA, record_dataset
from sarm.features import extract_features
from sarm.features.encoders import load_encoder
from sarm.inference.progress import compute_progress
from sarm.online import ProgressReward, ProgressStream, RewardSpec

TASK = "pick-place-v3"
GOAL_SEED = 1_000_000  # rollout goals: MT1 seeds no demonstration (0, t, e) or evaluation (2^31 +) uses
DETECTORS = [(0.9, 5), (0.9, 1), (0.8, 5), (0.95, 10)]  # (threshold, steps)


def demo_frames(demo: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States, actions and episode ids of the demo's training demonstrations."""
    table = json.loads((demo / "episodes.json").read_text())
    train = [row["episode"] for row in table if row["split"] == "train"]
    ds = open_dataset(demo / "dataset")
    return ds.state(episodes=train), ds.column("action", episodes=train), ds.column("episode_index", train)


def stream(model: SARM, root: Path) -> dict[int, np.ndarray]:
    """Progress of every frame of every episode of `root`, streamed: the episodes as environments of
    one ProgressStream, stepped in lockstep (those still running), from frames decoded from the mp4s."""
    ds = open_dataset(root)
    episodes = [int(e) for e in ds.episodes]
    frames = {e: np.concatenate([px for _, px in ds.decode(CAMERA, e)]) for e in episodes}
    states = {e: ds.state(episodes=[e]) for e in episodes}
    progress = {e: np.empty(len(frames[e]), np.float32) for e in episodes}
    s = ProgressStream(model, load_encoder("pixels"), num_envs=len(episodes))
    s.reset(TASK_TEXT[TASK])
    for t in range(max(len(f) for f in frames.values())):
        live = [i for i, e in enumerate(episodes) if t < len(frames[e])]
        batch = np.stack([frames[episodes[i]][t] for i in live])
        out = s.step(batch, np.stack([states[episodes[i]][t] for i in live]), env_ids=live)
        for i, p in zip(live, out, strict=True):
            progress[episodes[i]][t] = p
    return progress


def offline(model: SARM, root: Path, work: Path) -> dict[int, np.ndarray]:
    cache = extract_features(open_dataset(root), load_encoder("pixels"), work / "features32", dtype="float32")
    table = pq.read_table(compute_progress(model, cache, work / "progress.parquet"))
    episode = table.column("episode_index").to_numpy()
    values = table.column("progress_sparse").to_numpy()
    return {int(e): values[episode == e] for e in np.unique(episode)}


def fire_frame(progress: np.ndarray, threshold: float, steps: int) -> int:
    """First frame where success-with-hysteresis holds, -1 if never (the streamed reward's rule)."""
    reward = ProgressReward(RewardSpec("success", threshold=threshold, steps=steps))
    for t, p in enumerate(progress):
        if reward.update([p], first=t == 0)["success"][0]:
            return t
    return -1


def detection(progress: dict[int, np.ndarray], episodes) -> list[dict]:
    rows = []
    truth = {ep.episode: ep for ep in episodes}
    for threshold, steps in DETECTORS:
        fired = {e: fire_frame(p, threshold, steps) for e, p in progress.items()}
        tp = [e for e in fired if fired[e] >= 0 and truth[e].success]
        fp = [e for e in fired if fired[e] >= 0 and not truth[e].success]
        fn = [e for e in fired if fired[e] < 0 and truth[e].success]
        delays = [fired[e] - (truth[e].first_success + 1) for e in tp]
        rows.append(
            {
                "threshold": threshold,
                "steps": steps,
                "true_pos": len(tp),
                "false_pos": len(fp),
                "false_neg": len(fn),
                "precision": len(tp) / max(len(tp) + len(fp), 1),
                "recall": len(tp) / max(len(tp) + len(fn), 1),
                "delay_median": float(np.median(delays)) if delays else None,
                "delay_min": int(min(delays)) if delays else None,
                "delay_max": int(max(delays)) if delays else None,
            }
        )
    return rows


def rollouts(policy, count: int, seed: int, root: Path, protocol):
    episodes, rendered = record_dataset(
        root, TASK, list(range(count)), protocol, policy=policy, goal_seed=seed
    )
    if not rendered:
        raise SystemExit("no headless rendering here (EGL / OSMesa): SARM's reward needs frames")
    return episodes


def rollout_weights(arm: str, model: SARM, root: Path, episodes, chunk: int) -> np.ndarray:
    """Per-frame weights of one batch of rollouts (frames in episode order)."""
    if arm == "sparse":
        return np.concatenate([np.full(len(ep.states), float(ep.success)) for ep in episodes])
    progress = stream(model, root)
    order = [ep.episode for ep in episodes]
    values = np.concatenate([progress[e] for e in order])
    episode = np.concatenate([np.full(len(progress[e]), e) for e in order])
    frame = np.concatenate([np.arange(len(progress[e])) for e in order])
    table = pa.table(
        {
            "index": np.arange(len(values)),
            "episode_index": episode,
            "frame_index": frame,
            "progress_sparse": values.astype(np.float32),
        }
    )
    weights = RABCWeights.from_progress(table, chunk_size=chunk, kappa=DemoConfig().kappa)
    return np.asarray(weights.for_indices(np.arange(len(values))), np.float64)


def experiment(model: SARM, demo: Path, work: Path, seeds, iterations: int, count: int) -> dict:
    states, actions, episode_index = demo_frames(demo)
    chunk, steps = DEFAULT_EVALUATION.chunk_size, DemoConfig().policy_steps
    results: dict = {}
    for seed in seeds:
        start = time.perf_counter()

        def fit(data, seed=seed):
            s, a, e, w = (np.concatenate(x) for x in zip(*data, strict=True))
            return train_policy(
                s, a, e, method="sampler", weights=w, chunk_size=chunk, steps=steps, seed=seed
            )

        base = train_policy(
            states, actions, episode_index, method="bc", chunk_size=chunk, steps=steps, seed=seed
        )
        row = {"bc_all": evaluate(base, TASK, rollouts=50, seed=seed)["success_rate"]}
        demos = (states, actions, episode_index, np.ones(len(states)))
        data = {"sparse": [demos], "sarm": [demos]}
        policy = {"sparse": base, "sarm": base}
        shared = None
        for it in range(1, iterations + 1):
            for arm in ("sparse", "sarm"):
                root = work / f"seed{seed}" / f"it{it}_{arm}"
                if it == 1 and shared is not None:  # iteration 1: both arms roll out BC-all
                    root, episodes = shared
                else:
                    episodes = rollouts(
                        policy[arm], count, GOAL_SEED + 1000 * seed + it, root, DEFAULT_PROTOCOL
                    )
                    shared = (root, episodes) if it == 1 else shared
                w = rollout_weights(arm, model, root, episodes, chunk)
                ids = np.concatenate([np.full(len(ep.states), 100_000 * it + ep.episode) for ep in episodes])
                data[arm].append(
                    (
                        np.concatenate([ep.states for ep in episodes]),
                        np.concatenate([ep.actions for ep in episodes]),
                        ids,
                        w,
                    )
                )
                row[f"{arm}_rollout_success_it{it}"] = float(np.mean([ep.success for ep in episodes]))
                row[f"{arm}_mean_weight_it{it}"] = float(np.mean(w))
                policy[arm] = fit(data[arm])
                row[f"{arm}_it{it}"] = evaluate(policy[arm], TASK, rollouts=50, seed=seed)["success_rate"]
                print(f"seed {seed} iteration {it} {arm}: {row[f'{arm}_it{it}']:.2f}", flush=True)
        row["minutes"] = (time.perf_counter() - start) / 60
        results[seed] = row
        print(f"seed {seed}: {row}", flush=True)
    return results


def report(part1: dict, part2: dict, iterations: int) -> str:
    lines = [
        "# SARM as an online reward on Meta-World (pick-place-v3, the `sarm demo` SARM)",
        "",
        f"## Stream vs offline, {part1['rollouts']} rollouts of BC-all",
        "",
        f"Frames: {part1['frames']}; max |streamed - offline| progress: **{part1['max_abs_diff']:.2e}** "
        f"(mean {part1['mean_abs_diff']:.2e}). The simulator: {part1['sim_successes']} of "
        f"{part1['rollouts']} rollouts succeeded.",
        "",
        "## Success with hysteresis vs the simulator's success (per rollout)",
        "",
        "| threshold | steps | TP | FP | FN | precision | recall | delay median (min..max) frames |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in part1["detection"]:
        delay = (
            "n/a"
            if r["delay_median"] is None
            else f"{r['delay_median']:g} ({r['delay_min']}..{r['delay_max']})"
        )
        lines.append(
            f"| {r['threshold']} | {r['steps']} | {r['true_pos']} | {r['false_pos']} | {r['false_neg']} | "
            f"{r['precision']:.2f} | {r['recall']:.2f} | {delay} |"
        )
    if not part2:
        return "\n".join(lines) + "\n"
    lines += ["", "## Online experiment: success over 50 evaluation rollouts", ""]
    head = ["seed", "BC-all"] + [
        f"{arm} it{i}" for i in range(1, iterations + 1) for arm in ("sparse", "sarm")
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for seed, row in part2.items():
        cells = [str(seed), f"{row['bc_all']:.2f}"]
        cells += [
            f"{row[f'{arm}_it{i}']:.2f}" for i in range(1, iterations + 1) for arm in ("sparse", "sarm")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    means = ["mean", f"{np.mean([r['bc_all'] for r in part2.values()]):.2f}"]
    means += [
        f"{np.mean([r[f'{arm}_it{i}'] for r in part2.values()]):.2f}"
        for i in range(1, iterations + 1)
        for arm in ("sparse", "sarm")
    ]
    lines.append("| " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--demo", type=Path, required=True, help="a `sarm demo` output directory")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=30)
    parser.add_argument("--detect-rollouts", type=int, default=30, help="rollouts of part 1")
    parser.add_argument("--skip-experiment", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    model = SARM.from_pretrained(args.demo / "sarm" / "model").eval()

    states, actions, episode_index = demo_frames(args.demo)
    chunk, steps = DEFAULT_EVALUATION.chunk_size, DemoConfig().policy_steps
    bc = train_policy(states, actions, episode_index, method="bc", chunk_size=chunk, steps=steps, seed=0)
    protocol = dataclasses.replace(DEFAULT_PROTOCOL, steps_after_success=30)
    root = work / "detect"
    episodes = rollouts(bc, args.detect_rollouts, GOAL_SEED, root, protocol)
    streamed, batch = stream(model, root), offline(model, root, work / "detect_offline")
    diffs = np.concatenate([np.abs(streamed[e] - batch[e]) for e in batch])
    part1 = {
        "frames": int(diffs.size),
        "max_abs_diff": float(diffs.max()),
        "mean_abs_diff": float(diffs.mean()),
        "rollouts": len(episodes),
        "sim_successes": int(sum(ep.success for ep in episodes)),
        "detection": detection(streamed, episodes),
    }
    print(json.dumps(part1, indent=1), flush=True)
    part2 = (
        {}
        if args.skip_experiment
        else experiment(model, args.demo, work, args.seeds, args.iterations, args.rollouts)
    )
    (args.out / "results.json").write_text(json.dumps({"stream": part1, "experiment": part2}, indent=1))
    text = report(part1, part2, args.iterations)
    (args.out / "README.md").write_text(text)
    print(text)
    print(f"wrote {args.out / 'results.json'} and {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
