"""The feature cache against damage: truncated files, full disk, orphan temporary files, bad videos, umask."""

import errno
import os
import shutil
import stat

import numpy as np
import pytest

from sarm.data import VideoDecodeError, open_dataset
from sarm.features.cache import FeatureCache
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from sarm.features.storage import DiskFullError
from tests.sarm.data.test_dataset import CAM, LENGTHS, make_v21
from tests.sarm.features.test_cache import CountingEncoder, files

pytest.importorskip("av")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("damage") / "ds")


def truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("kind", ["images", "state"])
def test_a_truncated_cache_file_is_named_and_a_rerun_repairs_it(dataset, tmp_path, kind):
    ds = open_dataset(dataset)
    extract_features(ds, PixelEncoder(32), tmp_path / "ref", progress=False)
    shutil.copytree(tmp_path / "ref", tmp_path / "run")
    path = tmp_path / "run" / "episodes" / f"episode_000001.{kind}.npy"
    truncate(path, path.stat().st_size - 64)  # header intact, data short: np.load's mmap would fail later
    with pytest.raises(ValueError, match="truncated") as info:
        FeatureCache(tmp_path / "run")
    assert str(path) in str(info.value) and "sarm features" in str(info.value)
    encoder = CountingEncoder(32)
    with pytest.warns(UserWarning, match=r"episode 1: .*truncated.*encoding it again"):
        cache = extract_features(ds, encoder, tmp_path / "run", progress=False)
    assert encoder.images == LENGTHS[1]  # only the damaged episode
    assert cache.episodes.tolist() == [0, 1, 2]
    assert files(tmp_path / "run") == files(tmp_path / "ref")


def test_a_file_cut_inside_its_header_is_damaged_too(dataset, tmp_path):
    extract_features(open_dataset(dataset), PixelEncoder(8), tmp_path / "c", progress=False)
    path = tmp_path / "c" / "episodes" / "episode_000002.images.npy"
    truncate(path, 20)
    with pytest.raises(ValueError, match=r"episode_000002.images.npy` is not a whole .npy file"):
        FeatureCache(tmp_path / "c")
    assert FeatureCache(tmp_path / "c", damaged="missing").missing.tolist() == [2]


def test_disk_full_names_the_file_and_leaves_no_temporary_file(dataset, tmp_path, monkeypatch):
    real_save = np.save

    def full(file, array, *args, **kwargs):
        if ".images.npy" in getattr(file, "name", ""):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(DiskFullError, match="disk full while writing") as info:
        extract_features(open_dataset(dataset), PixelEncoder(8), tmp_path / "c", progress=False)
    assert "episode_000000.images.npy" in str(info.value) and info.value.errno == errno.ENOSPC
    assert isinstance(info.value, RuntimeError)  # the CLI prints it as one line
    assert not [p.name for p in (tmp_path / "c").rglob("*.tmp")]


def test_orphan_temporary_files_are_removed_by_the_next_run(dataset, tmp_path):
    ds = open_dataset(dataset)
    extract_features(ds, PixelEncoder(8), tmp_path / "ref", progress=False)
    root = tmp_path / "c"
    orphans = [
        root / "episodes" / ".episode_000001.state.npy.otherhost.4242.tmp",
        root / "episodes" / ".episode_000000.images.npy.otherhost.4242.tmp",  # of a finished episode
        root / ".manifest.json.otherhost.4242.tmp",
        root / ".texts.npy.otherhost.4242.tmp",
    ]
    shutil.copytree(tmp_path / "ref", root)
    (root / "episodes" / "episode_000001.images.npy").unlink()
    for path in orphans:
        path.write_bytes(b"half a file")
    extract_features(ds, PixelEncoder(8), root, progress=False)
    assert not [p.name for p in root.rglob("*.tmp")]
    assert files(root) == files(tmp_path / "ref")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_are_written_with_the_users_umask(dataset, tmp_path, umask):
    old = os.umask(umask)
    try:
        extract_features(open_dataset(dataset), PixelEncoder(8), tmp_path / "c", progress=False)
    finally:
        os.umask(old)
    written = [p for p in (tmp_path / "c").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert len(written) == 3 + 2 * len(LENGTHS)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def _undecodable(dataset, tmp_path, episodes):
    root = shutil.copytree(dataset, tmp_path / "ds")
    ds = open_dataset(root)
    for e in episodes:
        ds.video_path(CAM, e).write_bytes(b"")
    return ds


def test_an_undecodable_video_fails_naming_it_or_is_skipped_and_counted(dataset, tmp_path):
    ds = _undecodable(dataset, tmp_path, [1])
    with pytest.raises(VideoDecodeError, match="episode 1") as info:
        extract_features(ds, PixelEncoder(8), tmp_path / "a", progress=False)
    assert str(ds.video_path(CAM, 1)) in str(info.value)
    with pytest.warns(UserWarning, match=r"skipped 1 episode\(s\) whose video cannot be decoded: \[1\]"):
        cache = extract_features(ds, PixelEncoder(8), tmp_path / "b", missing_videos="skip", progress=False)
    assert cache.episodes.tolist() == [0, 2] and list(cache.skipped) == [1]
    assert str(ds.video_path(CAM, 1)) in cache.skipped[1]


def test_every_episode_skipped_is_an_error_that_says_why(dataset, tmp_path):
    ds = _undecodable(dataset, tmp_path, [0, 1, 2])
    with (
        pytest.warns(UserWarning, match="skipped 3"),
        pytest.raises(VideoDecodeError, match=r"all 3 episode"),
    ):
        extract_features(ds, PixelEncoder(8), tmp_path / "c", missing_videos="skip", progress=False)


def test_output_that_is_a_file_or_unwritable_fails_before_any_encoding(dataset, tmp_path):
    (tmp_path / "file").write_text("x")
    encoder = CountingEncoder(8)
    with pytest.raises(ValueError, match=r"out_dir `.*file` is an existing file"):
        extract_features(open_dataset(dataset), encoder, tmp_path / "file", progress=False)
    with pytest.raises(ValueError, match=r"lies under `.*file`, which is a file"):
        extract_features(open_dataset(dataset), encoder, tmp_path / "file" / "sub", progress=False)
    if os.path.isdir("/sys/fs"):
        with pytest.raises(ValueError, match="is not writable"):
            extract_features(open_dataset(dataset), encoder, "/sys/fs/sarm-cache", progress=False)
    assert encoder.images == 0 and encoder.texts == []


def test_planned_episodes_must_be_in_the_dataset_and_not_empty(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"episodes \[7\] are not in"):
        extract_features(
            open_dataset(dataset), PixelEncoder(8), tmp_path / "c", episodes=[1, 7], progress=False
        )
    with pytest.raises(ValueError, match="episodes is empty"):
        extract_features(open_dataset(dataset), PixelEncoder(8), tmp_path / "c", episodes=[], progress=False)


def test_a_manifest_that_is_not_json_is_named(dataset, tmp_path):
    extract_features(open_dataset(dataset), PixelEncoder(8), tmp_path / "c", progress=False)
    (tmp_path / "c" / "manifest.json").write_text('{"format": ')
    with pytest.raises(ValueError, match=r"manifest.json is not valid JSON.*sarm features"):
        FeatureCache(tmp_path / "c")


def test_a_filesystem_without_locks_is_reported_and_the_run_goes_on(dataset, tmp_path, monkeypatch):
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match=r"cannot lock files in .*run one at a time"):
        cache = extract_features(open_dataset(dataset), PixelEncoder(8), tmp_path / "c", progress=False)
    assert cache.episodes.tolist() == [0, 1, 2]
