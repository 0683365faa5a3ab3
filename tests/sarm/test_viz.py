"""Tests for sarm.viz: per-episode progress PNGs from a progress parquet file."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("matplotlib")

from sarm import viz
from sarm.viz import plot_episode, plot_progress_file

PNG = b"\x89PNG\r\n\x1a\n"
LENGTHS = {0: 40, 3: 25, 7: 60}


def write_progress(path, lengths=LENGTHS, *, dense=True, probs=0, nan_episodes=(), null_probs=()):
    """A progress file in LeRobot's schema; `probs=K` adds stage_probs_<head> columns with K stages."""
    tables, first = [], 0
    for episode, length in lengths.items():
        frame = np.arange(length, dtype=np.int64)
        t = (frame / max(length - 1, 1)).astype(np.float32)
        if episode in nan_episodes:
            t = np.full(length, np.nan, np.float32)
        cols = {
            "index": first + frame,
            "episode_index": np.full(length, episode, np.int64),
            "frame_index": frame,
            "progress_sparse": pa.array(t),
        }
        if dense:
            cols["progress_dense"] = pa.array(np.sqrt(t))
        for head in ["sparse", "dense"][: 1 + dense] if probs else []:
            if episode in null_probs:
                cols[f"stage_probs_{head}"] = pa.nulls(length, pa.list_(pa.float32()))
            else:
                p = np.full((length, probs), 1.0 / probs, np.float32)
                cols[f"stage_probs_{head}"] = pa.array(list(p), type=pa.list_(pa.float32()))
        tables.append(pa.table(cols))
        first += length
    pq.write_table(pa.concat_tables(tables), path, row_group_size=30)
    return path


class FakeDataset:
    """Duck-types sarm.data.LeRobotDataset.decode: gray frames, in chunks of 4."""

    fps = 10.0

    def __init__(self):
        self.camera_keys = ["observation.images.top"]
        self.calls = []

    def decode(self, camera, episode_index, frames=None):
        self.calls.append((camera, episode_index, np.asarray(frames).tolist()))
        frames = np.asarray(frames, dtype=np.int64)
        for lo in range(0, len(frames), 4):
            pos = frames[lo : lo + 4]
            yield pos, np.full((len(pos), 16, 20, 3), 128, np.uint8)


class BrokenDataset(FakeDataset):
    def decode(self, camera, episode_index, frames=None):
        raise FileNotFoundError(f"video for episode {episode_index} is missing")


def labelled_axes(fig, label):
    return [ax for ax in fig.axes if ax.get_label() == label]


def capture(monkeypatch) -> list[dict]:
    """Spy on viz._figure: a summary of each figure, taken before plot_episode saves and clears it."""
    summaries, real = [], viz._figure

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        progress_ax = next(ax for ax in fig.axes if ax.get_label().startswith("progress_"))
        summaries.append(
            {
                "axes": [ax.get_label() for ax in fig.axes if ax.get_label() != "frame"],
                "images": [len(ax.images) for ax in labelled_axes(fig, "frame")],
                "markers": [ln.get_xdata()[0] for ln in progress_ax.get_lines() if ln.get_linestyle() == ":"],
                "title": fig.get_suptitle(),
                "texts": [t.get_text() for ax in fig.axes for t in ax.texts],
            }
        )
        return fig

    monkeypatch.setattr(viz, "_figure", spy)
    return summaries


# -- files --------------------------------------------------------------------------------------------


def test_writes_valid_pngs_per_episode(tmp_path):
    src = write_progress(tmp_path / "p.parquet")
    paths = plot_progress_file(src, tmp_path / "viz", episodes=[7, 0])
    assert [p.name for p in paths] == ["episode_000007.png", "episode_000000.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG
        assert 5_000 < len(data) < 2_000_000
    written = sorted(p.name for p in (tmp_path / "viz").iterdir())
    assert written == ["episode_000000.png", "episode_000007.png"]


def test_default_episodes_are_seeded_sample_of_present(tmp_path):
    src = write_progress(tmp_path / "p.parquet")
    a = plot_progress_file(src, tmp_path / "a", num_episodes=2, seed=1)
    b = plot_progress_file(src, tmp_path / "b", num_episodes=2, seed=1)
    assert [p.name for p in a] == [p.name for p in b]
    episodes = [int(p.stem.split("_")[1]) for p in a]
    assert episodes == sorted(episodes) and set(episodes) <= set(LENGTHS) and len(episodes) == 2
    every = plot_progress_file(src, tmp_path / "c", num_episodes=10)
    assert [p.name for p in every] == [f"episode_{e:06d}.png" for e in sorted(LENGTHS)]


def test_plot_episode_returns_path_and_leaves_no_temp_file(tmp_path):
    t = np.linspace(0, 1, 30)
    out = plot_episode(tmp_path / "sub" / "ep.png", 4, {"sparse": t}, labels={"sparse": t**2}, fps=30)
    assert out == tmp_path / "sub" / "ep.png" and out.read_bytes()[:8] == PNG
    assert [p.name for p in out.parent.iterdir()] == ["ep.png"]


def test_reads_only_requested_episodes_and_columns(tmp_path, monkeypatch):
    src = write_progress(tmp_path / "p.parquet", probs=3)
    calls = []
    real = pq.read_table

    def spy(*args, **kwargs):
        calls.append(kwargs)
        table = real(*args, **kwargs)
        assert set(table.column("episode_index").to_numpy().tolist()) <= {3}
        return table

    monkeypatch.setattr(viz.pq, "read_table", spy)
    plot_progress_file(src, tmp_path / "viz", episodes=[3])
    assert len(calls) == 1
    assert calls[0]["filters"] == [("episode_index", "in", [3])]
    assert "index" not in calls[0]["columns"]
    needed = {"episode_index", "frame_index", "progress_sparse", "stage_probs_sparse"}
    assert needed <= set(calls[0]["columns"])


# -- panels -------------------------------------------------------------------------------------------


def test_panels_follow_columns(tmp_path):
    t = np.linspace(0, 1, 20, dtype=np.float32)
    probs = np.tile(np.array([0.2, 0.3, 0.5], np.float32), (20, 1))
    fig = viz._figure(
        {"sparse": t, "dense": t},
        stage_probs={"sparse": probs, "dense": probs},
        stage_names={"sparse": ["grasp", "lift", "place"]},
    )
    assert len(labelled_axes(fig, "progress_sparse")) == 1 and len(labelled_axes(fig, "progress_dense")) == 1
    stages = labelled_axes(fig, "stage_probs_sparse")
    assert len(stages) == 1 and len(labelled_axes(fig, "stage_probs_dense")) == 1
    assert [t.get_text() for t in stages[0].get_legend().get_texts()] == ["grasp", "lift", "place"]
    fig = viz._figure({"sparse": t})
    assert [ax.get_label() for ax in fig.axes] == ["progress_sparse"]


def test_stage_panel_only_when_file_has_probs(tmp_path, monkeypatch):
    figures = capture(monkeypatch)
    plot_progress_file(write_progress(tmp_path / "a.parquet", probs=4), tmp_path / "a", episodes=[0])
    plot_progress_file(write_progress(tmp_path / "b.parquet", dense=False), tmp_path / "b", episodes=[0])
    plot_progress_file(
        write_progress(tmp_path / "c.parquet", probs=4, null_probs={3}), tmp_path / "c", episodes=[3]
    )
    with_probs, plain, null_probs = (f["axes"] for f in figures)
    assert with_probs == ["progress_sparse", "progress_dense", "stage_probs_sparse", "stage_probs_dense"]
    assert plain == ["progress_sparse"]
    assert null_probs == ["progress_sparse", "progress_dense"]


def test_labels_drawn_dashed(tmp_path):
    t = np.linspace(0, 1, 20)
    fig = viz._figure({"sparse": t}, labels={"sparse": t**2})
    (ax,) = fig.axes
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_label() for line in dashed] == ["label"]
    np.testing.assert_allclose(dashed[0].get_ydata(), t**2)


def test_nan_episode_says_no_prediction(tmp_path, monkeypatch):
    src = write_progress(tmp_path / "p.parquet", nan_episodes={3})
    figures = capture(monkeypatch)
    (path,) = plot_progress_file(src, tmp_path / "viz", episodes=[3])
    assert path.read_bytes()[:8] == PNG
    assert "no prediction" in figures[0]["title"]
    assert figures[0]["texts"] == ["no prediction", "no prediction"]  # both heads


# -- frame strip --------------------------------------------------------------------------------------


def test_strip_from_dataset(tmp_path, monkeypatch):
    src = write_progress(tmp_path / "p.parquet")
    figures = capture(monkeypatch)
    ds = FakeDataset()
    (path,) = plot_progress_file(src, tmp_path / "viz", episodes=[7], dataset=ds, num_frames=5)
    assert path.read_bytes()[:8] == PNG
    assert ds.calls == [("observation.images.top", 7, [0, 15, 30, 44, 59])]
    assert figures[0]["images"] == [1] * 5
    assert figures[0]["markers"] == [0, 15, 30, 44, 59]


def test_strip_camera_argument(tmp_path):
    ds = FakeDataset()
    ds.camera_keys = [*ds.camera_keys, "wrist"]  # an unknown camera is an error (tests/sarm/cli/test_viz.py)
    plot_progress_file(
        write_progress(tmp_path / "p.parquet"),
        tmp_path / "viz",
        episodes=[0],
        dataset=ds,
        camera="wrist",
        num_frames=2,
    )
    assert ds.calls == [("wrist", 0, [0, 39])]


def test_decode_failure_warns_and_still_writes(tmp_path):
    src = write_progress(tmp_path / "p.parquet")
    with pytest.warns(UserWarning, match=r"episode 3: .*FileNotFoundError.*missing"):
        (path,) = plot_progress_file(src, tmp_path / "viz", episodes=[3], dataset=BrokenDataset())
    assert path.read_bytes()[:8] == PNG


# -- errors -------------------------------------------------------------------------------------------


def test_unknown_episode(tmp_path):
    src = write_progress(tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=r"episode\(s\) \[5\] not in .*e\.g\. \[0, 3, 7\]"):
        plot_progress_file(src, tmp_path / "viz", episodes=[0, 5])
    assert not (tmp_path / "viz").exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet.*sarm progress"):
        plot_progress_file(tmp_path / "nope.parquet", tmp_path / "viz")


def test_missing_progress_column(tmp_path):
    src = tmp_path / "p.parquet"
    pq.write_table(pa.table({"episode_index": [0, 0], "frame_index": [0, 1], "reward": [0.1, 0.2]}), src)
    with pytest.raises(ValueError, match=r"progress_<head>.*available: \['episode_index'.*sarm progress"):
        plot_progress_file(src, tmp_path / "viz", episodes=[0])


def test_mismatched_lengths_and_stage_names():
    t = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match=r"labels\['sparse'\] has 9 frames, but the episode has 10"):
        viz._figure({"sparse": t}, labels={"sparse": t[:9]})
    with pytest.raises(ValueError, match=r"stage_names\['sparse'\] has 2 names, but stage_probs has 3"):
        viz._figure(
            {"sparse": t}, stage_probs={"sparse": np.ones((10, 3)) / 3}, stage_names={"sparse": ["a", "b"]}
        )
    with pytest.raises(ValueError, match="num_episodes should be a positive integer value"):
        plot_progress_file("x.parquet", "viz", num_episodes=0)


def test_missing_matplotlib_names_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'sarm-rabc\[plot\]'"):
        viz._figure({"sparse": np.zeros(3)})


def test_no_pyplot_figures_left(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_progress_file(
            write_progress(tmp_path / "p.parquet", probs=2),
            tmp_path / "viz",
            num_episodes=3,
            dataset=FakeDataset(),
        )
    assert plt.get_fignums() == before
