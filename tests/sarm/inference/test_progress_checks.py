"""compute_progress refuses what would be silently wrong (another encoder's cache, an output that is a
directory, unwritable or one of its inputs) before any compute; it records the model's source; its files
get the user's umask; a state-only model trains on and scores a cache without cameras."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rabc import read_progress
from sarm import SARM
from sarm.data import open_dataset
from sarm.features.cache import FeatureCache
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from sarm.inference.progress import compute_progress
from sarm.training.from_cache import prepare_training, train_from_cache
from sarm.training.loop import TrainConfig
from tests.sarm.data.test_dataset import LENGTHS, make_v21
from tests.sarm.inference.test_progress import tiny

pytest.importorskip("av")
TINY = {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "frame_gap": 3, "n_obs_steps": 2}
STEPS = TrainConfig(steps=2, batch_size=4, warmup_steps=1, eval_every=2, checkpoint_every=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = make_v21(tmp_path_factory.mktemp("checks") / "ds")
    return extract_features(open_dataset(root), PixelEncoder(32), root.parent / "cache", progress=False)


def edited_copy(cache: FeatureCache, dst: Path, *, encoder=None, state_only=False) -> FeatureCache:
    """A copy of `cache` as another encoder (same widths) or a state-only extraction would write it:
    the manifest's encoder replaced, or no camera and image features of shape (T, 0, image_dim)."""
    shutil.copytree(cache.root, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    if encoder is not None:
        manifest["encoder"] = encoder
    if state_only:
        manifest["cameras"] = []
        for path in (dst / "episodes").glob("*.images.npy"):
            images = np.load(path)
            np.save(path, np.zeros((images.shape[0], 0, images.shape[2]), images.dtype))
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return FeatureCache(dst)


class Counting:
    """Counts SARM.predict calls (any compute)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = SARM.predict

        def predict(model, *args, **kwargs):
            self.calls += 1
            return original(model, *args, **kwargs)

        monkeypatch.setattr(SARM, "predict", predict)


# ---- the encoder the model was trained on -------------------------------------------------------------
def test_training_records_the_caches_encoder_and_progress_refuses_another(cache, tmp_path):
    assert prepare_training(cache, model_overrides=TINY).config.encoder == cache.manifest["encoder"]
    model, _, _ = train_from_cache(
        cache, tmp_path / "run", config=STEPS, model_overrides=TINY, progress=False
    )
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["encoder"]["spec"] == "pixels:32"
    other = edited_copy(cache, tmp_path / "clip", encoder={**cache.manifest["encoder"], "spec": "clip:other"})
    with pytest.raises(ValueError) as error:
        compute_progress(SARM.from_pretrained(tmp_path / "run" / "model"), other, tmp_path / "p.parquet")
    text = str(error.value)
    assert "`pixels:32`" in text and "`clip:other`" in text and "allow_other_encoder=True" in text
    assert not (tmp_path / "p.parquet.parts").exists()
    path = compute_progress(model, other, tmp_path / "p.parquet", allow_other_encoder=True, progress=False)
    assert len(read_progress(path)) == sum(LENGTHS)


def test_the_same_spec_with_other_preprocessing_is_refused_too(cache, tmp_path):
    encoder = dict(cache.manifest["encoder"])
    model = tiny(encoder=encoder)
    other = edited_copy(cache, tmp_path / "c", encoder={**encoder, "preprocessing": {"image_size": 7}})
    with pytest.raises(ValueError, match=r"with other \['preprocessing'\]"):
        compute_progress(model, other, tmp_path / "p.parquet", progress=False)
    assert tiny().config.encoder is None  # models that record no encoder (old, LeRobot): no check
    compute_progress(tiny(), other, tmp_path / "q.parquet", progress=False)


# ---- output paths, checked before any compute ---------------------------------------------------------
def test_a_directory_as_output_is_refused_before_any_compute(cache, tmp_path, monkeypatch):
    counting = Counting(monkeypatch)
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match=r"`.*out` is a directory; .*out/sarm_progress.parquet"):
        compute_progress(tiny(), cache, tmp_path / "out", progress=False)
    assert counting.calls == 0


@pytest.mark.parametrize("where", ["/proc/sarm_progress.parquet", "file/p.parquet"])
def test_an_unwritable_output_is_refused_before_any_compute(cache, tmp_path, monkeypatch, where):
    if where.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("needs Linux's /proc (not writable, even by root)")
    (tmp_path / "file").write_text("a file, not a directory")
    counting = Counting(monkeypatch)
    with pytest.raises(ValueError, match=r"cannot write the output .*choose a writable location"):
        compute_progress(tiny(), cache, tmp_path / where, progress=False)
    assert counting.calls == 0


def test_an_output_that_would_overwrite_an_input_is_refused(cache, tmp_path, monkeypatch):
    counting = Counting(monkeypatch)
    with pytest.raises(ValueError, match=r"overwrite the feature cache"):
        compute_progress(tiny(), cache, cache.root / "episodes" / "p.parquet", progress=False)
    tiny().save_pretrained(tmp_path / "m")
    model = SARM.from_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match=r"overwrite the model"):
        compute_progress(model, cache, tmp_path / "m" / "model.safetensors", progress=False)
    assert counting.calls == 0 and not list(cache.root.glob("episodes/*.parts"))


# ---- metadata and modes -------------------------------------------------------------------------------
def test_reward_model_path_is_the_models_source(cache, tmp_path):
    tiny().save_pretrained(tmp_path / "m")
    path = compute_progress(
        SARM.from_pretrained(tmp_path / "m"), cache, tmp_path / "p.parquet", progress=False
    )
    assert read_progress(path).metadata["reward_model_path"] == str(tmp_path / "m")
    model, _, _ = train_from_cache(
        cache, tmp_path / "run", config=STEPS, model_overrides=TINY, progress=False
    )
    path = compute_progress(model, cache, tmp_path / "q.parquet", progress=False)
    assert read_progress(path).metadata["reward_model_path"] == str(tmp_path / "run" / "model")
    path = compute_progress(model, cache, tmp_path / "r.parquet", reward_model_path="me/sarm", progress=False)
    assert read_progress(path).metadata["reward_model_path"] == "me/sarm"


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_progress_files_get_the_users_umask(cache, tmp_path, umask):
    old = os.umask(umask)
    try:
        compute_progress(tiny(), cache, tmp_path / "p.parquet", shard="0/2", progress=False)
        parts = sorted((tmp_path / "p.parquet.parts").iterdir())
        modes = {p.name: p.stat().st_mode & 0o777 for p in parts}
        compute_progress(tiny(), cache, tmp_path / "p.parquet", shard="1/2", progress=False)
    finally:
        os.umask(old)
    modes["p.parquet"] = (tmp_path / "p.parquet").stat().st_mode & 0o777
    assert modes == {name: 0o666 & ~umask for name in modes}


# ---- state-only ---------------------------------------------------------------------------------------
def test_a_state_only_cache_trains_and_scores(cache, tmp_path):
    state_only = edited_copy(cache, tmp_path / "state_only", state_only=True)
    assert state_only.cameras == [] and state_only.images.shape == (sum(LENGTHS), 0, 32)
    model, result, _ = train_from_cache(
        state_only, tmp_path / "run", config=STEPS, model_overrides=TINY, progress=False
    )
    assert model.config.num_cameras == 0 and result.step == 2
    saved = SARM.from_pretrained(tmp_path / "run" / "model")
    path = compute_progress(saved, state_only, tmp_path / "p.parquet", stage_probs=True, progress=False)
    table = read_progress(path)
    assert len(table) == sum(LENGTHS) and np.isfinite(table.column("sparse")).all()
    with pytest.raises(ValueError, match=r"1 camera\(s\).*expects 0 camera"):
        compute_progress(saved, cache, tmp_path / "q.parquet", progress=False)  # a camera cache


def test_a_state_only_cache_without_state_is_refused(cache, tmp_path):
    state_only = edited_copy(cache, tmp_path / "c", state_only=True)
    manifest = json.loads((state_only.root / "manifest.json").read_text())
    (state_only.root / "manifest.json").write_text(json.dumps({**manifest, "state_dim": 0}))
    for path in (state_only.root / "episodes").glob("*.state.npy"):
        np.save(path, np.zeros((np.load(path).shape[0], 0), np.float32))
    empty = FeatureCache(state_only.root)
    with pytest.raises(ValueError, match=r"no camera and no robot state"):
        prepare_training(empty, model_overrides=TINY)
    model = tiny(num_cameras=0)
    with pytest.raises(ValueError, match=r"state-only.*holds no robot state"):
        compute_progress(model, empty, tmp_path / "p.parquet", progress=False)
