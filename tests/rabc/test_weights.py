import json

import numpy as np
import pytest
import torch

from rabc.formulas import progress_deltas
from rabc.progress_io import read_progress
from rabc.weights import RABCWeights
from tests.conftest import progress_table


def _fixture_values(fixtures_dir):
    j = json.loads((fixtures_dir / "rabc_weights.json").read_text())
    j["deltas"] = np.array([np.nan if x is None else x for x in j["deltas"]])
    return j


def test_reproduces_lerobot_0_6_1_fixture(fixtures_dir):
    expected = _fixture_values(fixtures_dir)
    w = RABCWeights.from_progress(
        fixtures_dir / "sarm_progress.parquet", chunk_size=5, kappa=0.05, epsilon=1e-6, fallback_weight=1.0
    )
    np.testing.assert_array_equal(np.isnan(w.deltas), np.isnan(expected["deltas"]))
    np.testing.assert_allclose(w.deltas, expected["deltas"], atol=1e-6, equal_nan=True)
    assert w.delta_mean == pytest.approx(expected["delta_mean"], abs=1e-6)
    assert w.delta_std == pytest.approx(expected["delta_std"], abs=1e-6)
    np.testing.assert_allclose(w.weights, expected["raw_weights"], atol=1e-6)
    normalised, stats = w.batch_weights(torch.as_tensor(w.index))
    np.testing.assert_allclose(normalised.numpy(), expected["batch_weights_normalised"], atol=1e-6)
    for key, value in expected["batch_stats"].items():
        assert stats[key] == pytest.approx(value, abs=1e-6)
    assert w.num_fallback == 2


def test_reproduces_lerobot_hand_oracle():
    """The oracle run on the lerobot 0.6.1 wheel recorded in reference/lerobot_sarm.md section 5."""
    ep0 = [i / 10 for i in range(10)]
    ep1 = [0, 0.1, 0.3, 0.2, 0.2, 0.5, np.nan, 0.9]
    w = RABCWeights.from_progress(progress_table([ep0, ep1]), chunk_size=3, kappa=0.05)
    assert w.delta_mean == pytest.approx(0.25, abs=1e-6)
    assert w.delta_std == pytest.approx(0.162019, abs=1e-6)
    expected = [0.3] * 7 + [0.2, 0.1, 0, 0.2, 0.1, 0.2, np.nan, 0.7, 0.4, np.nan, 0]
    np.testing.assert_allclose(w.deltas, expected, atol=1e-6)
    zero = np.isclose(w.deltas, 0)
    np.testing.assert_allclose(w.weights[zero], 0.1142, atol=1e-4)
    assert np.all(w.weights[~zero] == 1.0)
    normalised, stats = w.batch_weights(w.index)
    np.testing.assert_allclose(normalised[torch.as_tensor(~zero)].numpy(), 1.1092, atol=1e-4)
    np.testing.assert_allclose(normalised[torch.as_tensor(zero)].numpy(), 0.1267, atol=1e-4)
    assert stats["mean_weight"] == pytest.approx(0.9016, abs=1e-4) and stats["num_full_weight"] == 16


def test_eq9_by_hand():
    # one episode, chunk 1: deltas -0.1, 0, 0.02, 0.5, and 0 at the clamped last frame
    w = RABCWeights.from_progress(progress_table([[0.3, 0.2, 0.2, 0.22, 0.72]]), chunk_size=1, kappa=0.1)
    d = np.array([-0.1, 0.0, 0.02, 0.5, 0.0])
    np.testing.assert_allclose(w.deltas, d, atol=1e-6)
    mu, sigma = max(d.mean(), 0), d.std()
    soft = np.clip((d - (mu - 2 * sigma)) / (4 * sigma + 1e-6), 0, 1)
    np.testing.assert_allclose(w.weights, [0.0, soft[1], soft[2], 1.0, soft[4]], atol=1e-6)


def test_clamps_future_to_episode_end_and_never_crosses_episodes():
    t = read_progress(progress_table([[0.0, 0.5, 1.0], [0.0, 0.0]]))
    deltas, clamped = progress_deltas(t, "sparse", chunk_size=2)
    np.testing.assert_allclose(deltas, [1.0, 0.5, 0.0, 0.0, 0.0], atol=1e-7)
    assert clamped.tolist() == [False, True, True, True, True]


def test_gap_in_indices_gives_nan_like_lerobot():
    table = progress_table([[0.0, 0.1, 0.2, 0.3]]).take([0, 1, 3])  # index 2 missing
    w = RABCWeights.from_progress(table, chunk_size=1, kappa=0.01)
    assert np.isnan(w.deltas[1]) and w.num_fallback == 1 and w.weights[1] == 1.0


def test_fallback_none_refuses_nan():
    with pytest.raises(
        ValueError,
        match=r"2 frame\(s\) have no progress delta.*\(episode 1, frame 0\).*"
        r"fallback_weight=None",
    ):
        RABCWeights.from_progress(
            progress_table([[0.1, 0.2], [0.0, np.nan]]), chunk_size=1, fallback_weight=None
        )


def test_fallback_weight_is_used_and_counted():
    w = RABCWeights.from_progress(progress_table([[0.0, np.nan, 0.5]]), chunk_size=1, fallback_weight=0.25)
    assert w.num_fallback == 2 and np.all(w.weights[:2] == 0.25)


def test_interior_stats_exclude_clamped_deltas():
    episodes = [np.linspace(0, 1, 20), np.linspace(0, 1, 30)]
    g = RABCWeights.from_progress(progress_table(episodes), chunk_size=5, stats="global")
    i = RABCWeights.from_progress(progress_table(episodes), chunk_size=5, stats="interior")
    t = read_progress(progress_table(episodes))
    deltas, clamped = progress_deltas(t, "sparse", 5)
    assert i.delta_mean == pytest.approx(deltas[~clamped].mean())
    assert g.delta_mean == pytest.approx(deltas.mean()) and g.delta_mean < i.delta_mean


def test_group_stats_are_per_group():
    slow, fast = np.linspace(0, 1, 100), np.linspace(0, 1, 10)
    w = RABCWeights.from_progress(
        progress_table([slow, fast, slow]), chunk_size=2, kappa=0.5, groups={0: "slow", 1: "fast", 2: "slow"}
    )
    t = read_progress(progress_table([slow, fast, slow]))
    deltas, _ = progress_deltas(t, "sparse", 2)
    assert set(w.group_stats) == {"slow", "fast"}
    assert w.group_stats["slow"][0] == pytest.approx(deltas[w.episode_index != 1].mean())
    assert w.group_stats["fast"][0] == pytest.approx(deltas[w.episode_index == 1].mean())
    with pytest.raises(ValueError, match=r"no entry for episode\(s\) \[2\]"):
        RABCWeights.from_progress(progress_table([slow, fast, slow]), chunk_size=2, groups={0: "a", 1: "b"})


def test_for_indices_tensor_numpy_and_missing(fixtures_dir):
    w = RABCWeights.from_progress(fixtures_dir / "sarm_progress.parquet", chunk_size=5, kappa=0.05)
    idx = torch.tensor([3, 7, 124, 0])
    out = w.for_indices(idx)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), w.weights[[3, 7, 124, 0]])
    np.testing.assert_array_equal(w.for_indices(np.array([5])), w.weights[[5]])
    with pytest.raises(KeyError, match=r"1 frame index\(es\) not in the progress file.*\[125\]"):
        w.for_indices(torch.tensor([1, 125]))
    out = w.for_indices(torch.tensor([1, 125, -1]), missing="fallback")
    assert out[1] == 1.0 and out[2] == 1.0 and w.num_missing_lookups == 2
    with pytest.raises(TypeError, match="should be integers"):
        w.for_indices(torch.tensor([0.5]))


def test_for_indices_with_sparse_index():
    table = progress_table([[0.0, 0.5, 1.0], [0.1, 0.9]], start_index=100).take([0, 1, 2, 3, 4])
    w = RABCWeights.from_progress(table.take([0, 1, 3, 4]), chunk_size=1, kappa=0.01)
    np.testing.assert_array_equal(w.for_indices(np.array([104, 100])), w.weights[[3, 0]])
    with pytest.raises(KeyError):
        w.for_indices(np.array([102]))


def test_save_load_roundtrip(tmp_path, fixtures_dir):
    w = RABCWeights.from_progress(
        fixtures_dir / "sarm_progress.parquet",
        chunk_size=5,
        kappa=0.05,
        groups={0: "a", 1: "b", 2: "a"},
        stats="interior",
    )
    back = RABCWeights.load(w.save(tmp_path / "w.parquet"))
    for name in ("index", "episode_index", "deltas", "weights", "group_of_row"):
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name))
    for name in (
        "chunk_size",
        "kappa",
        "head",
        "epsilon",
        "fallback_weight",
        "stats",
        "delta_mean",
        "delta_std",
        "num_fallback",
    ):
        assert getattr(back, name) == getattr(w, name)
    assert back.group_stats == {k: tuple(v) for k, v in w.group_stats.items()}
    np.testing.assert_array_equal(back.with_kappa(0.2).weights, w.with_kappa(0.2).weights)


def test_load_rejects_other_files(tmp_path, fixtures_dir):
    with pytest.raises(ValueError, match="not a weights file"):
        RABCWeights.load(fixtures_dir / "sarm_progress.parquet")
    with pytest.raises(FileNotFoundError):
        RABCWeights.load(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_size": 0}, "chunk_size should be a positive integer"),
        ({"chunk_size": 2.5}, "chunk_size should be a positive integer"),
        ({"chunk_size": 5, "kappa": -1}, "kappa should be a finite float >= 0"),
        ({"chunk_size": 5, "kappa": "high"}, "kappa should be a finite float >= 0"),
        ({"chunk_size": 5, "stats": "ema"}, "stats should be one of"),
        ({"chunk_size": 5, "head": "middle"}, "head should be one of"),
    ],
)
def test_parameter_errors(kwargs, message, fixtures_dir):
    with pytest.raises(ValueError, match=message):
        RABCWeights.from_progress(fixtures_dir / "sarm_progress.parquet", **kwargs)


def test_with_kappa_matches_fresh_computation(fixtures_dir):
    path = fixtures_dir / "sarm_progress.parquet"
    w = RABCWeights.from_progress(path, chunk_size=5, kappa=0.01)
    np.testing.assert_array_equal(
        w.with_kappa(0.1).weights, RABCWeights.from_progress(path, chunk_size=5, kappa=0.1).weights
    )


@pytest.mark.parametrize("target", [0.5, 0.55, 0.6])
def test_kappa_for_mean_weight_is_the_smallest_reaching_target(target):
    rng = np.random.default_rng(1)
    episodes = [np.clip(np.cumsum(rng.normal(0.01, 0.02, 200)), 0, 1) for _ in range(5)]
    w = RABCWeights.from_progress(progress_table(episodes), chunk_size=10, kappa=0.0)
    kappa = w.kappa_for_mean_weight(target)
    assert w.with_kappa(kappa).mean_weight <= target + 1e-6
    below = np.nextafter(np.float32(kappa), np.float32(0))
    assert w.with_kappa(float(below)).mean_weight > target
    auto = RABCWeights.from_progress(
        progress_table(episodes), chunk_size=10, kappa="auto", target_mean_weight=target
    )
    assert auto.kappa == pytest.approx(kappa)


def test_kappa_for_unreachable_targets():
    w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 50)]), chunk_size=5, kappa=0.0)
    assert w.kappa_for_mean_weight(0.999) == 0.0  # already below at kappa = 0
    lowest = w.kappa_for_mean_weight(0.01)  # unreachable: every positive delta in the soft band
    assert lowest == pytest.approx(np.nanmax(w.deltas))
    assert w.with_kappa(lowest).mean_weight == pytest.approx(w.with_kappa(10.0).mean_weight)
    with pytest.raises(ValueError, match="target mean weight should be in"):
        w.kappa_for_mean_weight(1.5)
