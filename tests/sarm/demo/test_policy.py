"""Tests for sarm.demo.policy: chunk samples, determinism, the three training methods, evaluate()."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sarm.demo.policy import ChunkPolicy, chunk_targets, evaluate, train_policy


def _dataset(lengths=(7, 3, 12, 1, 9), obs_dim=6, seed=0):
    """Tiny per-frame arrays; states[:, 0] holds the frame's position, so a batch names its frames."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    states = rng.normal(size=(n, obs_dim)).astype(np.float32)
    states[:, 0] = np.arange(n)
    actions = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    episode_index = np.repeat(np.arange(len(lengths)) * 10, lengths).astype(np.int64)  # ids 0, 10, 20, ...
    return states, actions, episode_index


def _drawn_frames(monkeypatch, **kwargs) -> np.ndarray:
    """Train a tiny policy while recording which frames each batch held (via states[:, 0])."""
    drawn = []
    forward = ChunkPolicy.forward

    def recording_forward(self, obs):
        drawn.append(obs[:, 0].detach().numpy().astype(np.int64))
        return forward(self, obs)

    monkeypatch.setattr(ChunkPolicy, "forward", recording_forward)
    states, actions, episode_index = _dataset()
    train_policy(states, actions, episode_index, chunk_size=3, steps=20, batch_size=16, **kwargs)
    return np.concatenate(drawn)


def _same(a: ChunkPolicy, b: ChunkPolicy) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_chunk_targets_stay_in_episode_and_mask_the_padding():
    actions = np.arange(12, dtype=np.float32).reshape(6, 2)
    episode_index = np.array([4, 4, 4, 1, 1, 9])
    targets, mask = chunk_targets(actions, episode_index, chunk_size=3)
    assert targets.shape == (6, 3, 2) and targets.dtype == np.float32 and mask.dtype == bool
    expected_rows = [[0, 1, 2], [1, 2, 2], [2, 2, 2], [3, 4, 4], [4, 4, 4], [5, 5, 5]]
    np.testing.assert_array_equal(targets, actions[np.array(expected_rows)])
    expected_mask = [[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0]]
    np.testing.assert_array_equal(mask, np.array(expected_mask, bool))


def test_chunk_targets_never_cross_episodes():
    _, actions, episode_index = _dataset()
    _, mask = chunk_targets(actions, episode_index, chunk_size=10)
    n = len(actions)
    pos = np.minimum(np.arange(n)[:, None] + np.arange(10), n - 1)
    assert np.all(episode_index[pos][mask] == np.repeat(episode_index, 10).reshape(n, 10)[mask])
    assert mask.sum() == sum(min(10, length - t) for length in (7, 3, 12, 1, 9) for t in range(length))


def test_chunk_targets_refuses_interleaved_episodes():
    with pytest.raises(ValueError, match="contiguous"):
        chunk_targets(np.zeros((4, 2)), np.array([0, 1, 0, 1]), chunk_size=2)


def test_policy_shapes_range_and_no_global_rng():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    policy = ChunkPolicy(obs_dim=6, action_dim=2, chunk_size=4, hidden=32, depth=2, seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    out = policy(torch.randn(3, 6) * 100)
    assert out.shape == (3, 4, 2) and out.abs().max() <= 1
    assert policy.act(np.zeros(6)).shape == (4, 2)
    again = ChunkPolicy(obs_dim=6, action_dim=2, chunk_size=4, hidden=32, depth=2, seed=5)
    assert _same(policy, again)
    assert {"obs_mean", "obs_std"} <= set(policy.state_dict())
    with pytest.raises(ValueError, match="hidden should be a positive integer"):
        ChunkPolicy(hidden=0)


def _train(method="bc", seed=0, **kwargs):
    states, actions, episode_index = _dataset()
    return train_policy(
        states,
        actions,
        episode_index,
        method=method,
        chunk_size=3,
        steps=30,
        batch_size=16,
        seed=seed,
        **kwargs,
    )


def _same(a: ChunkPolicy, b: ChunkPolicy) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("method", ["bc", "sampler", "loss"])
def test_training_is_a_function_of_the_seed(method):
    weights = np.linspace(0, 1, 32) if method != "bc" else None
    first = _train(method, seed=3, weights=weights)
    torch.manual_seed(999), np.random.seed(999)  # noqa: NPY002 (the global RNGs play no part)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy())  # noqa: NPY002
    assert _same(first, _train(method, seed=3, weights=weights))
    assert torch.equal(torch.get_rng_state(), states[0])
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert not _same(first, _train(method, seed=4, weights=weights))


def test_loss_with_unit_weights_is_exactly_bc():
    assert _same(_train("bc"), _train("loss", weights=np.ones(32)))
    assert not _same(_train("bc"), _train("loss", weights=np.linspace(0.1, 1, 32)))


def test_sampler_never_draws_zero_weight_frames(monkeypatch):
    weights = np.ones(32)
    weights[[0, 5, 6, 7, 20, 31]] = 0
    drawn = _drawn_frames(monkeypatch, method="sampler", weights=weights)
    assert len(drawn) == 20 * 16 and np.all(weights[drawn] > 0)
    assert set(np.flatnonzero(weights)) == set(drawn)  # 320 draws of 26 frames: all of them seen


def test_bc_and_loss_draw_uniformly_over_all_frames(monkeypatch):
    drawn = _drawn_frames(monkeypatch, method="loss", weights=np.r_[np.zeros(16), np.ones(16)])
    assert set(drawn) == set(range(32))


def test_clean_only_subset(monkeypatch):
    states, _, episode_index = _dataset()
    drawn = _drawn_frames(monkeypatch, method="bc", episodes=np.array([10, 30]))
    assert set(episode_index[drawn]) == {10, 30}
    policy = _train("bc", episodes=np.array([10, 30]))
    subset = np.isin(episode_index, [10, 30])
    np.testing.assert_allclose(policy.obs_mean.numpy(), states[subset].mean(axis=0), rtol=1e-6)


def test_training_reduces_the_loss():
    losses = []
    _train("bc", callback=lambda step, loss: losses.append(loss))
    states, actions, episode_index = _dataset()
    train_policy(
        states,
        actions,
        episode_index,
        method="bc",
        chunk_size=3,
        steps=300,
        batch_size=32,
        lr=3e-3,
        callback=lambda step, loss: losses.append(loss),
    )
    assert len(losses) == 330
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[30:40])


def test_oracle_weights_change_what_is_learned():
    """Identical states, two action clusters: zero weight on one cluster keeps the policy off it."""
    n = 64
    states = np.zeros((n, 3), np.float32)
    actions = np.full((n, 1), -0.8, np.float32)
    actions[::2] = 0.8
    episode_index = np.arange(n)  # one-frame episodes: no chunk mixes the clusters
    weights = (actions[:, 0] < 0).astype(np.float64)
    kw = dict(chunk_size=1, steps=150, batch_size=32, lr=3e-3)
    outputs = {
        method: float(
            train_policy(states, actions, episode_index, method=method, weights=w, **kw).act(states[0])[0, 0]
        )
        for method, w in (("bc", None), ("sampler", weights), ("loss", weights))
    }
    assert abs(outputs["bc"]) < 0.3
    assert outputs["sampler"] < -0.7 and outputs["loss"] < -0.7


def test_input_errors_name_the_fix():
    states, actions, episode_index = _dataset()
    with pytest.raises(ValueError, match="method should be one of"):
        train_policy(states, actions, episode_index, method="rabc")
    with pytest.raises(ValueError, match="pass weights=None"):
        train_policy(states, actions, episode_index, method="bc", weights=np.ones(32))
    with pytest.raises(ValueError, match="needs per-frame weights"):
        train_policy(states, actions, episode_index, method="loss")
    with pytest.raises(ValueError, match="finite and non-negative"):
        train_policy(states, actions, episode_index, method="sampler", weights=-np.ones(32))
    with pytest.raises(ValueError, match="absent"):
        train_policy(states, actions, episode_index, method="bc", episodes=np.array([10, 11]))
    with pytest.raises(ValueError, match="every weight of the training frames is zero"):
        w = np.r_[np.zeros(7), np.ones(25)]
        train_policy(states, actions, episode_index, method="loss", weights=w, episodes=np.array([0]))
    with pytest.raises(ValueError, match="share n > 0 frames"):
        train_policy(states[:-1], actions, episode_index, method="bc")


def test_evaluate_runs_and_reports():
    pytest.importorskip("metaworld")
    policy = ChunkPolicy(chunk_size=4, hidden=16, depth=1)
    result = evaluate(policy, "pick-place-v3", rollouts=2, seed=0, max_steps=15, execute="chunk")
    assert set(result) == {
        "success_rate",
        "mean_steps",
        "successes",
        "first_success",
        "steps",
        "goals",
        "execute_steps",
    }
    assert result["execute_steps"] == 4 and len(result["successes"]) == 2 and len(result["goals"]) == 2
    assert 0 <= result["success_rate"] <= 1 and 1 <= result["mean_steps"] <= 15
    assert all(s == (f >= 0) for s, f in zip(result["successes"], result["first_success"], strict=True))
    assert result["goals"][0] != result["goals"][1]
    np.random.seed(7)  # noqa: NPY002 (evaluate neither reads nor advances the global RNG)
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    again = evaluate(policy, "pick-place-v3", rollouts=2, seed=0, max_steps=15, execute="chunk")
    assert again == result
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    other = evaluate(policy, "pick-place-v3", rollouts=1, seed=1, max_steps=1, execute="receding")
    assert other["goals"][0] != result["goals"][0] and other["execute_steps"] == 1
    with pytest.raises(ValueError, match="execute should be"):
        evaluate(policy, "pick-place-v3", rollouts=1, execute=5)


def test_evaluate_without_metaworld_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # import metaworld -> ImportError
    with pytest.raises(ImportError, match="pip install metaworld packaging"):
        evaluate(ChunkPolicy(hidden=8, depth=1), "pick-place-v3", rollouts=1)
