"""sarm.inference.progress: every frame scored, LeRobot's schema, stride, shards, resume, checkpoints."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from rabc import RABCWeights, read_progress
from sarm import SARM, SARMConfig
from sarm.data import open_dataset
from sarm.features import FeatureCache, extract_features
from sarm.features.encoders import PixelEncoder, load_encoder
from sarm.inference.progress import compute_progress, merge_progress
from sarm.training.windows import window_frames
from tests.conftest import FIXTURES
from tests.sarm.data.test_dataset import LENGTHS, make_v21

pytest.importorskip("av")
CHECKPOINT = FIXTURES / "sarm_checkpoint"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = make_v21(tmp_path_factory.mktemp("progress") / "ds")
    return extract_features(open_dataset(root), PixelEncoder(32), root.parent / "cache", progress=False)


def tiny(window="centered", attention="lerobot", **kwargs):
    torch.manual_seed(0)
    config = SARMConfig(
        image_dim=32,
        text_dim=32,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        window=window,
        attention=attention,
        n_obs_steps=4,
        frame_gap=3,
        **kwargs,
    )
    return SARM(config)


def frame_by_frame(model, cache, episode, head="sparse"):
    """The slow reference: one window per frame, batch 1, built with plain indexing."""
    c = model.config
    images = np.asarray(cache.episode_images(episode), np.float32)
    state = c.normalize_state(cache.episode_state(episode))
    text = cache.text_features([cache.task(episode)])
    out = []
    for t in range(images.shape[0]):
        w = window_frames(
            t, 0, images.shape[0], mode=c.window, n_obs_steps=c.n_obs_steps, frame_gap=c.frame_gap
        )[0]
        pred = model.predict(
            text, torch.from_numpy(images[w])[None], torch.from_numpy(state[w])[None], head=head
        )
        out.append(float(pred.progress[0, c.current_slot]))
    return np.array(out, np.float32)


@pytest.mark.parametrize("window, attention", [("centered", "lerobot"), ("past", "causal")])
def test_batched_progress_equals_frame_by_frame_windows(cache, tmp_path, window, attention):
    model = tiny(window, attention, state_mean=[0.0] * 4, state_std=[2.0] * 4)
    path = compute_progress(model, cache, tmp_path / "p.parquet", batch_size=16, progress=False)
    table = pq.read_table(path)
    assert table.column_names == ["index", "episode_index", "frame_index", "progress_sparse"]
    episode = table.column("episode_index").to_numpy()
    for e in range(3):
        got = table.column("progress_sparse").to_numpy()[episode == e]
        np.testing.assert_allclose(got, frame_by_frame(model, cache, e), atol=2e-6)


def test_the_file_is_lerobots_schema_and_rabc_reads_it(cache, tmp_path):
    path = compute_progress(
        tiny(), cache, tmp_path / "p.parquet", reward_model_path="me/sarm", progress=False
    )
    ours, theirs = (
        pq.read_schema(path),
        pq.read_schema(FIXTURES / "sarm_progress.parquet"),
    )
    for name in theirs.names:
        assert ours.field(name).type == theirs.field(name).type
    assert ours.metadata[b"reward_model_path"] == b"me/sarm"
    table = read_progress(path)
    assert len(table) == sum(LENGTHS)
    np.testing.assert_array_equal(table.index, np.arange(sum(LENGTHS)))
    np.testing.assert_array_equal(table.frame_index, np.concatenate([np.arange(n) for n in LENGTHS]))
    weights = RABCWeights.from_progress(path, chunk_size=5)
    assert np.isfinite(weights.deltas).all()


def test_stride_scores_every_kth_and_the_last_frame_and_interpolates(cache, tmp_path):
    model = tiny()
    full = read_progress(compute_progress(model, cache, tmp_path / "a.parquet", progress=False)).column(
        "sparse"
    )
    strided = read_progress(compute_progress(model, cache, tmp_path / "b.parquet", stride=4, progress=False))
    values = strided.column("sparse")
    start = 0
    for n in LENGTHS:
        anchors = np.unique(np.r_[np.arange(0, n, 4), n - 1])
        np.testing.assert_allclose(values[start + anchors], full[start + anchors], atol=1e-6)
        expected = np.interp(np.arange(n), anchors, full[start + anchors])
        np.testing.assert_allclose(values[start : start + n], expected, atol=1e-6)
        start += n


def test_shards_then_merge_equal_one_run_and_parts_resume(cache, tmp_path):
    model = tiny()
    one = compute_progress(model, cache, tmp_path / "one.parquet", progress=False)
    assert compute_progress(model, cache, tmp_path / "two.parquet", shard="0/2", progress=False) is None
    parts = tmp_path / "two.parquet.parts"
    assert sorted(p.name for p in parts.glob("episode_*")) == ["episode_000000.npz", "episode_000002.npz"]
    with pytest.raises(FileNotFoundError, match="run every shard"):
        merge_progress(cache, tmp_path / "two.parquet")
    two = compute_progress(model, cache, tmp_path / "two.parquet", shard="1/2", progress=False)
    assert pq.read_table(two).equals(pq.read_table(one))
    assert not parts.exists()


def test_parts_from_other_settings_are_refused(cache, tmp_path):
    compute_progress(tiny(), cache, tmp_path / "p.parquet", shard="0/2", progress=False)
    with pytest.raises(ValueError, match="other settings"):
        compute_progress(tiny(), cache, tmp_path / "p.parquet", stride=2, shard="1/2", progress=False)


def test_stage_probabilities_are_stored_per_frame(cache, tmp_path):
    schemas = {"sparse": {"*": {"names": ["a", "b", "c"], "proportions": [0.2, 0.3, 0.5]}}}
    model = tiny(schemas=schemas)
    path = compute_progress(model, cache, tmp_path / "p.parquet", stage_probs=True, progress=False)
    probs = np.stack(pq.read_table(path).column("stage_probs_sparse").to_pylist())
    assert probs.shape == (sum(LENGTHS), 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_planned_episodes_without_features_get_nan_rows(tmp_path):
    import os

    root = make_v21(tmp_path / "ds")
    extract_features(open_dataset(root), PixelEncoder(32), tmp_path / "cache", progress=False)
    os.remove(tmp_path / "cache" / "episodes" / "episode_000002.images.npy")  # planned, not finished
    with pytest.warns(UserWarning, match=r"no cached features and get NaN.*\[2\]"):
        path = compute_progress(
            tiny(), FeatureCache(tmp_path / "cache"), tmp_path / "p.parquet", progress=False
        )
    table = read_progress(path)
    assert len(table) == sum(LENGTHS)
    assert np.isnan(table.column("sparse")[table.episode_index == 2]).all()
    assert np.isfinite(table.column("sparse")[table.episode_index != 2]).all()
    weights = RABCWeights.from_progress(path, chunk_size=5)
    assert (weights.weights[table.episode_index == 2] == 1.0).all()  # RA-BC's explicit fallback


def test_a_lerobot_checkpoint_scores_a_clip_cache_with_both_heads(tmp_path):
    pytest.importorskip("open_clip")
    root = make_v21(tmp_path / "ds")
    ds = open_dataset(root)
    cache = extract_features(
        ds, load_encoder("clip:sarm-tiny"), tmp_path / "cache", episodes=[0], progress=False
    )
    model = SARM.from_lerobot(CHECKPOINT)
    mean, std = ds.stats(ds.state_key)
    model.config.state_mean, model.config.state_std = mean.tolist(), std.tolist()
    path = compute_progress(model, cache, tmp_path / "p.parquet", progress=False)
    table = read_progress(path)
    assert table.heads == ["sparse", "dense"]
    for head in table.heads:
        values = table.column(head)
        assert values.shape == (LENGTHS[0],) and ((values >= 0) & (values <= 1)).all()
        np.testing.assert_allclose(values, frame_by_frame(model, cache, 0, head), atol=2e-6)


def test_a_model_that_does_not_fit_the_cache_is_refused(cache, tmp_path):
    torch.manual_seed(0)
    model = SARM(SARMConfig(image_dim=64, text_dim=64, hidden_dim=32, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="image_dim=64"):
        compute_progress(model, cache, tmp_path / "p.parquet", progress=False)
    with pytest.raises(ValueError, match="stride"):
        compute_progress(tiny(), cache, tmp_path / "p.parquet", stride=0, progress=False)
