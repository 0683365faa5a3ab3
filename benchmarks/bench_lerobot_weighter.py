"""LeRobot's RA-BC weighter against ours, side by side, in LeRobot's own environment.

    .venv-lerobot/bin/python benchmarks/bench_lerobot_weighter.py --out docs/benchmarks/lerobot_weighter.md

Both read the same synthetic progress file (LeRobot's schema). Timed: construction (read + deltas +
statistics) and `compute_batch_weights` on random batches (median of `--repeats`), and the two
outputs are compared. Needs `lerobot` (>= 0.5, see .ci/lerobot).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lerobot.rewards.sarm.rabc import RABCWeights as LeRobotRABCWeights

from integrations.lerobot import RABCSampleWeighter
from rabc import ProgressTable, write_progress


def make_progress(path: Path, frames: int, episodes: int) -> None:
    rng = np.random.default_rng(0)
    lengths = np.full(episodes, frames // episodes)
    lengths[: frames - lengths.sum()] += 1
    episode = np.repeat(np.arange(episodes), lengths)
    frame = np.concatenate([np.arange(n) for n in lengths])
    noise = rng.normal(0, 0.01, frames)
    progress = np.clip(frame / np.repeat(lengths - 1, lengths) + noise, 0, 1).astype(np.float32)
    write_progress(path, ProgressTable(np.arange(frames), episode, frame, {"sparse": progress}))


def timed(fn, repeats: int = 1):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sarm_progress.parquet"
        make_progress(path, args.frames, args.episodes)
        kw = {"chunk_size": 50, "kappa": 0.01}
        theirs, t_build_theirs = timed(
            lambda: LeRobotRABCWeights(str(path), device=torch.device("cpu"), **kw)
        )
        ours, t_build_ours = timed(lambda: RABCSampleWeighter.from_progress(path, 50, kappa=0.01), 3)
    rng = np.random.default_rng(1)
    batches = [
        {"index": torch.as_tensor(rng.integers(0, args.frames, args.batch))} for _ in range(args.repeats)
    ]
    _, t_batch_theirs = timed(lambda: theirs.compute_batch_weights(batches[0]), args.repeats)
    _, t_batch_ours = timed(lambda: ours.compute_batch_weights(batches[0]), args.repeats)
    worst = max(
        float((ours.compute_batch_weights(b)[0] - theirs.compute_batch_weights(b)[0].float()).abs().max())
        for b in batches
    )
    rows = [
        ("construction (read, deltas, statistics)", t_build_theirs, t_build_ours),
        (
            f"compute_batch_weights, batch {args.batch} (median of {args.repeats})",
            t_batch_theirs,
            t_batch_ours,
        ),
    ]
    lines = [
        "# LeRobot's RA-BC weighter vs `integrations.lerobot.RABCSampleWeighter`",
        "",
        f"{args.frames:,} frames in {args.episodes} episodes, chunk_size 50, kappa 0.01, one CPU thread, "
        f"lerobot {__import__('lerobot').__version__}; command: "
        f"`.venv-lerobot/bin/python benchmarks/bench_lerobot_weighter.py --frames {args.frames}`.",
        "",
        "| step | LeRobot 0.6.1 | ours | ratio |",
        "|---|---|---|---|",
        *(f"| {name} | {a * 1e3:.2f} ms | {b * 1e3:.2f} ms | {a / b:.0f}x |" for name, a, b in rows),
        "",
        f"Largest difference between the two weighters' normalised batch weights over {len(batches)} "
        f"batches: {worst:.2e}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
