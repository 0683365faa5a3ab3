"""`sarm features` on the local engine vs the Ray engine, side by side on this machine, and the figures
the BEHAVIOR throughput model in docs/scale.md needs.

    python benchmarks/bench_engine.py --out docs/benchmarks/engine.md
    python benchmarks/bench_engine.py --encoders pixels:512 --repeats 1     # quicker

Measured, each as the median of `--repeats` alternating runs (local, ray, local, ray, ...):
- throughput: frames/s of `extract_features` vs `extract_features_ray` on the real g1 episodes (AV1,
  640x480, ../shared/datasets), per encoder;
- cost per episode: both engines on many tiny episodes (10 frames of 32x32, pixels:16), where decoding
  and encoding cost next to nothing: seconds / episodes of each (Ray's is an upper bound of what its
  scheduling adds to an episode: it includes opening, decoding and writing it);
- decode frames/s per core: PyAV decoding of the same g1 episodes, no encoding, in a child process
  pinned to one core (`taskset -c 0`), and unpinned on all cores;
- Ray's start-up (`ray.init` of a local Ray), paid once per command, outside the figures above.

The Ray runs join one local Ray with this machine's CPUs (2 here), 2 workers, actors on CPU with the
driver's torch thread count: the same cores as the local engine, so the ratio says what Ray's
decode/encode split buys or costs when there is nothing more to spread over, not what a cluster gives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sarm.data import open_dataset
from sarm.data.writer import LeRobotWriter
from sarm.features.encoders import load_encoder
from sarm.features.extract import extract_features
from sarm.scale.engine import RayOptions
from sarm.scale.features import extract_features_ray

G1 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "g1_pick_bottle_v21_first20"
G1_CAM = "observation.images.cam_high"
TINY_CAM = "observation.images.top"


def tiny_dataset(root: Path, episodes: int, frames: int = 10) -> Path:
    rng = np.random.default_rng(0)
    with LeRobotWriter(root, fps=30, state_dim=2, action_dim=2, cameras={TINY_CAM: (32, 32)}) as w:
        for _ in range(episodes):
            images = rng.integers(0, 256, size=(frames, 32, 32, 3), dtype=np.uint8)
            state = np.zeros((frames, 2), np.float32)
            w.add_episode(state=state, action=state, task="pick", images={TINY_CAM: images})
    return root


def run_pair(ds, encoder: str, episodes, repeats: int, workdir: Path, **plan) -> dict[str, list[float]]:
    """Seconds of each engine, alternating, each into a fresh cache."""
    times: dict[str, list[float]] = {"local": [], "ray": []}
    options = RayOptions(num_workers=2)
    for r in range(repeats):
        for engine in ("local", "ray"):
            out = workdir / f"{engine}{r}"
            start = time.perf_counter()
            if engine == "local":
                extract_features(ds, load_encoder(encoder), out, episodes=episodes, progress=False, **plan)
            else:
                _, outcome = extract_features_ray(
                    ds, encoder, out, options=options, episodes=episodes, progress=False, **plan
                )
                assert not outcome.failed, outcome.failed
            times[engine].append(time.perf_counter() - start)
            shutil.rmtree(out)
    return times


_DECODE = """
import sys, time
from sarm.data import open_dataset
ds = open_dataset(sys.argv[1])
frames, start = 0, time.perf_counter()
for e in map(int, sys.argv[2:]):
    for positions, _ in ds.decode("observation.images.cam_high", e):
        frames += len(positions)
print(frames / (time.perf_counter() - start))
"""


def decode_rate(episodes, cores: str | None) -> float:
    """Frames/s of PyAV decoding alone (no encoding) in a child process, pinned to `cores` (taskset -c)
    when given: PyAV's decoder threads then share those cores only."""
    pin = ["taskset", "-c", cores] if cores else []
    command = [*pin, sys.executable, "-c", _DECODE, str(G1), *map(str, episodes)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return float(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoders", nargs="+", default=["pixels:512", "clip:ViT-B-32"])
    parser.add_argument("--episodes", type=int, nargs="+", default=[1, 2, 4, 5], help="g1 episodes")
    parser.add_argument("--tiny-episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()

    import ray
    import torch

    ds = open_dataset(G1)
    g1_frames = int(sum(ds.episode_lengths[ds.episode_position(e)] for e in args.episodes))
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="error")
    ray_start = time.perf_counter() - start
    lines = [
        f"# Local vs Ray engine, `sarm features` ({os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, ray {ray.__version__}, {args.repeats} alternating repeats, medians)",
        "",
        f"Ray start-up (local `ray.init`, once per command): {ray_start:.1f} s",
        "",
        "| work | frames | local s | ray s | local frames/s | ray frames/s | ray / local |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for encoder in args.encoders:
            t = run_pair(ds, encoder, args.episodes, args.repeats, tmp)
            local, remote = statistics.median(t["local"]), statistics.median(t["ray"])
            lines.append(
                f"| g1 episodes {args.episodes}, {encoder} | {g1_frames} | {local:.2f} | {remote:.2f} | "
                f"{g1_frames / local:.0f} | {g1_frames / remote:.0f} | {local / remote:.2f} |"
            )
            print(lines[-1], flush=True)
        tiny = open_dataset(tiny_dataset(tmp / "tiny", args.tiny_episodes))
        t = run_pair(tiny, "pixels:16", None, args.repeats, tmp)
        local, remote = statistics.median(t["local"]), statistics.median(t["ray"])
        frames = tiny.num_frames
        lines.append(
            f"| {args.tiny_episodes} tiny episodes (10 frames, 32x32), pixels:16 | {frames} | {local:.2f} | "
            f"{remote:.2f} | {frames / local:.0f} | {frames / remote:.0f} | {local / remote:.2f} |"
        )
        per_episode = {k: v / args.tiny_episodes * 1000 for k, v in (("local", local), ("ray", remote))}
        one = [decode_rate(args.episodes, "0") for _ in range(args.repeats)]
        every = [decode_rate(args.episodes, None) for _ in range(args.repeats)]
    ray.shutdown()
    lines += [
        "",
        f"Per tiny episode (seconds / episodes, all included): local {per_episode['local']:.1f} ms, "
        f"ray {per_episode['ray']:.1f} ms (the most Ray's scheduling can add to an episode)",
        f"PyAV decode alone (g1 AV1 640x480, no encoding): {statistics.median(one):.0f} frames/s pinned to "
        f"one core (runs: {', '.join(f'{r:.0f}' for r in one)}); {statistics.median(every):.0f} frames/s on "
        f"all {os.cpu_count()} cores (runs: {', '.join(f'{r:.0f}' for r in every)})",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
