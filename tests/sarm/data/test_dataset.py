"""sarm.data: real LeRobot v2.1 / v3.0 datasets, synthetic ones with gray-coded videos, and messy layouts."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm.data import DatasetError, MissingVideoError, open_dataset
from tests.conftest import SHARED

G1 = SHARED / "datasets" / "g1_pick_bottle_v21_first20"
SO101 = SHARED / "datasets" / "so101_record_test_v30"
G1_CAM = "observation.images.cam_high"

CAM = "observation.images.cam"
LENGTHS = (20, 25, 30)
TASKS = ("pick the cube", "place the cube", "pick the cube")
GAP = 3  # v3.0: unrelated frames between episodes in the shared video, so from_timestamp matters
FPS = 30


def _features(state_name="observation.state"):
    scalar = {"shape": [1], "names": None}
    return {
        state_name: {"dtype": "float32", "shape": [4], "names": None},
        "action": {"dtype": "float32", "shape": [4], "names": None},
        CAM: {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channels"]},
        "timestamp": {"dtype": "float32", **scalar},
        **{k: {"dtype": "int64", **scalar} for k in ("frame_index", "episode_index", "index", "task_index")},
    }


def _rows(episodes, lengths, state_name="observation.state"):
    """Data rows in LeRobot's schema; state row = [index, frame, episode, 1]."""
    frame = np.concatenate([np.arange(n) for n in lengths])
    episode = np.repeat(episodes, lengths)
    index = np.arange(len(frame))
    state = np.stack([index, frame, episode, np.ones_like(index)], axis=1).astype(np.float32)
    vectors = lambda x: pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 4)  # noqa: E731
    task = np.array([TASKS.index(TASKS[e]) for e in episode], dtype=np.int64)
    return pa.table(
        {
            state_name: vectors(state),
            "action": vectors(-state),
            "timestamp": pa.array((frame / FPS).astype(np.float32)),
            "frame_index": frame,
            "episode_index": episode,
            "index": index,
            "task_index": task,
        }
    )


def _write_info(root, version, **extra):
    info = {"codebase_version": version, "fps": FPS, "chunks_size": 1000, "total_episodes": len(LENGTHS)}
    info.update(total_frames=sum(LENGTHS), features=_features(extra.pop("state_name", "observation.state")))
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "info.json").write_text(json.dumps({**info, **extra}))


def make_v21(root, state_name="observation.state"):
    """v2.1: one data file and one video per episode; episode e's frame k has gray(k + 11 e)."""
    from tests.sarm.data.test_video import gray, write_video

    data = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    videos = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    _write_info(root, "v2.1", data_path=data, video_path=videos, state_name=state_name)
    table = _rows(np.arange(len(LENGTHS)), LENGTHS, state_name)
    for e, n in enumerate(LENGTHS):
        path = root / data.format(episode_chunk=0, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.compute.equal(table["episode_index"], e)), path)
        write_video(
            root / videos.format(episode_chunk=0, video_key=CAM, episode_index=e), gray(np.arange(n) + 11 * e)
        )
    lines = [{"episode_index": e, "tasks": [TASKS[e]], "length": n} for e, n in enumerate(LENGTHS)]
    (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    tasks = [{"task_index": i, "task": t} for i, t in enumerate(dict.fromkeys(TASKS))]
    (root / "meta" / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tasks))
    return root


def v30_starts():
    """Video frame where each v3.0 episode starts: episodes separated by GAP unrelated frames."""
    return np.concatenate([[0], np.cumsum(np.array(LENGTHS) + GAP)[:-1]])


def make_v30(root, split_at=None):
    """v3.0: ONE video shared by all episodes, video frame p has gray(p); data split at row `split_at`."""
    from tests.sarm.data.test_video import gray, write_video

    _write_info(
        root,
        "v3.0",
        data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    )
    (root / "data" / "chunk-000").mkdir(parents=True)
    rows = _rows(np.arange(len(LENGTHS)), LENGTHS)
    parts = [rows] if split_at is None else [rows.slice(0, split_at), rows.slice(split_at)]
    for i, part in enumerate(parts):
        pq.write_table(part, root / "data" / "chunk-000" / f"file-{i:03d}.parquet")
    starts = v30_starts()
    write_video(
        root / "videos" / CAM / "chunk-000" / "file-000.mp4", gray(np.arange(starts[-1] + LENGTHS[-1]))
    )
    zeros, bounds = [0] * len(LENGTHS), np.concatenate([[0], np.cumsum(LENGTHS)])
    episodes = {
        "episode_index": list(range(len(LENGTHS))),
        "tasks": [[t] for t in TASKS],
        "length": list(LENGTHS),
        "data/chunk_index": zeros,
        "data/file_index": zeros,
        "dataset_from_index": bounds[:-1].tolist(),
        "dataset_to_index": bounds[1:].tolist(),
        f"videos/{CAM}/chunk_index": zeros,
        f"videos/{CAM}/file_index": zeros,
        f"videos/{CAM}/from_timestamp": (starts / FPS).tolist(),
        f"videos/{CAM}/to_timestamp": ((starts + np.array(LENGTHS)) / FPS).tolist(),
    }
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(episodes), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    texts = list(dict.fromkeys(TASKS))
    pq.write_table(
        pa.table({"task_index": range(len(texts)), "__index_level_0__": texts}),
        root / "meta" / "tasks.parquet",
    )
    return root


def decoded(ds, camera, episode, frames=None, **kwargs):
    from tests.sarm.data.test_video import levels_of

    chunks = list(ds.decode(camera, episode, frames, **kwargs))
    positions, images = np.concatenate([p for p, _ in chunks]), np.concatenate([i for _, i in chunks])
    return positions, images, levels_of(images)


@pytest.fixture(scope="module")
def v21(tmp_path_factory):
    pytest.importorskip("av")
    return make_v21(tmp_path_factory.mktemp("v21") / "ds")


@pytest.fixture(scope="module")
def v30(tmp_path_factory):
    pytest.importorskip("av")
    return make_v30(tmp_path_factory.mktemp("v30") / "ds")


def copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "copy")


# ------------------------------------------------------------------------------------- real datasets


@pytest.mark.parametrize(
    ("root", "version", "episodes", "frames", "dim", "task", "cameras"),
    [
        (G1, "v2.1", 20, 7844, 26, "Pick up the yellow bottle on the table.", [G1_CAM]),
        (SO101, "v3.0", 4, 1492, 6, "Pick the orange cube and place it in the box",
         ["observation.images.front", "observation.images.top"]),
    ],
)  # fmt: skip
def test_real_dataset_layout(root, version, episodes, frames, dim, task, cameras):
    ds = open_dataset(root)
    assert (ds.version, ds.num_episodes, ds.num_frames, ds.fps) == (version, episodes, frames, 30.0)
    np.testing.assert_array_equal(ds.episodes, np.arange(episodes))
    assert ds.episode_lengths.sum() == frames and ds.episode_lengths.dtype == np.int64
    np.testing.assert_array_equal(ds.episode_starts, np.cumsum(ds.episode_lengths) - ds.episode_lengths)
    assert ds.tasks == [task] * episodes and ds.task_texts == [task]
    assert ds.camera_keys == cameras and ds.state_key == "observation.state" and ds.state_dim == dim
    state = ds.state()
    assert state.shape == (frames, dim) and state.dtype == np.float32
    np.testing.assert_array_equal(ds.index, np.arange(frames))
    np.testing.assert_array_equal(ds.episode_index, np.repeat(ds.episodes, ds.episode_lengths))
    np.testing.assert_array_equal(
        ds.frame_index, np.arange(frames) - np.repeat(ds.episode_starts, ds.episode_lengths)
    )
    np.testing.assert_allclose(ds.timestamps, ds.frame_index / 30.0, atol=1e-5)
    mean, std = ds.stats("observation.state")
    assert mean.shape == std.shape == (dim,) and mean.dtype == np.float64 and (std >= 0).all()
    np.testing.assert_allclose(mean, state.mean(0, dtype=np.float64), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(std, state.std(0, dtype=np.float64), rtol=1e-4, atol=1e-3)
    part = ds.column("action", [2, 0])  # sorted, in concatenated order
    np.testing.assert_array_equal(part, ds.column("action")[np.r_[ds.frames_of(0), ds.frames_of(2)]])
    assert ds.fingerprint() == open_dataset(root).fingerprint() and len(ds.fingerprint()) == 16
    assert f"episodes={episodes}, frames={frames}" in repr(ds)


def test_fingerprints_differ_between_datasets():
    assert open_dataset(G1).fingerprint() != open_dataset(SO101).fingerprint()


def test_g1_missing_videos_error_lists_every_missing_episode():
    ds = open_dataset(G1)
    np.testing.assert_array_equal(ds.missing_videos(G1_CAM), [0, 3, 6, 9])
    with pytest.raises(MissingVideoError, match=r"\[0, 3, 6, 9\].*missing_videos=\"skip\"") as info:
        ds.decode(G1_CAM, 3)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(MissingVideoError, match=r"\[0, 3, 6, 9\]"):
        ds.video_episodes(G1_CAM)  # a run over all videos fails before decoding anything


def test_g1_missing_videos_skip_warns_once_and_leaves_them_out():
    with pytest.warns(UserWarning, match=r"observation.images.cam_high: \[0, 3, 6, 9\]") as record:
        ds = open_dataset(G1, missing_videos="skip")
    assert len(record) == 1
    np.testing.assert_array_equal(ds.video_episodes(G1_CAM), [1, 2, 4, 5, 7, 8, *range(10, 20)])


def test_so101_videos_are_all_missing():
    ds = open_dataset(SO101)
    np.testing.assert_array_equal(ds.missing_videos("observation.images.top"), [0, 1, 2, 3])
    assert ds.video_path("observation.images.top", 2).parts[-3:] == (
        "observation.images.top", "chunk-000", "file-000.mp4",
    )  # fmt: skip


def test_g1_av1_subset_matches_full_sequential_decode():
    pytest.importorskip("av")
    ds = open_dataset(G1)
    last = int(ds.episode_lengths[1]) - 1
    positions, subset, _ = decoded(ds, G1_CAM, 1, [100, 0, 5, last, 5])
    np.testing.assert_array_equal(positions, [0, 5, 100, last])
    assert subset.shape == (4, 480, 640, 3) and subset.dtype == np.uint8
    positions, everything, _ = decoded(ds, G1_CAM, 1)
    np.testing.assert_array_equal(positions, np.arange(last + 1))
    np.testing.assert_array_equal(everything[[0, 5, 100, last]], subset)


# --------------------------------------------------------------------------------- synthetic videos


def test_v21_decode_returns_the_asked_frames(v21):
    from tests.sarm.data.test_video import gray

    ds = open_dataset(v21)
    assert ds.missing_videos(CAM).size == 0 and ds.tasks == list(TASKS) and ds.state_dim == 4
    for e, n in enumerate(LENGTHS):
        frames = [n - 1, 0, 7, n - 2]
        positions, images, levels = decoded(ds, CAM, e, frames)
        np.testing.assert_array_equal(positions, sorted(frames))
        assert images.shape == (4, 32, 32, 3)
        np.testing.assert_allclose(levels, gray(positions + 11 * e), atol=3)
    positions, _, levels = decoded(ds, CAM, 2, chunk=8)
    np.testing.assert_array_equal(positions, np.arange(LENGTHS[2]))
    np.testing.assert_allclose(levels, gray(np.arange(LENGTHS[2]) + 22), atol=3)


def test_v30_episodes_share_one_video_at_from_timestamp(v30):
    from tests.sarm.data.test_video import gray

    ds = open_dataset(v30)
    assert (
        ds.version == "v3.0"
        and ds.tasks == list(TASKS)
        and ds.task_texts == ["pick the cube", "place the cube"]
    )
    assert len({ds.video_path(CAM, e) for e in ds.episodes}) == 1
    starts = v30_starts()
    for e, n in enumerate(LENGTHS):
        positions, _, levels = decoded(ds, CAM, e, [0, n // 2, n - 1])
        np.testing.assert_allclose(levels, gray(starts[e] + positions), atol=3)
    _, _, (level,) = decoded(ds, CAM, 2, [0])
    assert abs(level - gray(starts[2])) <= 3 and abs(level - gray(sum(LENGTHS[:2]))) > 3


def test_decode_seeks_once_and_decodes_each_frame_once(v30, monkeypatch):
    from sarm.data import video
    from tests.sarm.data.test_video import CountingContainer

    opened = []
    real_open = video._open
    monkeypatch.setattr(
        video, "_open", lambda path: opened.append(CountingContainer(real_open(path))) or opened[-1]
    )
    ds = open_dataset(v30)
    positions, _, _ = decoded(ds, CAM, 1, [3, 4, 11, LENGTHS[1] - 1])
    assert len(positions) == 4
    (container,) = opened
    assert container.seeks == 1
    assert len(container.decoded) == len(set(container.decoded))
    # the episode's frames 3..24 are video frames 26..47; the keyframe before 26 is 20
    assert len(container.decoded) <= (v30_starts()[1] + LENGTHS[1] - 1) - 20 + 2


def test_video_shorter_than_episode_names_camera_episode_and_frame(v21, tmp_path):
    from tests.sarm.data.test_video import gray, write_video

    root = copy(v21, tmp_path)
    write_video(root / "videos" / "chunk-000" / CAM / "episode_000002.mp4", gray(np.arange(25)))
    ds = open_dataset(root)
    assert len(decoded(ds, CAM, 2, [24])[0]) == 1
    with pytest.raises(
        DatasetError, match=r"camera 'observation.images.cam', episode 2: frame 29 .* at 0\.8000 s"
    ):
        list(ds.decode(CAM, 2, [24, 29]))


def test_video_under_the_other_layout_is_found(v21, tmp_path):
    root = copy(v21, tmp_path)
    for e in range(len(LENGTHS)):
        target = root / "videos" / CAM / "chunk-000" / f"file-{e:03d}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        (root / "videos" / "chunk-000" / CAM / f"episode_{e:06d}.mp4").rename(target)
    ds = open_dataset(root)
    assert ds.missing_videos(CAM).size == 0 and ds.video_path(CAM, 1).name == "file-001.mp4"
    assert len(decoded(ds, CAM, 1, [0, 24])[0]) == 2


# ------------------------------------------------------------------------------------------ messy


def test_v30_episode_split_across_data_files(tmp_path):
    pytest.importorskip("av")
    ds = open_dataset(make_v30(tmp_path / "ds", split_at=30))  # episode 1 is rows 20..44
    assert len(ds._files) == 2 and list(ds.episode_lengths) == list(LENGTHS)
    np.testing.assert_array_equal(ds.column("index", [1]), np.arange(20, 45))
    np.testing.assert_array_equal(ds.column("index", [2, 0]), np.r_[0:20, 45:75])
    np.testing.assert_array_equal(ds.state()[:, 0], np.arange(75))
    assert ds.table(["index"]).num_rows == 75


def test_synthetic_stats_are_computed_from_the_data_when_no_stats_file(v21):
    mean, std = open_dataset(v21).stats("observation.state")
    np.testing.assert_allclose(mean[:2], [37.0, np.mean(np.concatenate([np.arange(n) for n in LENGTHS]))])
    np.testing.assert_allclose(std[0], np.arange(75).std())
    assert std[3] == 0.0


def test_episode_listed_without_data(v21, v30, tmp_path):
    root = copy(v21, tmp_path)
    (root / "data" / "chunk-000" / "episode_000001.parquet").unlink()
    with pytest.raises(DatasetError, match=r"episode_000001.parquet` of episode 1 .* not found"):
        open_dataset(root)
    root = shutil.copytree(v30, tmp_path / "v30")
    table = _rows(np.arange(2), LENGTHS[:2])
    pq.write_table(table, root / "data" / "chunk-000" / "file-000.parquet")
    with pytest.warns(UserWarning, match=r"episodes \[2\] are in the episode metadata but have no data rows"):
        ds = open_dataset(root)
    assert list(ds.episodes) == [0, 1] and ds.num_frames == 45


def test_wrong_totals_and_lengths_warn_and_the_data_wins(v21, tmp_path):
    root = copy(v21, tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    (root / "meta" / "info.json").write_text(json.dumps({**info, "total_frames": 999, "total_episodes": 7}))
    lines = (root / "meta" / "episodes.jsonl").read_text().replace('"length": 25', '"length": 99')
    (root / "meta" / "episodes.jsonl").write_text(lines)
    with pytest.warns(UserWarning) as record:
        ds = open_dataset(root)
    (message,) = [str(w.message) for w in record]
    for part in ("total_frames=999 but the data has 75", "total_episodes=7 but the data has 3",
                 "episode 1: length 99 in metadata, 25 rows in data"):  # fmt: skip
        assert part in message
    assert ds.num_frames == 75 and list(ds.episode_lengths) == list(LENGTHS)


def test_unknown_version_and_missing_info(v21, tmp_path):
    root = copy(v21, tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    (root / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v9.9"}))
    with pytest.raises(DatasetError, match=r"'v9.9'; supported: \['v2.0', 'v2.1', 'v3.0'\]"):
        open_dataset(root)
    (root / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.0"}))
    assert open_dataset(root).num_frames == 75
    (root / "meta" / "info.json").unlink()
    with pytest.raises(DatasetError, match="is not a LeRobot dataset root"):
        open_dataset(root)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(tmp_path / "nowhere" / "at" / "all")


def test_renamed_column_needs_keys(tmp_path):
    pytest.importorskip("av")
    root = make_v21(tmp_path / "ds", state_name="my_state")
    ds = open_dataset(root)
    with pytest.raises(
        DatasetError, match=r"`observation.state` not found.*'my_state'.*keys=\{'observation.state'"
    ):
        ds.state()
    ds = open_dataset(root, keys={"observation.state": "my_state"})
    assert (
        ds.state_key == "my_state"
        and ds.state().shape == (75, 4)
        and ds.stats("observation.state")[0].shape == (4,)
    )
    np.testing.assert_array_equal(ds.column("observation.state")[:, 0], np.arange(75))
    with pytest.raises(DatasetError, match=r"keys=\{'action': 'actions'\} names columns"):
        open_dataset(root, keys={"action": "actions"})


def test_nan_state_names_episode_and_frame(v21, tmp_path):
    root = copy(v21, tmp_path)
    path = root / "data" / "chunk-000" / "episode_000001.parquet"
    table = pq.read_table(path)
    state = table["observation.state"].combine_chunks().flatten().to_numpy().copy()
    state[6 * 4 + 2] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(state), 4)
    pq.write_table(table.set_column(0, "observation.state", column), path)
    ds = open_dataset(root)
    with pytest.raises(DatasetError, match="not finite at episode 1, frame 6"):
        ds.state()
    assert ds.state([0, 2]).shape == (50, 4)


def test_episode_lookup_and_errors(v21):
    ds = open_dataset(v21)
    assert ds.frames_of(1) == slice(20, 45) and ds.episode_position(2) == 2
    with pytest.raises(DatasetError, match=r"episodes \[7\] are not in"):
        ds.frames_of(7)
    with pytest.raises(DatasetError, match="camera 'nope' not in"):
        ds.decode("nope", 0)
    with pytest.raises(ValueError, match=r"frames should lie in 0\.\.19"):
        ds.decode(CAM, 0, [20])
    assert ds.table(["index", "episode_index"]).num_rows == 75


def test_image_camera_is_not_decoded(v21, tmp_path):
    root = copy(v21, tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"][CAM]["dtype"] = "image"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    ds = open_dataset(root)
    assert ds.camera_keys == [CAM]
    with pytest.raises(NotImplementedError, match="stored as images"):
        ds.decode(CAM, 0)


def test_hub_repo_id_resolves_from_an_offline_cache(v21, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--user--name"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(v21, repo / "snapshots" / commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    ds = open_dataset("user/name")
    assert ds.root == repo / "snapshots" / commit and ds.num_frames == 75
    assert ds.fingerprint() == open_dataset(v21).fingerprint()
    with pytest.raises(FileNotFoundError, match="fetching it as a Hub dataset failed"):
        open_dataset("user/other")


def test_import_does_not_need_av():
    code = "import sys; sys.modules['av'] = None; import sarm.data, sarm.data.video; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_open_args_open_the_same_dataset_again(tmp_path):
    ds = open_dataset(G1, missing_videos="skip", tolerance_s=0.01, videos_dir=G1 / "videos")
    args = ds.open_args()
    assert args["missing_videos"] == "skip" and args["tolerance_s"] == 0.01
    again = open_dataset(**json.loads(json.dumps(args)))  # plain values: they travel as JSON
    assert again.fingerprint() == ds.fingerprint() and again.episodes.tolist() == ds.episodes.tolist()
    assert again.open_args() == args and again.videos_dir == ds.videos_dir
