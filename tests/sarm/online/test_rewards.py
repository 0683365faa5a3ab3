"""Rewards from progress, by hand: dense progress, potential-based deltas (telescoping), k-step success."""

from __future__ import annotations

import numpy as np
import pytest

from sarm.online import ProgressReward, ProgressStream, RewardSpec, progress_rewards
from tests.sarm.online.tiny import TASK, encoder, tiny_model

WALK = np.array([0.1, 0.3, 0.2, 0.6, 0.95, 0.97, 0.5, 0.92, 0.93, 0.94, 0.99])


def feed(reward: ProgressReward, values) -> list[dict]:
    return [reward.update([p], first=(t == 0)) for t, p in enumerate(values)]


def test_progress_mode_is_the_progress():
    out = feed(ProgressReward("progress"), WALK)
    np.testing.assert_allclose([o["reward"][0] for o in out], WALK, atol=1e-7)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_delta_shaping_telescopes(gamma):
    out = feed(ProgressReward("delta", gamma=gamma), WALK)
    deltas = np.array([o["reward"][0] for o in out], np.float64)
    assert deltas[0] == 0.0  # frame 0 has no predecessor
    np.testing.assert_allclose(deltas[1:], gamma * WALK[1:] - WALK[:-1], atol=1e-6)
    # sum_t (gamma p_t - p_{t-1}) = p_T - p_0 + (gamma - 1) * sum_{t>=1} p_t
    want = WALK[-1] - WALK[0] + (gamma - 1) * WALK[1:].sum()
    assert deltas.sum() == pytest.approx(want, abs=1e-5)


def test_a_new_episode_restarts_the_potential():
    reward = ProgressReward("delta", gamma=1.0, num_envs=2)
    reward.update([0.2, 0.5], first=True)
    out = reward.update([0.9, 0.1], first=[False, True])  # env 1 starts a new episode
    np.testing.assert_allclose(out["reward"], [0.7, 0.0], atol=1e-6)
    out = reward.update([0.4], env_ids=[1])  # one environment alone
    np.testing.assert_allclose(out["reward"], [0.3], atol=1e-6)


def test_success_fires_after_exactly_k_frames_above_and_not_on_a_spike():
    spec = RewardSpec("success", threshold=0.9, steps=3)
    out = feed(ProgressReward(spec), WALK)
    success = [bool(o["success"][0]) for o in out]
    # above 0.9 at frames 4, 5 (a two-frame spike: no success), then 7, 8, 9, 10: fires at 9
    assert success == [False] * 9 + [True, True]
    assert [o["reward"][0] for o in out] == [0.0] * 9 + [1.0, 1.0]
    assert [int(o["above"][0]) for o in out] == [0, 0, 0, 0, 1, 2, 0, 1, 2, 3, 4]
    single = feed(ProgressReward(RewardSpec("success", threshold=0.9, steps=1)), [0.1, 0.95, 0.1])
    assert [bool(o["success"][0]) for o in single] == [False, True, False]


def test_reset_clears_the_count():
    reward = ProgressReward(RewardSpec("success", threshold=0.5, steps=2))
    feed(reward, [0.9, 0.9, 0.9])
    assert not reward.update([0.9], first=True)["success"][0]  # frame 0 of a new episode counts 1


def test_progress_rewards_in_a_custom_loop_reads_frame_zero_from_the_stream():
    model = tiny_model(state_mean=None, state_std=None)
    stream = ProgressStream(model, encoder(), num_envs=2)
    reward = ProgressReward("delta", gamma=1.0, num_envs=2)
    stream.reset(TASK)
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    first = progress_rewards(stream, frames, reward=reward)
    assert set(first) == {
        "progress",
        "stage",
        "stage_probs",
        "frame_index",
        "reward",
        "delta",
        "success",
        "above",
    }
    assert first["frame_index"].tolist() == [0, 0] and first["reward"].tolist() == [0.0, 0.0]
    second = progress_rewards(stream, frames + 90, reward=reward)
    np.testing.assert_allclose(second["reward"], second["progress"] - first["progress"], atol=1e-6)
    features = encoder().encode_images(frames)[:, None]
    third = progress_rewards(stream, features=features, reward=reward)
    assert third["frame_index"].tolist() == [2, 2]
    with pytest.raises(ValueError, match="exactly one of frames"):
        progress_rewards(stream)


def test_spec_errors():
    with pytest.raises(ValueError, match="mode should be one of"):
        RewardSpec("advantage")
    with pytest.raises(ValueError, match="steps should be a positive integer"):
        RewardSpec("success", steps=0)
    with pytest.raises(ValueError, match="gamma should be in"):
        ProgressReward("delta", gamma=1.5)
    with pytest.raises(ValueError, match="one value per environment"):
        ProgressReward(num_envs=2).update([0.1])
