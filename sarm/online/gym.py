"""`ProgressRewardWrapper`: a gymnasium Env or VectorEnv whose frames are scored by a `ProgressStream`.

    env = gymnasium.make("MyTask-v0", render_mode="rgb_array")
    stream = ProgressStream(SARM.from_pretrained("runs/sarm/model"), load_encoder("clip:ViT-B-32/openai"))
    env = ProgressRewardWrapper(env, stream, task="fold the towel", reward="delta", reward_mode="replace")
    obs, info = env.reset(); info["sarm_progress"]        # progress of the reset frame (frame 0)

    envs = gymnasium.vector.SyncVectorEnv([make] * 8)      # the same class wraps a VectorEnv
    envs = ProgressRewardWrapper(envs, ProgressStream(model, encoder, num_envs=8), task="fold the towel")

Each frame comes from `obs[frame_key]`, from `frame_key(obs)` when it is a callable, or from
`env.render()` when `frame_key` is None (make the env with `render_mode="rgb_array"`); robot state
likewise from `state_key` (None: no state). `info` gains `sarm_progress`, `sarm_stage`,
`sarm_stage_probs`, `sarm_reward` (the chosen reward, `sarm.online.rewards`), `sarm_delta` and
`sarm_success` (per environment for a VectorEnv). `reward_mode`: "replace" returns `scale * sarm_reward`,
"add" returns `env reward + scale * sarm_reward`, "info" leaves the env's reward alone.

Episodes: `reset()` starts a new episode in the stream and scores the reset frame as frame 0. In a
VectorEnv with gymnasium's default autoreset (`NEXT_STEP`), an environment that ended is reset by the
env on its next step: the wrapper resets it in the stream at that step and scores the new episode's first
frame there (a delta of 0, as every frame 0). With `autoreset_mode=DISABLED`, `reset(options={"reset_mask":
mask})` resets only the masked environments, and an ended environment is not scored (NaN progress) until
then. `SAME_STEP` autoreset returns the next episode's first frame in place of the last one and is refused.
`terminate_on_success=True` ends an episode when success (k frames above the threshold) holds (a single
Env only: a VectorEnv autoresets on its own terminations, so wrap each env before vectorising it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from sarm.online.rewards import ProgressReward, RewardSpec
from sarm.online.stream import ProgressStream

__all__ = ["ProgressRewardVectorWrapper", "ProgressRewardWrapper"]

REWARD_USES = ("replace", "add", "info")
Source = str | Callable[[Any], Any] | None


class _Scoring:
    """What both wrappers share: where frames and state come from, the stream and the reward."""

    def _setup(self, stream, task, frame_key, state_key, reward, reward_mode, scale, terminate_on_success, n):
        if not isinstance(stream, ProgressStream):
            raise TypeError(f"stream should be a sarm.online.ProgressStream, but got {type(stream).__name__}")
        if stream.num_envs != n:
            raise ValueError(
                f"the stream scores {stream.num_envs} environment(s) but the env has {n}; build it with "
                f"ProgressStream(model, encoder, num_envs={n})"
            )
        if reward_mode not in REWARD_USES:
            raise ValueError(f"reward_mode should be one of {list(REWARD_USES)}, but got {reward_mode!r}")
        if frame_key is None and getattr(self.env, "render_mode", None) != "rgb_array":
            raise ValueError(
                f"frame_key=None reads frames from env.render(), but the env's render_mode is "
                f"{getattr(self.env, 'render_mode', None)!r}; make it with render_mode='rgb_array', or pass "
                "frame_key=<the observation key of the camera image>"
            )
        self.stream, self.frame_key, self.state_key = stream, frame_key, state_key
        self.tasks = [task] * n if isinstance(task, str) else list(task)
        if len(self.tasks) != n:
            raise ValueError(f"task should be one text or one per environment ({n}), but got {task!r}")
        spec = RewardSpec(reward) if isinstance(reward, str) else reward
        self.reward_spec, self.reward_mode, self.scale = spec, reward_mode, float(scale)
        self.terminate_on_success = terminate_on_success
        self.rewards = ProgressReward(spec, num_envs=n)

    def _frames(self, obs: Any) -> np.ndarray:
        if self.frame_key is None:
            frames = self.env.render()
            if frames is None:
                raise ValueError("env.render() returned None; make the env with render_mode='rgb_array'")
            return np.asarray(frames)
        return np.asarray(self.frame_key(obs) if callable(self.frame_key) else obs[self.frame_key])

    def _state(self, obs: Any) -> np.ndarray | None:
        if self.state_key is None:
            return None
        return np.asarray(self.state_key(obs) if callable(self.state_key) else obs[self.state_key])

    def _score(self, frames: np.ndarray, state, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Score the rows `ids` (frames and state already selected) -> the reward arrays + stage."""
        self.stream.step(frames, state, env_ids=ids)
        out = self.stream.last
        result = self.rewards.update(out.progress, first=out.frame_index == 0, env_ids=ids)
        return result | {"stage": out.stage, "stage_probs": out.stage_probs}

    def _reward(self, env_reward, sarm_reward):
        if self.reward_mode == "info":
            return env_reward
        if self.reward_mode == "replace":
            return self.scale * sarm_reward
        return env_reward + self.scale * sarm_reward


class ProgressRewardWrapper(_Scoring, gym.Wrapper):
    """SARM progress as the reward of a gymnasium `Env` (see the module docstring); given a `VectorEnv`
    it returns a `ProgressRewardVectorWrapper` with the same arguments.

    Args:
        env: the environment.
        stream: a `ProgressStream` with `num_envs` = the env's environments.
        task: the task text (one, or one per environment).
        frame_key: observation key of the RGB frame, a callable obs -> frame, or None for env.render().
        state_key: observation key (or callable) of the raw robot state; None: no state.
        reward: a `RewardSpec` or a mode ("progress", "delta", "success").
        reward_mode: "replace", "add" or "info" (the env's reward, unchanged).
        scale: factor on the SARM reward where it is returned.
        terminate_on_success: end the episode when success holds.
    """

    def __new__(cls, env, *args, **kwargs):
        if isinstance(env, VectorEnv):  # one name for both kinds of env
            return ProgressRewardVectorWrapper(env, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        env: gym.Env,
        stream: ProgressStream,
        *,
        task: str,
        frame_key: Source = None,
        state_key: Source = None,
        reward: RewardSpec | str = "progress",
        reward_mode: str = "replace",
        scale: float = 1.0,
        terminate_on_success: bool = False,
    ):
        gym.Wrapper.__init__(self, env)
        self._setup(stream, task, frame_key, state_key, reward, reward_mode, scale, terminate_on_success, 1)
        self._ended = True

    def _info(self, info: dict, scored: dict) -> dict:
        return info | {
            "sarm_progress": float(scored["progress"][0]),
            "sarm_stage": int(scored["stage"][0]),
            "sarm_stage_probs": scored["stage_probs"][0],
            "sarm_reward": float(scored["reward"][0]),
            "sarm_delta": float(scored["delta"][0]),
            "sarm_success": bool(scored["success"][0]),
        }

    def _score_obs(self, obs) -> dict[str, np.ndarray]:
        state = self._state(obs)
        return self._score(self._frames(obs)[None], None if state is None else state[None], np.arange(1))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.stream.reset(self.tasks[0])
        self._ended = False
        return obs, self._info(info, self._score_obs(obs))

    def step(self, action):
        if self._ended:
            raise RuntimeError("the episode has ended (or never started); call env.reset() before env.step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        scored = self._score_obs(obs)
        terminated = bool(terminated) or (self.terminate_on_success and bool(scored["success"][0]))
        self._ended = terminated or bool(truncated)
        reward = self._reward(reward, float(scored["reward"][0]))
        return obs, reward, terminated, truncated, self._info(info, scored)


class ProgressRewardVectorWrapper(_Scoring, VectorWrapper):
    """`ProgressRewardWrapper` for a gymnasium `VectorEnv`: every environment's frame is scored in one
    batched forward pass; info values are arrays over the environments (NaN / -1 where not scored)."""

    def __init__(
        self,
        env: VectorEnv,
        stream: ProgressStream,
        *,
        task: str | Sequence[str],
        frame_key: Source = None,
        state_key: Source = None,
        reward: RewardSpec | str = "progress",
        reward_mode: str = "replace",
        scale: float = 1.0,
        terminate_on_success: bool = False,
    ):
        VectorWrapper.__init__(self, env)
        n = env.num_envs
        if terminate_on_success:
            raise ValueError(
                "terminate_on_success cannot end one episode of a VectorEnv (the env autoresets only on "
                "its own termination); wrap each env with ProgressRewardWrapper before vectorising it, "
                "or read info['sarm_success']"
            )
        self._setup(stream, task, frame_key, state_key, reward, reward_mode, scale, terminate_on_success, n)
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            raise ValueError(
                "autoreset_mode=SAME_STEP returns the next episode's first frame in place of the last one, "
                "so the stream would miss the last frame; make the vector env with autoreset_mode="
                "AutoresetMode.NEXT_STEP (gymnasium's default) or DISABLED"
            )
        self._ended = np.ones(n, dtype=bool)

    def _score_rows(self, obs, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Score the environments `ids` of this batch; every array is (num_envs, ...) with NaN / -1 rows
        for the others."""
        n, k = self.num_envs, self.stream.model.config.num_stages(self.stream.head)
        full = {
            "progress": np.full(n, np.nan, np.float32),
            "reward": np.zeros(n, np.float32),
            "delta": np.zeros(n, np.float32),
            "success": np.zeros(n, bool),
            "stage": np.full(n, -1, np.int64),
            "stage_probs": np.full((n, k), np.nan, np.float32),
        }
        if ids.size:
            state = self._state(obs)
            scored = self._score(self._frames(obs)[ids], None if state is None else state[ids], ids)
            for key, values in full.items():
                values[ids] = scored[key]
        return full

    @staticmethod
    def _info(info: dict, scored: dict) -> dict:
        return info | {f"sarm_{key}": value for key, value in scored.items() if key != "above"}

    def reset(self, *, seed=None, options=None):
        mask = (options or {}).get("reset_mask")  # read first: SyncVectorEnv pops it from options
        obs, info = self.env.reset(seed=seed, options=options)
        ids = np.arange(self.num_envs) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
        if ids.size:
            self.stream.reset([self.tasks[i] for i in ids.tolist()], env_ids=ids)
        self._ended[ids] = False
        return obs, self._info(info, self._score_rows(obs, ids))

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._ended.any():
            restarted = np.flatnonzero(self._ended)  # the env reset them in this step: frame 0
            self.stream.reset([self.tasks[i] for i in restarted.tolist()], env_ids=restarted)
            self._ended[restarted] = False
        ids = np.flatnonzero(~self._ended)  # DISABLED: ended environments wait for reset(reset_mask)
        scored = self._score_rows(obs, ids)
        terminated = np.asarray(terminated, dtype=bool)
        if self.terminate_on_success:
            terminated = terminated | scored["success"]
        self._ended = self._ended | terminated | np.asarray(truncated, dtype=bool)
        rewards = self._reward(np.asarray(rewards), scored["reward"])
        return obs, rewards, terminated, truncated, self._info(info, scored)
