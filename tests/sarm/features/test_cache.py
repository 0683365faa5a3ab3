"""sarm.features.cache: each frame decoded and encoded once, the cache layout, resume after a kill, shards."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from sarm.data import MissingVideoError, open_dataset
from sarm.features.cache import FeatureCache, parse_shard
from sarm.features.encoders import PixelEncoder, load_encoder
from sarm.features.extract import extract_features
from sarm.labels.negatives import NEGATIVE_TEXTS
from tests.sarm.data.test_dataset import CAM, LENGTHS, TASKS, make_v21
from tests.waiting import HOLD_UNTIL, wait_for_file

pytest.importorskip("av")


class CountingEncoder(PixelEncoder):
    """The pixel encoder, counting every image row and text it encodes."""

    def __init__(self, *args, fail_after: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.images, self.texts, self.fail_after = 0, [], fail_after

    def _encode_images(self, images):
        if self.fail_after is not None and self.images >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.images += images.shape[0]
        return super()._encode_images(images)

    def encode_texts(self, texts):
        self.texts.extend(texts)
        return super().encode_texts(texts)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("features") / "ds")


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def all_frames(ds, episode):
    chunks = list(ds.decode(CAM, episode))
    return np.concatenate([images for _, images in chunks])


def test_every_frame_is_encoded_once_and_stored_in_order(dataset, tmp_path):
    ds = open_dataset(dataset)
    encoder = CountingEncoder(32)
    cache = extract_features(ds, encoder, tmp_path / "cache", dtype="float32", progress=False)
    assert encoder.images == sum(LENGTHS)  # every frame once, nothing twice
    assert sorted(encoder.texts) == sorted(set(TASKS) | set(NEGATIVE_TEXTS))  # each text once
    assert cache.episodes.tolist() == [0, 1, 2] and cache.episode_lengths.tolist() == list(LENGTHS)
    for episode in range(3):
        expected = PixelEncoder(32).encode_images(all_frames(ds, episode)).numpy()
        np.testing.assert_allclose(cache.episode_images(episode)[:, 0], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(cache.episode_state(episode), ds.state(episodes=[episode]))
        assert cache.task(episode) == TASKS[episode]
        assert cache.first_index(episode) == sum(LENGTHS[:episode])
    assert isinstance(cache.episode_images(0), np.memmap)
    text = cache.text_features([TASKS[1]])
    torch.testing.assert_close(text, PixelEncoder(32).encode_texts([TASKS[1]]))
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["encoder"]["spec"] == "pixels:32" and manifest["cameras"] == [CAM]
    assert manifest["dataset"]["fingerprint"] == ds.fingerprint()


def test_float16_is_the_default_and_the_lazy_view_gathers_across_episodes(dataset, tmp_path):
    cache = extract_features(open_dataset(dataset), PixelEncoder(16), tmp_path / "c", progress=False)
    assert cache.episode_images(1).dtype == np.float16
    view = cache.images
    assert view.shape == (sum(LENGTHS), 1, 16)
    whole = np.concatenate([cache.episode_images(e) for e in range(3)])
    rows = np.array([0, 19, 20, 44, 45, 74, 3])
    np.testing.assert_array_equal(view[rows], whole[rows])
    with pytest.raises(IndexError, match="out of range"):
        view[np.array([sum(LENGTHS)])]


def test_a_crash_leaves_whole_episodes_and_a_rerun_gives_identical_files(dataset, tmp_path):
    ds = open_dataset(dataset)
    extract_features(ds, PixelEncoder(32), tmp_path / "ref", progress=False)
    crashing = CountingEncoder(32, fail_after=LENGTHS[0])  # dies on episode 1
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_features(ds, crashing, tmp_path / "run", progress=False)
    partial = FeatureCache(tmp_path / "run")
    assert partial.episodes.tolist() == [0] and partial.missing.tolist() == [1, 2]
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]
    resumed = CountingEncoder(32)
    extract_features(ds, resumed, tmp_path / "run", progress=False)
    assert resumed.images == LENGTHS[1] + LENGTHS[2]  # finished episode 0 is not encoded again
    assert files(tmp_path / "run") == files(tmp_path / "ref")


_KILLED = """
import os, sys
sys.path.insert(0, {root!r})
from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
{hold}
class Held(PixelEncoder):
    def _encode_images(self, images):
        if os.path.exists({marker!r}):  # episode 0 is written: wait here, inside episode 1, for the kill
            hold_until({marker!r} + ".never")
        return super()._encode_images(images)

extract_features(open_dataset({ds!r}), Held(32, batch_size=4), {out!r}, progress=False)
"""


def test_kill_9_then_rerun_gives_identical_files(dataset, tmp_path):
    root = str(__import__("pathlib").Path(__file__).resolve().parents[3])
    extract_features(open_dataset(dataset), PixelEncoder(32, batch_size=4), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    marker = out / "episodes" / "episode_000000.images.npy"
    code = _KILLED.format(root=root, ds=str(dataset), out=str(out), marker=str(marker), hold=HOLD_UNTIL)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    wait_for_file(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the child should have finished episode 0 before the kill"
    assert len(FeatureCache(out).missing) > 0, "the kill should land before the last episode"
    extract_features(open_dataset(dataset), PixelEncoder(32, batch_size=4), out, progress=False)
    leftovers = {p.name for p in out.rglob("*") if ".tmp" in p.name}
    finished = {k: v for k, v in files(out).items() if ".tmp" not in k}
    assert finished == files(tmp_path / "ref"), f"files differ (temporary leftovers: {leftovers})"


def test_shards_split_episodes_and_together_equal_one_run(dataset, tmp_path):
    ds = open_dataset(dataset)
    extract_features(ds, PixelEncoder(32), tmp_path / "one", progress=False)
    first = CountingEncoder(32)
    cache = extract_features(ds, first, tmp_path / "two", shard="0/2", progress=False)
    assert cache.episodes.tolist() == [0, 2] and first.images == LENGTHS[0] + LENGTHS[2]
    extract_features(ds, PixelEncoder(32), tmp_path / "two", shard=(1, 2), progress=False)
    assert files(tmp_path / "two") == files(tmp_path / "one")


def test_parse_shard(monkeypatch):
    assert parse_shard("1/4") == (1, 4) and parse_shard((0, 1)) == (0, 1)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert parse_shard(None) == (3, 8)
    for bad in ("4/4", "x/2", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_a_cache_with_other_settings_is_refused(dataset, tmp_path):
    ds = open_dataset(dataset)
    extract_features(ds, PixelEncoder(32), tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="another encoder"):
        extract_features(ds, PixelEncoder(32, seed=1), tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="another dtype"):
        extract_features(ds, PixelEncoder(32), tmp_path / "c", dtype="float32", progress=False)


def test_missing_videos_error_lists_them_and_skip_leaves_them_out(dataset, tmp_path):
    import shutil

    root = shutil.copytree(dataset, tmp_path / "ds")
    os.remove(open_dataset(root).video_path(CAM, 1))
    ds = open_dataset(root, missing_videos="skip")
    with pytest.raises(MissingVideoError, match=r"\[1\].*missing_videos='skip'"):
        extract_features(ds, PixelEncoder(8), tmp_path / "a", progress=False)
    with pytest.warns(UserWarning, match=r"skipping 1 episode.*\[1\]"):
        cache = extract_features(ds, PixelEncoder(8), tmp_path / "b", missing_videos="skip", progress=False)
    assert cache.episodes.tolist() == [0, 2] and cache.planned.tolist() == [0, 2]


def test_argument_errors(dataset, tmp_path):
    ds = open_dataset(dataset)
    with pytest.raises(ValueError, match="camera keys"):
        extract_features(ds, PixelEncoder(8), tmp_path / "c", cameras=["nope"], progress=False)
    with pytest.raises(ValueError, match="dtype"):
        extract_features(ds, PixelEncoder(8), tmp_path / "c", dtype="int8", progress=False)
    with pytest.raises(FileNotFoundError, match="sarm features"):
        FeatureCache(tmp_path / "nothing")


def test_the_tiny_clip_path_end_to_end(dataset, tmp_path):
    """CI exercises open_clip: a registered tiny CLIP encodes every frame into the cache."""
    pytest.importorskip("open_clip")
    encoder = load_encoder("clip:sarm-tiny", batch_size=16)
    cache = extract_features(open_dataset(dataset), encoder, tmp_path / "clip", episodes=[2], progress=False)
    images = cache.episode_images(2)
    assert images.shape == (LENGTHS[2], 1, 512) and np.isfinite(images).all()
    assert not np.allclose(images[0], images[-1])  # frames differ, so do their features
    assert cache.manifest["encoder"]["preprocessing"]["image_size"] == 64
