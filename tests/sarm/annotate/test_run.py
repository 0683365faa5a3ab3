"""sarm.annotate.run: frame sampling, resuming from per-episode results, and a real kill -9 mid-run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sarm.annotate.run import AnnotateSettings, annotate_episodes, sample_frames
from sarm.cli import main
from sarm.data import open_dataset
from tests.sarm.annotate.fake_vlm import CAM, FakeVLM, make_dataset
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]


def test_frames_are_sampled_at_fps_sample_from_zero_plus_the_last_frame():
    assert sample_frames(30, 10, 1.0).tolist() == [0, 10, 20, 29]
    assert sample_frames(30, 10, 2.0).tolist() == [0, 5, 10, 15, 20, 25, 29]
    assert sample_frames(30, 30, 1.0).tolist() == [0, 29]
    assert sample_frames(30, 10, 100.0).tolist() == list(range(30))  # never a frame twice
    assert sample_frames(1000, 10, 1.0, max_frames=5).tolist() == [0, 250, 500, 750, 999]
    with pytest.raises(ValueError, match="--fps-sample"):
        sample_frames(30, 10, 0)


class Scripted:
    """A backend that answers from a list and counts its calls."""

    name = "scripted"

    def __init__(self, answers):
        self.answers, self.calls = list(answers), 0

    def chat(self, messages):
        self.calls += 1
        return self.answers.pop(0)


def test_a_rerun_reuses_annotated_episodes_and_retries_failed_ones(tmp_path):
    ds = open_dataset(make_dataset(tmp_path / "ds", ["good", "good"], [20, 20]))
    settings = AnnotateSettings(camera=CAM, sparse=["a"])
    good = '{"subtasks": [{"name": "a", "start": 0, "end": 2}]}'
    first = Scripted([good, "no idea"])
    summary = annotate_episodes(ds, settings, first, tmp_path / "w", max_retries=0, progress=False)
    assert (summary.annotated, summary.failed) == ([0], [1])
    again = Scripted([good])
    summary = annotate_episodes(ds, settings, again, tmp_path / "w", max_retries=0, progress=False)
    assert (again.calls, summary.resumed, summary.annotated) == (1, [0], [1])
    other = Scripted([good, good])  # other names: nothing saved is reused
    summary = annotate_episodes(ds, AnnotateSettings(camera=CAM, sparse=["a"], fps_sample=2.0), other,
                                tmp_path / "w", progress=False)  # fmt: skip
    assert (other.calls, summary.resumed) == (2, [])


def test_a_damaged_video_fails_its_episode_with_the_reason(tmp_path):
    root = make_dataset(tmp_path / "ds", ["good"], [20])
    ds = open_dataset(root)
    video = ds.video_path(CAM, 0)
    video.write_bytes(b"not a video")
    summary = annotate_episodes(ds, AnnotateSettings(camera=CAM, sparse=["a"]), Scripted([]),
                                tmp_path / "w", progress=False)  # fmt: skip
    assert summary.failed == [0] and "frames could not be decoded" in summary.results[0]["reason"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".tmp" not in p.name and p.suffix != ".png"}  # fmt: skip


def test_kill_9_then_rerun_keeps_finished_episodes_and_gives_identical_files(tmp_path):
    lengths = [20, 22, 24, 26, 28, 30]
    root = make_dataset(tmp_path / "ds", ["held"] * 6, lengths)
    with FakeVLM() as vlm:
        flags = ["--sparse-subtasks", "a,b", "--api-base", vlm.url, "--num-visualizations", "0"]
        assert main(["annotate", str(root), *flags, "--out-spans", str(tmp_path / "ref/spans.json")]) == 0
        out = tmp_path / "run/spans.json"
        cmd = [sys.executable, "-m", "sarm.cli", "annotate", str(root), *flags, "--out-spans", str(out)]
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        vlm.hold_after(2)  # the child's first two answers come, the rest wait: the kill lands mid-run
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = tmp_path / "run/spans.json.annotate/episodes"
        wait_until(lambda: len(list(results.glob("episode_*.json"))) >= 2, "two finished episodes", proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        vlm.release()
        finished = sorted(p.name for p in results.glob("episode_*.json"))
        assert len(finished) == 2 and not out.exists(), "the kill should land after two episodes"
        before = len(vlm.requests)
        assert main(["annotate", str(root), *flags, "--out-spans", str(out)]) == 0
        assert len(vlm.requests) - before == 6 - len(finished)  # only the unfinished episodes are asked
    assert out.read_bytes() == (tmp_path / "ref/spans.json").read_bytes()
    assert _files(tmp_path / "run/spans.json.annotate") == _files(tmp_path / "ref/spans.json.annotate")
    spans = json.loads(out.read_text())
    assert spans["5"] == [["a", 0, 15], ["b", 15, 29]]  # 3.0 s: a 0-1.5 s, b 1.5-3.0 s
    assert np.all([len(v) == 2 for v in spans.values()])
