"""sarm.data.writer.LeRobotWriter: write v3.0 datasets, read them back, refuse bad input."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm.data import DatasetError, open_dataset
from sarm.data.writer import LeRobotWriter
from sarm.labels.annotations import read_lerobot_annotations
from sarm.labels.schema import Span

av = pytest.importorskip("av")

CAM = "observation.images.top"
FPS = 30
LENGTHS = (20, 35, 12)
TASKS = ("pick the cube", "open the drawer", "pick the cube")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
SPARSE = {0: (["reach", "grasp"], [0, 10], [10, 19]), 2: (["reach", "grasp"], [0, 6], [6, 11])}
DENSE = {2: (["a", "b", "c"], [0, 4, 9], [3, 8, 11])}


def gray(position):
    """Gray level of global frame `position` (as tests/sarm/data/test_video.py codes its frames)."""
    return 16 + (np.asarray(position) * 7) % 224


def levels_of(images):
    return np.rint(images.reshape(len(images), -1).mean(axis=1)).astype(int)


def episode_arrays(ep, start, length):
    """State, action, frames and reward of episode `ep` whose first frame is global frame `start`."""
    t = np.arange(length, dtype=np.float64)[:, None]
    state = np.concatenate([t + 100 * ep, np.sin(t), np.full_like(t, ep)], axis=1)  # float64, cast on write
    action = (np.cos(t + ep) * np.array([1.0, -2.0])).astype(np.float32)
    frames = np.broadcast_to(gray(start + np.arange(length))[:, None, None, None], (length, 64, 64, 3))
    return state, action, frames.astype(np.uint8), np.linspace(0, 1, length, dtype=np.float32)


def write_example(root, lengths=LENGTHS, **kwargs):
    """The 3-episode dataset every test reads: one camera, a reward column, sparse and dense spans."""
    extra = {"next.reward": {"dtype": "float32", "shape": (1,)}}
    with LeRobotWriter(
        root, fps=FPS, state_dim=3, action_dim=2, cameras={CAM: (64, 64)}, extra_features=extra, **kwargs
    ) as writer:
        start = 0
        for ep, length in enumerate(lengths):
            state, action, frames, reward = episode_arrays(ep, start, length)
            annotations = {h: spans[ep] for h, spans in (("sparse", SPARSE), ("dense", DENSE)) if ep in spans}
            index = writer.add_episode(
                state=state,
                action=action,
                task=TASKS[ep],
                images={CAM: frames},
                annotations=annotations or None,
                extra={"next.reward": reward},
            )
            assert index == ep
            start += length
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("writer") / "ds")


def small_writer(root, **kwargs):
    return LeRobotWriter(root, fps=FPS, state_dim=3, action_dim=2, **kwargs)


# ---------------------------------------------------------------------------------------- reading


def test_layout_and_info(root):
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, sum(LENGTHS), 2)
    assert info["splits"] == {"train": "0:3"}
    assert list(info["features"]) == [
        "observation.state",
        "action",
        "next.reward",
        CAM,
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [3], "names": None}
    assert info["features"]["next.reward"]["shape"] == [1]
    video = info["features"][CAM]
    assert video["dtype"] == "video" and video["shape"] == [64, 64, 3]
    assert video["info"]["video.fps"] == FPS and video["info"]["is_depth_map"] is False
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "meta/temporal_proportions_dense.json",
        "meta/temporal_proportions_sparse.json",
        f"videos/{CAM}/chunk-000/file-000.mp4",
    ]
    schema = pq.read_schema(root / "data" / "chunk-000" / "file-000.parquet")
    state = schema.field("observation.state").type  # as LeRobot's Sequence(length=3, float32)
    assert pa.types.is_fixed_size_list(state) and (state.list_size, state.value_type) == (3, pa.float32())
    assert schema.field("timestamp").type == schema.field("next.reward").type == pa.float32()
    assert pq.ParquetFile(root / "data" / "chunk-000" / "file-000.parquet").num_row_groups == 3  # per episode


def test_open_dataset_reads_back_what_was_written(root):
    ds = open_dataset(root)
    assert ds.version == "v3.0" and ds.fps == FPS and ds.camera_keys == [CAM]
    np.testing.assert_array_equal(ds.episodes, [0, 1, 2])
    np.testing.assert_array_equal(ds.episode_lengths, LENGTHS)
    assert ds.tasks == list(TASKS) and ds.task_texts == ["pick the cube", "open the drawer"]
    np.testing.assert_array_equal(ds.index, np.arange(sum(LENGTHS)))
    np.testing.assert_array_equal(ds.frame_index, np.concatenate([np.arange(n) for n in LENGTHS]))
    np.testing.assert_array_equal(ds.episode_index, np.repeat([0, 1, 2], LENGTHS))
    np.testing.assert_array_equal(ds.column("task_index"), np.repeat([0, 1, 0], LENGTHS))
    np.testing.assert_allclose(ds.timestamps, ds.frame_index / FPS, atol=1e-6)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    for ep, (start, length) in enumerate(zip(starts, LENGTHS, strict=True)):
        state, action, _, reward = episode_arrays(ep, start, length)
        np.testing.assert_array_equal(ds.state([ep]), state.astype(np.float32))
        np.testing.assert_array_equal(ds.column("action", [ep]), action)
        np.testing.assert_array_equal(ds.column("next.reward", [ep]), reward)


def test_decoded_frames_are_the_written_frames(root):
    ds = open_dataset(root)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    for ep, start in enumerate(starts):
        chunks = list(ds.decode(CAM, ep))
        images = np.concatenate([i for _, i in chunks])
        assert images.shape == (LENGTHS[ep], 64, 64, 3)
        np.testing.assert_allclose(levels_of(images), gray(start + np.arange(LENGTHS[ep])), atol=3)


def test_annotations_round_trip(root, recwarn):
    for head, written in (("sparse", SPARSE), ("dense", DENSE)):
        spans = read_lerobot_annotations(root, head)
        assert spans == {
            ep: [Span(*s) for s in zip(*written[ep], strict=True)] if ep in written else None
            for ep in range(3)
        }
    assert not [w for w in recwarn if "clipped" in str(w.message)]  # inclusive ends: nothing to clip
    table = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    row = table.slice(2, 1).to_pylist()[0]
    assert row["dense_subtask_start_times"] == [0.0, 4 / FPS, 9 / FPS]
    assert row["dense_subtask_end_times"] == [3 / FPS, 8 / FPS, 11 / FPS]
    proportions = json.loads((root / "meta" / "temporal_proportions_sparse.json").read_text())
    assert list(proportions) == ["reach", "grasp"] and sum(proportions.values()) == pytest.approx(1.0)


def test_episode_table_locates_rows_and_frames(root):
    rows = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    bounds = np.concatenate([[0], np.cumsum(LENGTHS)])
    for ep, row in enumerate(rows):
        assert (row["episode_index"], row["length"], row["tasks"]) == (ep, LENGTHS[ep], [TASKS[ep]])
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (bounds[ep], bounds[ep + 1])
        assert row[f"videos/{CAM}/from_timestamp"] == pytest.approx(bounds[ep] / FPS)
        assert row[f"videos/{CAM}/to_timestamp"] == pytest.approx(bounds[ep + 1] / FPS)
        assert row["stats/observation.state/count"] == [LENGTHS[ep]]
        assert np.asarray(row[f"stats/{CAM}/mean"]).shape == (3, 1, 1)


def test_stats_match_numpy(root):
    stats = json.loads((root / "meta" / "stats.json").read_text())
    arrays = [episode_arrays(ep, s, n) for ep, (s, n) in enumerate(zip([0, 20, 55], LENGTHS, strict=True))]
    for key, x in (
        ("observation.state", np.concatenate([a[0] for a in arrays]).astype(np.float32)),
        ("action", np.concatenate([a[1] for a in arrays])),
    ):
        x = x.astype(np.float64)
        np.testing.assert_allclose(stats[key]["mean"], x.mean(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(stats[key]["std"], x.std(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(stats[key]["min"], x.min(0))
        np.testing.assert_array_equal(stats[key]["max"], x.max(0))
        assert stats[key]["count"] == [sum(LENGTHS)]
        width = (x.max(0) - x.min(0)) / 5000  # quantiles come from a 5000-bin histogram of all frames
        for q, level in QUANTILES.items():
            exact = np.quantile(x, level, axis=0, method="inverted_cdf")
            np.testing.assert_array_less(np.abs(np.asarray(stats[key][q]) - exact), width + 1e-12)
    # the state's last column is the episode index: constant within episodes, so pooling the episodes'
    # quantiles (as LeRobot does) would give q01 == q99 == its mean; over all frames they spread 0..2
    np.testing.assert_allclose(
        [stats["observation.state"][q][2] for q in QUANTILES], [0, 0, 1, 2, 2], atol=1e-3
    )
    frames = np.concatenate([a[2] for a in arrays]) / 255.0  # every frame is sampled below 100 per episode
    image = {k: np.asarray(v) for k, v in stats[CAM].items()}
    assert image["mean"].shape == (3, 1, 1) and image["count"].tolist() == [sum(LENGTHS)]
    np.testing.assert_allclose(image["mean"][:, 0, 0], frames.mean((0, 1, 2)), atol=1e-9)
    np.testing.assert_allclose(image["std"][:, 0, 0], frames.std((0, 1, 2)), atol=1e-9)
    np.testing.assert_allclose(image["min"][:, 0, 0], frames.min((0, 1, 2)))
    np.testing.assert_allclose(image["max"][:, 0, 0], frames.max((0, 1, 2)))
    for q, level in QUANTILES.items():
        exact = np.quantile(frames.reshape(-1, 3), level, axis=0, method="inverted_cdf")
        np.testing.assert_allclose(image[q][:, 0, 0], exact, atol=1e-12)
    mean, std = open_dataset(root).stats("observation.state")  # what sarm.data normalises with
    np.testing.assert_allclose(mean, stats["observation.state"]["mean"])
    np.testing.assert_allclose(std, stats["observation.state"]["std"])


def test_small_size_limits_give_one_file_per_episode(tmp_path):
    root = write_example(tmp_path / "ds", data_file_mb=1e-6, video_file_mb=1e-6)
    assert len(list((root / "data").rglob("*.parquet"))) == 3
    assert len(list((root / "videos").rglob("*.mp4"))) == 3
    ds = open_dataset(root)
    np.testing.assert_array_equal(ds.index, np.arange(sum(LENGTHS)))
    images = np.concatenate([i for _, i in ds.decode(CAM, 2)])
    np.testing.assert_allclose(levels_of(images), gray(55 + np.arange(12)), atol=3)


def test_without_cameras_or_annotations(tmp_path):
    with small_writer(tmp_path / "ds") as writer:
        writer.add_episode(state=np.ones((5, 3)), action=np.zeros((5, 2)), task="idle")
    ds = open_dataset(tmp_path / "ds")
    assert ds.camera_keys == [] and ds.num_frames == 5
    assert not (tmp_path / "ds" / "videos").exists()
    with pytest.raises(ValueError, match="no SARM annotation columns"):
        read_lerobot_annotations(tmp_path / "ds")


def test_episodes_reach_disk_before_close(tmp_path):
    writer = small_writer(tmp_path / "ds", cameras={CAM: (64, 64)})
    data = tmp_path / "ds" / "data" / "chunk-000" / "file-000.parquet"
    sizes = []
    for ep in range(2):
        state, action, frames, _ = episode_arrays(ep, 0, 40)
        writer.add_episode(state=state, action=action, task="t", images={CAM: frames})
        sizes.append(data.stat().st_size)
    assert 0 < sizes[0] < sizes[1]  # each episode is a row group written when it is added
    assert (tmp_path / "ds" / "videos" / CAM / "chunk-000" / "file-000.mp4").stat().st_size > 0
    writer.close()


# ----------------------------------------------------------------------------- unfinished writers


def test_unclosed_writer_leaves_no_info_json(tmp_path):
    writer = small_writer(tmp_path / "ds")
    writer.add_episode(state=np.ones((5, 3)), action=np.zeros((5, 2)), task="t")
    assert (tmp_path / "ds" / "data").is_dir() and not (tmp_path / "ds" / "meta" / "info.json").exists()
    with pytest.raises(DatasetError, match=r"is not a LeRobot dataset root: .*info.json. not found"):
        open_dataset(tmp_path / "ds")  # e.g. the process was killed here


def test_exception_in_with_block_leaves_an_unfinished_folder(tmp_path):
    with pytest.raises(KeyError), small_writer(tmp_path / "ds", cameras={CAM: (64, 64)}) as writer:
        state, action, frames, _ = episode_arrays(0, 0, 10)
        writer.add_episode(state=state, action=action, task="t", images={CAM: frames})
        raise KeyError("the simulator crashed")
    assert not (tmp_path / "ds" / "meta" / "info.json").exists()
    with pytest.raises(RuntimeError, match="failed LeRobotWriter"):
        writer.add_episode(state=state, action=action, task="t", images={CAM: frames})
    with pytest.raises(RuntimeError, match="has no meta/info.json and is not a dataset"):
        writer.close()


def test_close_is_idempotent_and_final(tmp_path):
    writer = small_writer(tmp_path / "ds")
    with pytest.raises(ValueError, match="no episode was added"):
        writer.close()
    writer.add_episode(state=np.ones((5, 3)), action=np.zeros((5, 2)), task="t")
    assert writer.close() == writer.close() == tmp_path / "ds"
    with pytest.raises(RuntimeError, match="add_episode\\(\\) on a closed LeRobotWriter"):
        writer.add_episode(state=np.ones((5, 3)), action=np.zeros((5, 2)), task="t")


# ------------------------------------------------------------------------------------------ errors


def good(**changes):
    state, action, frames, _ = episode_arrays(0, 0, 10)
    episode = {"state": state, "action": action, "task": "t", "images": {CAM: frames}}
    return {**episode, **changes}


NAN_STATE = np.ones((10, 3))
NAN_STATE[4, 1] = np.nan
EPISODE_ERRORS = {
    "action length": (good(action=np.zeros((9, 2))), r"`action` has 9 frames but the state has 10"),
    "state width": (good(state=np.zeros((10, 4))), r"`observation.state` should have shape \(T, 3\)"),
    "state dtype": (good(state=np.full((10, 3), "x")), r"should hold float32 values, but got dtype <U1"),
    "state NaN": (good(state=NAN_STATE), r"`observation.state` is not finite .* at frame 4 \(1 frames"),
    "image length": (
        good(images={CAM: np.zeros((9, 64, 64, 3), np.uint8)}),
        r"camera 'observation.images.top' should be uint8 RGB of shape \(10, 64, 64, 3\)",
    ),
    "image dtype": (good(images={CAM: np.zeros((10, 64, 64, 3))}), r"but got float64 \(10, 64, 64, 3\)"),
    "missing camera": (good(images={}), r"images should have exactly the keys .* but lacks \['obs"),
    "unknown extra": (good(extra={"reward": np.zeros(10)}), r"extra .* has unknown \['reward'\]"),
    "empty task": (good(task=""), "task should be a non-empty string"),
    "unknown head": (good(annotations={"coarse": (["a"], [0], [9])}), "head should be one of"),
    "spans not a triple": (good(annotations={"sparse": None}), "three lists of one length"),
    "spans not lists": (good(annotations={"sparse": ("a", 0, 9)}), "three lists of one length"),
    "ragged spans": (good(annotations={"sparse": (["a", "b"], [0], [9])}), "three lists of one length"),
    "reversed span": (good(annotations={"sparse": (["a"], [5], [2])}), r"span \('a', 5, 2\) .* reversed"),
    "overlap": (good(annotations={"sparse": (["a", "b"], [0, 3], [5, 9])}), "overlap by 3 frames"),
    "span past end": (good(annotations={"sparse": (["a"], [0], [10])}), "outside the episode's frames 0..9"),
}


@pytest.mark.parametrize("case", list(EPISODE_ERRORS))
def test_bad_episode_is_refused_before_anything_is_written(tmp_path, case):
    episode, message = EPISODE_ERRORS[case]
    writer = small_writer(tmp_path / "ds", cameras={CAM: (64, 64)})
    with pytest.raises(ValueError, match=message):
        writer.add_episode(**episode)
    assert not (tmp_path / "ds" / "data").exists()  # nothing written, and the writer goes on
    assert writer.add_episode(**good()) == 0
    writer.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fps": 0}, ValueError, "fps should be a positive integer value, but got fps=0"),
        ({"cameras": {CAM: (63, 64)}}, ValueError, "needs positive even height and width"),
        ({"action_key": "observation.state"}, ValueError, r"\['observation.state'\] are repeated"),
        ({"extra_features": {"a/b": {"dtype": "float32", "shape": (1,)}}}, ValueError, "contain '/'"),
        ({"extra_features": {"r": {"dtype": "float16", "shape": (1,)}}}, ValueError, "extra feature 'r'"),
        ({"data_file_mb": 0}, ValueError, "data_file_mb should be a positive number"),
    ],
)
def test_bad_settings_are_refused(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        LeRobotWriter(tmp_path / "ds", **{"fps": FPS, "state_dim": 3, "action_dim": 2, **kwargs})


def test_non_empty_root_is_refused(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="is not an empty folder"):
        small_writer(tmp_path / "ds")
