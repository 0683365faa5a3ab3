"""`sarm features` on bad input: one-line errors that name the flag, checked before any work."""

import errno
import json
import os
import shutil

import numpy as np
import pytest

from sarm.cli import main
from sarm.cli.common import parse_episodes
from sarm.data import open_dataset
from sarm.features.cache import FeatureCache
from tests.sarm.data.test_dataset import CAM, LENGTHS, SO101, make_v21
from tests.sarm.features.test_state_only import without_cameras

pytest.importorskip("av")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("cli") / "ds")


def features(*args):
    return main(["features", *map(str, args), "--encoder", "pixels:8"])


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("sarm features: error: "), err
    return err[-1]


def test_parse_episodes_is_general_and_names_its_flag():
    assert parse_episodes("0-2,5, 7", "--foo") == [0, 1, 2, 5, 7]
    assert parse_episodes("3,1-2,3") == [3, 1, 2] and parse_episodes("") is None
    for text, words in (
        ("12-10", "reversed; write it as --foo 10-12"),
        ("-1", "non-negative"),
        ("abc", "abc"),
    ):
        with pytest.raises(ValueError, match="^--foo: ") as info:
            parse_episodes(text, "--foo")
        assert words in str(info.value)
    with pytest.raises(ValueError, match=r"--foo: episodes \[4\] are not in the dataset"):
        parse_episodes("2-4", "--foo", available=[0, 1, 2, 3])


@pytest.mark.parametrize(
    ("episodes", "words"),
    [
        ("12-10", "reversed"),
        ("abc", "'abc' is not an episode"),
        ("-1", "non-negative"),
        ("1,5-6", r"\[5, 6\]"),
    ],
)
def test_bad_episode_ranges_name_the_flag_and_write_nothing(dataset, tmp_path, capsys, episodes, words):
    assert features(dataset, "--out", tmp_path / "c", f"--episodes={episodes}") == 2
    line = error_line(capsys)
    assert "--episodes" in line
    assert __import__("re").search(words, line), line
    assert not (tmp_path / "c").exists()  # checked, not created, before the dataset is read


@pytest.mark.parametrize(
    ("keys", "words"), [("{oops", "not valid JSON"), ('["state"]', "should be a JSON object")]
)
def test_bad_keys_name_the_flag_and_the_form(dataset, tmp_path, capsys, keys, words):
    assert features(dataset, "--out", tmp_path / "c", "--keys", keys) == 2
    line = error_line(capsys)
    assert "--keys" in line and words in line and '{"observation.state": "state"' in line


def test_out_that_is_a_file_or_unwritable_is_refused_up_front(dataset, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert features(dataset, "--out", tmp_path / "f") == 2
    assert "--out" in (line := error_line(capsys)) and "is an existing file" in line
    if os.path.isdir("/sys/fs"):
        assert features(dataset, "--out", "/sys/fs/sarm-cache") == 2
        assert "--out" in (line := error_line(capsys)) and "not writable" in line


def test_every_episode_skipped_exits_non_zero_with_the_reason(tmp_path, capsys):
    assert features(SO101, "--out", tmp_path / "c", "--missing-videos", "skip") == 2
    line = error_line(capsys)
    assert "all 4 planned episode(s)" in line and "4 skipped" in line and "no video" in line
    assert "--state-only" in line


def test_undecodable_videos_are_skipped_and_counted(dataset, tmp_path, capsys):
    root = shutil.copytree(dataset, tmp_path / "ds")
    bad = open_dataset(root).video_path(CAM, 2)
    bad.write_bytes(b"not a video")
    assert features(root, "--out", tmp_path / "a") == 2
    line = error_line(capsys)
    assert "episode 2" in line and str(bad) in line and "--missing-videos skip" in line
    assert features(root, "--out", tmp_path / "b", "--missing-videos", "skip") == 0
    err = capsys.readouterr().err
    assert "skipped 1 episode(s) whose video cannot be decoded" in err and str(bad) in err
    assert FeatureCache(tmp_path / "b").episodes.tolist() == [0, 1]


def test_state_only_is_explicit(dataset, tmp_path, capsys):
    root = without_cameras(shutil.copytree(dataset, tmp_path / "ds"))
    assert features(root, "--out", tmp_path / "c") == 2
    assert "--state-only" in error_line(capsys)
    assert features(SO101, "--out", tmp_path / "so101", "--state-only") == 0
    cache = FeatureCache(tmp_path / "so101")
    assert cache.cameras == [] and cache.images.shape == (1492, 0, 8)
    assert (
        features(SO101, "--out", tmp_path / "x", "--state-only", "--cameras", "observation.images.top") == 2
    )
    assert "--cameras" in error_line(capsys)


def test_videos_dir_reads_videos_kept_elsewhere(dataset, tmp_path, capsys):
    root = shutil.copytree(dataset, tmp_path / "ds")
    os.rename(root / "videos", root / "video")
    assert features(root, "--out", tmp_path / "a") == 2
    line = error_line(capsys)
    assert (
        str(root / "videos") in line and f"`{root / 'video'}` holds 3 .mp4" in line and "--videos-dir" in line
    )
    assert features(root, "--out", tmp_path / "b", "--videos-dir", root / "video") == 0
    assert FeatureCache(tmp_path / "b").episodes.tolist() == [0, 1, 2]


def test_disk_full_is_one_line_naming_the_file(dataset, tmp_path, capsys, monkeypatch):
    real_save = np.save

    def full(file, array, *args, **kwargs):
        if "episode_000001.images" in getattr(file, "name", ""):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", full)
    assert features(dataset, "--out", tmp_path / "c") == 2
    line = error_line(capsys)
    assert "disk full" in line and "episode_000001.images.npy" in line


def test_a_truncated_cache_file_stops_train_naming_the_file(dataset, tmp_path, capsys):
    assert features(dataset, "--out", tmp_path / "c") == 0
    path = tmp_path / "c" / "episodes" / "episode_000001.images.npy"
    path.write_bytes(path.read_bytes()[:-100])
    tiny = [
        "--hidden-dim",
        "16",
        "--num-layers",
        "1",
        "--num-heads",
        "2",
        "--n-obs-steps",
        "2",
        "--frame-gap",
        "2",
    ]
    assert (
        main(["train", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "run"), "--steps", "1", *tiny])
        == 2
    )
    err = capsys.readouterr().err
    assert str(path) in err and "truncated" in err and "sarm features" in err and "mmap" not in err
    assert features(dataset, "--out", tmp_path / "c") == 0  # the rerun repairs it
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert FeatureCache(tmp_path / "c").episode_images(1).shape == (LENGTHS[1], 1, manifest["image_dim"])
