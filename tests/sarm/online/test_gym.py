"""ProgressRewardWrapper on a real gymnasium Env and a SyncVectorEnv of it: info keys, reward modes,
resets (NEXT_STEP autoreset, DISABLED with reset_mask), frames from render() or the observation."""

from __future__ import annotations

import numpy as np
import pytest

from sarm.online import ProgressRewardWrapper, ProgressStream, RewardSpec
from tests.sarm.online.tiny import TASK, encoder, ramp_env_class, tiny_model

gym = pytest.importorskip("gymnasium")
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402

from sarm.online.gym import ProgressRewardVectorWrapper  # noqa: E402

Ramp = ramp_env_class()
KEYS = {"sarm_progress", "sarm_stage", "sarm_stage_probs", "sarm_reward", "sarm_delta", "sarm_success"}


def reference(model, episode: list[dict]) -> np.ndarray:
    """Progress of one episode's observations through a fresh single stream."""
    stream = ProgressStream(model, encoder())
    stream.reset(TASK)
    return np.array([stream.step(o["pixels"][None], o["state"][None])[0] for o in episode])


def run_single(env, actions):
    obs, info = env.reset(seed=0)
    seen, infos, rewards = [obs], [info], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        seen.append(obs)
        infos.append(info)
        rewards.append(reward)
        if terminated or truncated:
            break
    return seen, infos, rewards


def test_single_env_scores_every_frame_from_the_reset_frame():
    model = tiny_model()
    env = ProgressRewardWrapper(
        Ramp(length=6), ProgressStream(model, encoder()), task=TASK, state_key="state"
    )
    assert isinstance(env, gym.Wrapper)
    seen, infos, rewards = run_single(env, [1] * 10)
    assert len(seen) == 7 and all(KEYS <= set(info) for info in infos)
    progress = np.array([info["sarm_progress"] for info in infos])
    np.testing.assert_allclose(progress, reference(model, seen), atol=1e-6)
    np.testing.assert_allclose(rewards, progress[1:], atol=1e-6)  # "progress" reward, replaced
    assert infos[0]["sarm_stage_probs"].shape == (2,) and infos[0]["sarm_stage"] in (0, 1)
    with pytest.raises(RuntimeError, match=r"call env.reset\(\) before env.step\(\)"):
        env.step(0)
    env.reset()  # a second episode starts at frame 0 again: the same progress as the first
    again = [env.step(1)[4]["sarm_progress"] for _ in range(6)]
    np.testing.assert_allclose(again, progress[1:], atol=1e-6)


def test_frames_from_render_equal_frames_from_the_observation():
    model = tiny_model()
    got = []
    for key in (None, "pixels", lambda obs: obs["pixels"]):
        env = ProgressRewardWrapper(Ramp(), ProgressStream(model, encoder()), task=TASK, frame_key=key,
                                    state_key="state")  # fmt: skip
        got.append([info["sarm_progress"] for info in run_single(env, [0] * 5)[1]])
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[0], got[2])


@pytest.mark.parametrize("use", ["replace", "add", "info"])
def test_reward_modes(use):
    model = tiny_model()
    env = ProgressRewardWrapper(
        Ramp(), ProgressStream(model, encoder()), task=TASK, state_key="state", reward="delta",
        reward_mode=use, scale=2.0,
    )  # fmt: skip
    _, infos, rewards = run_single(env, [1] * 5)
    sarm = np.array([info["sarm_reward"] for info in infos[1:]])
    progress = np.array([info["sarm_progress"] for info in infos])
    np.testing.assert_allclose(sarm, 0.99 * progress[1:] - progress[:-1], atol=1e-6)
    assert infos[0]["sarm_delta"] == 0.0  # the reset frame has no predecessor
    env_reward = np.ones(5)  # Ramp pays the action
    want = {"replace": 2.0 * sarm, "add": env_reward + 2.0 * sarm, "info": env_reward}[use]
    np.testing.assert_allclose(rewards, want, atol=1e-6)


def test_terminate_on_success_after_k_frames_above_the_threshold():
    env = ProgressRewardWrapper(
        Ramp(length=50), ProgressStream(tiny_model(), encoder()), task=TASK, state_key="state",
        reward=RewardSpec("success", threshold=0.0, steps=3),
        terminate_on_success=True,
    )  # fmt: skip
    _, infos, rewards = run_single(env, [0] * 50)
    assert len(rewards) == 2  # frames 0, 1, 2 are above 0: success at frame 2, the second step
    assert [info["sarm_success"] for info in infos] == [False, False, True]
    assert rewards == [0.0, 1.0]


def make_vector(lengths, **kwargs):
    return SyncVectorEnv([lambda n=n, s=s: Ramp(length=n, shift=s) for s, n in enumerate(lengths)], **kwargs)


def test_vector_env_next_step_autoreset_restarts_each_env_alone():
    model = tiny_model()
    lengths = [3, 5, 4]
    envs = ProgressRewardWrapper(
        make_vector(lengths), ProgressStream(model, encoder(), num_envs=3), task=TASK, state_key="state"
    )
    assert isinstance(envs, ProgressRewardVectorWrapper)
    obs, info = envs.reset(seed=0)
    episodes = [[[{"pixels": obs["pixels"][i], "state": obs["state"][i]}]] for i in range(3)]
    progress = [[[info["sarm_progress"][i]]] for i in range(3)]
    assert KEYS <= set(info) and info["sarm_stage_probs"].shape == (3, 2)
    ended = np.zeros(3, bool)
    for _ in range(12):
        obs, _, terminated, truncated, info = envs.step(np.ones(3, np.int64))
        for i in range(3):
            if ended[i]:  # NEXT_STEP: this step's obs is the new episode's reset frame
                episodes[i].append([])
                progress[i].append([])
            episodes[i][-1].append({"pixels": obs["pixels"][i], "state": obs["state"][i]})
            progress[i][-1].append(info["sarm_progress"][i])
        ended = terminated | truncated
    for i in range(3):
        assert len(episodes[i]) >= 2  # every env restarted at least once
        for episode, got in zip(episodes[i], progress[i], strict=True):
            np.testing.assert_allclose(got, reference(model, episode)[: len(got)], atol=1e-6)


def test_vector_env_disabled_autoreset_and_reset_mask():
    model = tiny_model()
    envs = ProgressRewardWrapper(
        make_vector([2, 6], autoreset_mode=AutoresetMode.DISABLED),
        ProgressStream(model, encoder(), num_envs=2), task=[TASK, TASK], frame_key="pixels",
        state_key="state",
    )  # fmt: skip
    envs.reset(seed=0)
    for _ in range(2):
        _, _, terminated, _, info = envs.step(np.zeros(2, np.int64))
    assert terminated.tolist() == [True, False]  # env 0 ended; DISABLED: it waits for reset(reset_mask)
    before = envs.stream.frame_index.copy()
    obs, info = envs.reset(options={"reset_mask": np.array([True, False])})
    assert envs.stream.frame_index.tolist() == [1, before[1]]  # env 0 scored its frame 0; env 1 untouched
    assert np.isnan(info["sarm_progress"][1]) and info["sarm_stage"][1] == -1  # not scored at this reset
    want = reference(model, [{"pixels": obs["pixels"][0], "state": obs["state"][0]}])[0]
    assert info["sarm_progress"][0] == pytest.approx(want, abs=1e-6)
    _, _, _, _, info = envs.step(np.zeros(2, np.int64))
    assert envs.stream.frame_index.tolist() == [2, before[1] + 1] and np.isfinite(info["sarm_progress"]).all()


def test_wrapper_errors_name_the_fix():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"num_envs=3\)"):
        ProgressRewardWrapper(make_vector([2, 2, 2]), ProgressStream(model, encoder()), task=TASK)
    with pytest.raises(ValueError, match="render_mode='rgb_array', or pass frame_key"):
        ProgressRewardWrapper(Ramp(render_mode=None), ProgressStream(model, encoder()), task=TASK)
    with pytest.raises(ValueError, match="AutoresetMode.NEXT_STEP"):
        ProgressRewardWrapper(
            make_vector([2], autoreset_mode=AutoresetMode.SAME_STEP),
            ProgressStream(model, encoder()),
            task=TASK,
        )
    with pytest.raises(ValueError, match="wrap each env with ProgressRewardWrapper before vectorising"):
        ProgressRewardWrapper(
            make_vector([2]), ProgressStream(model, encoder()), task=TASK, terminate_on_success=True
        )
    with pytest.raises(ValueError, match="reward_mode should be one of"):
        ProgressRewardWrapper(Ramp(), ProgressStream(model, encoder()), task=TASK, reward_mode="swap")
