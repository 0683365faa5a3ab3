"""LeRobot itself reads what `sarm annotate` writes: its dataset class loads the annotated dataset, and the
subtask columns come back as written. Runs only where `lerobot` is importable (the side environment,
`.ci/lerobot`)."""

import os
import tempfile

import pytest

os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="hf-datasets-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("lerobot")

from lerobot.datasets.lerobot_dataset import LeRobotDataset

from sarm.cli import main
from tests.sarm.annotate.fake_vlm import FakeVLM, make_dataset


def test_lerobot_loads_an_annotated_dataset_and_reads_the_subtask_columns(tmp_path):
    root = make_dataset(tmp_path / "ds", ["good", "malformed", "good"], [30, 24, 40])
    with FakeVLM() as vlm:
        argv = ["annotate", str(root), "--sparse-subtasks", "a,b", "--dense-subtasks", "p,q,r"]
        argv += ["--api-base", vlm.url, "--max-retries", "0", "--num-visualizations", "0"]
        assert main(argv) == 1  # episode 1 never gets a valid answer
    ds = LeRobotDataset("local/x", root=root, video_backend="pyav")
    assert len(ds) == 94 and ds[30]["episode_index"].item() == 1  # frames still load
    episodes = ds.meta.episodes
    # 3.0 s: a 0-1.5 s, b 1.5-3.0 s -> frames int(s * 10): 0-15, 15-29 (30 == length: the last frame)
    assert episodes[0]["sparse_subtask_names"] == ["a", "b"]
    assert episodes[0]["sparse_subtask_start_frames"] == [0, 15]
    assert episodes[0]["sparse_subtask_end_frames"] == [15, 29]
    assert episodes[0]["sparse_subtask_end_times"] == [1.5, 3.0]
    # 4.0 s, dense: 1.3 / 2.7 s -> 13 / 27
    assert episodes[2]["dense_subtask_names"] == ["p", "q", "r"]
    assert episodes[2]["dense_subtask_start_frames"] == [0, 13, 27]
    assert episodes[2]["dense_subtask_end_frames"] == [13, 27, 39]
    assert episodes[1]["sparse_subtask_names"] is None and episodes[1]["dense_subtask_names"] is None
