"""A state-only feature cache: no camera, image features (T, 0, E), state and task texts as usual."""

import json

import numpy as np
import pytest

from sarm.data import MissingVideoError, open_dataset
from sarm.features.cache import FeatureCache
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from tests.sarm.data.test_dataset import CAM, SO101, make_v21


def without_cameras(root):
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"][CAM]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return root


def test_a_state_only_cache_of_the_real_so101_dataset(tmp_path):
    ds = open_dataset(SO101)  # its camera videos are all missing
    extract_features(ds, PixelEncoder(16), tmp_path / "c", state_only=True, progress=False)
    cache = FeatureCache(tmp_path / "c")
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["cameras"] == []
    assert cache.cameras == [] and cache.episodes.tolist() == [0, 1, 2, 3]
    for e, length in zip(ds.episodes, ds.episode_lengths, strict=True):
        images = cache.episode_images(e)
        assert images.shape == (length, 0, 16) and images.dtype == np.float16
        np.testing.assert_array_equal(cache.episode_state(e), ds.state(episodes=[e]))
    assert cache.images.shape == (ds.num_frames, 0, 16) and cache.images[np.array([0, 5, 1491])].shape == (
        3,
        0,
        16,
    )
    assert cache.state.shape == (ds.num_frames, 6)
    text = cache.text_features([ds.tasks[0]])
    np.testing.assert_allclose(text.numpy(), PixelEncoder(16).encode_texts([ds.tasks[0]]).numpy(), rtol=1e-6)


def test_without_state_only_a_camera_less_dataset_is_an_error_naming_it(tmp_path):
    pytest.importorskip("av")
    ds = open_dataset(without_cameras(make_v21(tmp_path / "ds")))
    assert ds.camera_keys == []
    with pytest.raises(ValueError, match=r"no camera.*state_only=True \(--state-only\)"):
        extract_features(ds, PixelEncoder(8), tmp_path / "c", progress=False)
    cache = extract_features(ds, PixelEncoder(8), tmp_path / "c", state_only=True, progress=False)
    assert cache.cameras == [] and cache.episode_images(1).shape == (25, 0, 8)


def test_all_videos_missing_suggests_state_only_and_cameras_contradict_it(tmp_path):
    with pytest.raises(MissingVideoError, match=r"all 4 planned episode.*--state-only"):
        extract_features(open_dataset(SO101), PixelEncoder(8), tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="state_only=True encodes no camera"):
        extract_features(
            open_dataset(SO101),
            PixelEncoder(8),
            tmp_path / "c",
            state_only=True,
            cameras=["observation.images.top"],
            progress=False,
        )
