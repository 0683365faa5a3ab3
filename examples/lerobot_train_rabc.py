"""A few steps of LeRobot's own trainer with RA-BC, in each of the two modes.

    python examples/lerobot_train_rabc.py                                 # offline demo dataset, both modes
    python examples/lerobot_train_rabc.py --root my_dataset --progress my_dataset/sarm_progress.parquet

Needs LeRobot >= 0.5 (Python >= 3.12; see README "LeRobot"). Each mode runs `lerobot-train` unchanged
through `python -m integrations.lerobot`:

* sampler: frames are drawn in proportion to their RA-BC weight (`RABCEpisodeSampler` replaces
  `EpisodeAwareSampler`); works for every policy, here ACT.
* loss: LeRobot's `update_policy` weights each sample's loss (`RABCSampleWeighter`). ACT has no
  `forward(..., reduction="none")`, so this demo adds `--rabc.per_sample=loop` (exact per-sample losses,
  one forward pass per sample); policies such as pi0, pi05 or smolvla need no such flag.

Without `--root` the script writes a small demo dataset with LeRobot's own writer: real SO-101 joint
states and actions (from ../shared/datasets when present, else a smooth random walk) and a stand-in
camera image drawn from the arm state. Its progress file is a stand-in too (time-linear with a slip
back in every episode), there only so that the weights vary; on real data, write
`sarm_progress.parquet` with `sarm progress`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from rabc import ProgressTable, write_progress

SO101 = Path(__file__).resolve().parents[1].parent / "shared/datasets/so101_record_test_v30"
POLICY = [  # a small ACT so that a step takes well under a second on a CPU
    "--policy.type=act",
    "--policy.device=cpu",
    "--policy.push_to_hub=false",
    "--policy.pretrained_backbone_weights=null",
    "--policy.dim_model=64",
    "--policy.dim_feedforward=128",
    "--policy.n_heads=4",
    "--policy.chunk_size=10",
    "--policy.n_action_steps=10",
]


def make_demo_dataset(root: Path, episodes: int = 4, frames: int = 60) -> Path:
    """A LeRobot dataset written by LeRobot itself (so any LeRobot version reads it back)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    states = _so101_states(episodes, frames)
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "action": {"dtype": "float32", "shape": (6,), "names": None},
        "observation.images.front": {"dtype": "image", "shape": (64, 64, 3), "names": ["h", "w", "c"]},
    }
    ds = LeRobotDataset.create("local/rabc_demo", fps=30, features=features, root=root, use_videos=False)
    for episode in states:
        for t in range(frames):
            image = np.zeros((64, 64, 3), np.uint8)  # a stand-in camera: a bar per joint, height = angle
            for j, angle in enumerate(episode[t]):
                image[: int(8 + 50 * (1 + np.tanh(angle / 60)) / 2), j * 10 : j * 10 + 8, j % 3] = 255
            action = episode[min(t + 1, frames - 1)]
            frame = {"observation.state": episode[t], "action": action, "observation.images.front": image}
            ds.add_frame({**frame, "task": "Pick the orange cube and place it in the box"})
        ds.save_episode()
    ds.finalize()
    return root


def _so101_states(episodes: int, frames: int) -> list[np.ndarray]:
    files = sorted(SO101.glob("data/*/*.parquet"))
    if files:
        import pyarrow.parquet as pq

        table = pq.read_table(files[0], columns=["observation.state", "episode_index"])
        state = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False)).astype(np.float32)
        episode = table.column("episode_index").to_numpy()
        return [state[episode == e][:frames] for e in np.unique(episode)[:episodes]]
    rng = np.random.default_rng(0)
    return [np.cumsum(rng.normal(0, 1, (frames, 6)), 0).astype(np.float32) for _ in range(episodes)]


def write_standin_progress(root: Path) -> Path:
    """Time-linear progress, except a slip back to frame 15's value over frames 30-39 of every episode."""
    import pyarrow.parquet as pq

    table = pq.read_table(
        sorted(root.glob("data/*/*.parquet")), columns=["index", "episode_index", "frame_index"]
    )
    index, episode, frame = (table.column(c).to_numpy().astype(np.int64) for c in table.column_names)
    length = np.bincount(episode)[episode]
    progress = frame / np.maximum(length - 1, 1)
    slip = (frame >= 30) & (frame < 40)
    progress[slip] = 15 / np.maximum(length - 1, 1)[slip]
    out = ProgressTable(index, episode, frame, {"sparse": progress.astype(np.float32)})
    return write_progress(root / "sarm_progress.parquet", out, {"note": "stand-in progress, not a SARM"})


def train(mode: str, root: Path, progress: Path, out: Path, steps: int, policy: list[str]) -> None:
    command = [
        sys.executable, "-m", "integrations.lerobot", f"--rabc.mode={mode}",
        *(["--rabc.per_sample=loop"] if mode == "loss" and policy is POLICY else []),
        *policy,
        "--dataset.repo_id=local/rabc_demo", f"--dataset.root={root}", "--dataset.video_backend=pyav",
        f"--sample_weighting.progress_path={progress}", "--sample_weighting.kappa=0.01",
        f"--steps={steps}", "--batch_size=8", "--num_workers=0", "--log_freq=1", "--save_checkpoint=false",
        "--wandb.enable=false", f"--output_dir={out / mode}", "--seed=0",
    ]  # fmt: skip
    print(f"[{mode}]", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="a local LeRobot dataset (default: write a demo one)")
    parser.add_argument(
        "--progress", type=Path, help="progress parquet (default: <root>/sarm_progress.parquet)"
    )
    parser.add_argument("--mode", choices=["sampler", "loss", "both"], default="both")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("lerobot_rabc_demo"))
    parser.add_argument("--policy", nargs="*", default=POLICY, help="lerobot-train --policy.* options")
    args = parser.parse_args()
    root = args.root
    if root is None:
        root = args.out / "dataset"
        if not (root / "meta/info.json").exists():
            make_demo_dataset(root)
        write_standin_progress(root)
    progress = args.progress or root / "sarm_progress.parquet"
    for mode in ("sampler", "loss") if args.mode == "both" else (args.mode,):
        train(mode, root, progress, args.out, args.steps, args.policy)
        print(f"[{mode}] done: {args.steps} steps of LeRobot's trainer with RA-BC", flush=True)


if __name__ == "__main__":
    main()
