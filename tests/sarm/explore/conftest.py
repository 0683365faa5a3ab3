"""A small v3.0 dataset (3 episodes, one camera, sparse annotations on two) with progress and weights."""

from __future__ import annotations

import os
import shutil
import threading
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chromium import CHROMIUM, MISSING

from rabc.progress_io import ProgressTable, write_progress
from sarm.data.writer import LeRobotWriter
from sarm.explore import Catalog, ExploreServer

LENGTHS = (20, 30, 25)
TASKS = ("pick the cube", "fold the towel", "pick the cube")
FPS = 10


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore") / "ds"
    writer = LeRobotWriter(
        root, fps=FPS, state_dim=2, action_dim=2, cameras={"observation.images.top": (64, 64)}
    )
    rng = np.random.default_rng(0)
    for ep, (n, task) in enumerate(zip(LENGTHS, TASKS, strict=True)):
        frames = np.zeros((n, 64, 64, 3), np.uint8)
        frames[:] = np.linspace(0, 255, n, dtype=np.uint8)[:, None, None, None]  # brighter each frame
        spans = {"sparse": (["reach", "grasp"], [0, n // 2], [n // 2 - 1, n - 1])} if ep < 2 else None
        writer.add_episode(
            state=rng.normal(size=(n, 2)),
            action=rng.normal(size=(n, 2)),
            task=task,
            images={"observation.images.top": frames},
            annotations=spans,
        )
    writer.close()
    total = sum(LENGTHS)
    ep = np.repeat(np.arange(3), LENGTHS)
    frame = np.concatenate([np.arange(n) for n in LENGTHS])
    progress = np.concatenate([np.linspace(0, 1, n) for n in LENGTHS]).astype(np.float32)
    progress[0] = np.nan  # unknown first frame of episode 0
    table = ProgressTable(np.arange(total), ep, frame, {"sparse": progress})
    write_progress(root.parent / "progress.parquet", table)
    weights = np.full(total, 0.5, np.float32)
    weights[ep == 1] = 1.0
    pq.write_table(
        pa.table({"index": np.arange(total), "episode_index": ep, "weight": weights}),
        root.parent / "weights.parquet",
    )
    return root


@contextmanager
def _serving(catalog):
    srv = ExploreServer(catalog, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="session")
def server(dataset):
    catalog = Catalog(dataset, dataset.parent / "progress.parquet", dataset.parent / "weights.parquet")
    with _serving(catalog) as srv:
        yield srv


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium for Playwright: skipped without it or playwright, except in CI (CI=true), where
    that fails."""
    if MISSING and os.environ.get("CI") == "true":
        pytest.fail(f"browser tests need chromium in CI: {MISSING}")
    if MISSING:
        pytest.skip(f"browser tests skipped: {MISSING}")
    return CHROMIUM


# ------------------------------------------------------------------------------ editing (test_edit*)


@pytest.fixture
def edit_dataset(dataset, tmp_path):
    """A fresh copy of the dataset (edits write it) with a progress file holding stage probabilities."""
    root = tmp_path / "ds"
    shutil.copytree(dataset, root, symlinks=True)
    table = pq.read_table(dataset.parent / "progress.parquet")
    n = table.num_rows
    first = np.linspace(1, 0, n, dtype=np.float32)
    probs = pa.array([[float(a), float(1 - a)] for a in first], pa.list_(pa.float32()))
    pq.write_table(table.append_column("stage_probs_sparse", probs), tmp_path / "progress.parquet")
    return root


@pytest.fixture
def edit_server(edit_dataset, dataset):
    catalog = Catalog(
        edit_dataset, edit_dataset.parent / "progress.parquet", dataset.parent / "weights.parquet"
    )
    with _serving(catalog) as srv:
        yield srv
