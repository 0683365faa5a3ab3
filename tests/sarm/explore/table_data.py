"""Hand-built datasets for the episode-table tests: eight episodes whose outcomes and scores are known
by construction, and a one-camera dataset encoded as MPEG-4 part 2 (the codec browsers do not play)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np

from rabc.progress_io import ProgressTable, write_progress
from rabc.weights import RABCWeights
from sarm.data.writer import LeRobotWriter

CHUNK = 5
TASKS = ("pick", "place")
# per episode: (length, progress curve, known outcome or None, annotated)
EPISODES = (
    (20, np.linspace(0, 1, 20), None, True),  # clean success: predicted success
    (24, np.linspace(0, 0.5, 24), "failure", False),  # known failure (the rule agrees)
    (20, np.r_[np.linspace(0, 0.8, 10), np.linspace(0.4, 1, 10)], None, True),  # a 0.4 regression
    (30, np.full(30, 0.3), None, False),  # stalls low: predicted failure
    (22, np.linspace(0, 0.9, 22), None, True),  # predicted success
    (20, np.linspace(0, 1, 20), "partial", False),  # known partial outweighs the prediction
    (26, np.linspace(0, 0.7, 26), None, False),  # ends at 0.7: predicted failure
    (20, np.linspace(0, 1, 20), None, False),  # predicted success
)
KNOWN = {1: "failure", 5: "partial"}
PREDICTED = {0: "success", 2: "success", 3: "failure", 4: "success", 6: "failure", 7: "success"}
ANNOTATED = {0, 2, 4}


def write_table_dataset(folder: Path) -> dict[str, Path]:
    """`folder/ds` (v3.0, no camera), `folder/progress.parquet`, `folder/weights.parquet` (chunk 5)."""
    root = folder / "ds"
    writer = LeRobotWriter(root, fps=10, state_dim=2, action_dim=2)
    rng = np.random.default_rng(0)
    for ep, (n, _, outcome, annotated) in enumerate(EPISODES):
        spans = {"sparse": (["reach", "grasp"], [0, n // 2], [n // 2 - 1, n - 1])} if annotated else None
        writer.add_episode(
            state=rng.normal(size=(n, 2)),
            action=rng.normal(size=(n, 2)),
            task=TASKS[ep % 2],
            annotations=spans,
            outcome=outcome,
        )
    writer.close()
    lengths = [e[0] for e in EPISODES]
    ep = np.repeat(np.arange(len(EPISODES)), lengths)
    frame = np.concatenate([np.arange(n) for n in lengths])
    progress = np.concatenate([e[1] for e in EPISODES]).astype(np.float32)
    table = ProgressTable(np.arange(len(ep)), ep, frame, {"sparse": progress})
    write_progress(folder / "progress.parquet", table)
    RABCWeights.from_progress(table, CHUNK).save(folder / "weights.parquet")
    return {"root": root, "progress": folder / "progress.parquet", "weights": folder / "weights.parquet"}


def write_mpeg4_dataset(folder: Path, lengths=(12, 16)) -> Path:
    """`folder/mp4v`: one 64x64 camera, MPEG-4 part 2; frame k of every episode has grey level 10 + 15 k."""
    root = folder / "mp4v"
    with mock.patch("sarm.data.writer._codec", lambda: ("mpeg4", {"g": "2", "qscale": "2"}, "mpeg4")):
        writer = LeRobotWriter(
            root, fps=10, state_dim=2, action_dim=2, cameras={"observation.images.top": (64, 64)}
        )
    for n in lengths:
        frames = np.zeros((n, 64, 64, 3), np.uint8)
        frames[:] = (10 + 15 * np.arange(n, dtype=np.uint8))[:, None, None, None]
        writer.add_episode(
            state=np.zeros((n, 2)),
            action=np.zeros((n, 2)),
            task="look",
            images={"observation.images.top": frames},
        )
    writer.close()
    return root
