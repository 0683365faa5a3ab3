"""sarm.data on damaged input: JSON, parquet, video folders and video files; each error names the file."""

import os
import shutil

import numpy as np
import pytest

from sarm.data import DatasetError, MissingVideoError, VideoDecodeError, open_dataset
from tests.sarm.data.test_dataset import CAM, LENGTHS, make_v21, make_v30

pytest.importorskip("av")


@pytest.fixture(scope="module")
def v21(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("v21") / "ds")


@pytest.fixture(scope="module")
def v30(tmp_path_factory):
    return make_v30(tmp_path_factory.mktemp("v30") / "ds")


def copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "copy")


@pytest.mark.parametrize(("text", "words"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON list")])
def test_info_json_that_is_not_an_object_names_the_file(v21, tmp_path, text, words):
    root = copy(v21, tmp_path)
    (root / "meta" / "info.json").write_text(text)
    with pytest.raises(DatasetError, match=words) as info:
        open_dataset(root)
    assert "info.json" in str(info.value) and "restore" in str(info.value)


def test_a_bad_line_in_episodes_jsonl_names_file_and_line(v21, tmp_path):
    root = copy(v21, tmp_path)
    path = root / "meta" / "episodes.jsonl"
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(DatasetError, match=r"episodes.jsonl` line 4 is not valid JSON"):
        open_dataset(root)


@pytest.mark.parametrize("make", ["v21", "v30", "v30-meta"])
def test_a_corrupt_parquet_file_is_named(v21, v30, tmp_path, make):
    root = copy(v21 if make == "v21" else v30, tmp_path)
    if make == "v21":
        path = root / "data" / "chunk-000" / "episode_000001.parquet"
    elif make == "v30":
        path = root / "data" / "chunk-000" / "file-000.parquet"
    else:
        path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="not a readable parquet file") as info:
        open_dataset(root)
    assert str(path) in str(info.value)


def test_missing_videos_show_the_path_and_a_folder_that_holds_them(v21, tmp_path):
    root = copy(v21, tmp_path)
    os.rename(root / "videos", root / "video")
    with pytest.raises(MissingVideoError) as info:
        open_dataset(root).video_episodes(CAM)
    message = str(info.value)
    assert str(root / "videos" / "chunk-000" / CAM / "episode_000000.mp4") in message  # where it looked
    assert f"`{root / 'video'}` holds 3 .mp4 file(s)" in message and "videos_dir=" in message
    assert "--videos-dir" in message


def test_videos_dir_points_at_the_videos(v21, v30, tmp_path):
    for source, name in ((v21, "a"), (v30, "b")):
        root = shutil.copytree(source, tmp_path / name)
        os.rename(root / "videos", tmp_path / f"{name}-elsewhere")
        ds = open_dataset(root, videos_dir=tmp_path / f"{name}-elsewhere")
        assert ds.missing_videos(CAM).size == 0
        assert sum(len(p) for p, _ in ds.decode(CAM, 1)) == LENGTHS[1]
    with pytest.raises(FileNotFoundError, match="videos_dir `.*nowhere` is not a directory"):
        open_dataset(v21, videos_dir=tmp_path / "nowhere")


def _damage(path, how):
    data = path.read_bytes()
    path.write_bytes(
        {"empty": b"", "random": np.random.default_rng(0).bytes(4000), "cut": data[: len(data) // 2]}[how]
    )


@pytest.mark.parametrize("how", ["empty", "random", "cut"])
def test_an_undecodable_video_names_episode_and_file(v21, tmp_path, how):
    root = copy(v21, tmp_path)
    ds = open_dataset(root)
    path = ds.video_path(CAM, 1)
    _damage(path, how)
    with pytest.raises(VideoDecodeError) as info:
        list(ds.decode(CAM, 1))
    message = str(info.value)
    assert "episode 1" in message and str(path) in message and "--missing-videos skip" in message
    assert isinstance(info.value, DatasetError)
    assert sum(len(p) for p, _ in ds.decode(CAM, 2)) == LENGTHS[2]  # the others still decode


def test_probe_videos_finds_undecodable_files(v21, v30, tmp_path):
    root = copy(v21, tmp_path)
    ds = open_dataset(root)
    assert ds.probe_videos(CAM) == {}
    _damage(ds.video_path(CAM, 0), "empty")
    _damage(ds.video_path(CAM, 2), "random")
    os.remove(ds.video_path(CAM, 1))  # missing, not undecodable: reported by missing_videos
    found = open_dataset(root).probe_videos(CAM)
    assert sorted(found) == [0, 2]
    assert "empty" in found[0] and str(ds.video_path(CAM, 0)) in found[0]
    assert "cannot be opened" in found[2]
    shared = shutil.copytree(v30, tmp_path / "v30")
    _damage(shared / "videos" / CAM / "chunk-000" / "file-000.mp4", "random")
    assert sorted(open_dataset(shared).probe_videos(CAM)) == [0, 1, 2]  # one file, all its episodes
