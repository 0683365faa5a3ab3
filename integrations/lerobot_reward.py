"""SARM progress as the reward of LeRobot's `gym_manipulator` loop: a processor step over transitions.

    from integrations.lerobot import SARMRewardStep, sarm_reward_processor_step
    stream = ProgressStream(SARM.from_pretrained("runs/sarm/model"), load_encoder("clip:ViT-B-32/openai"))
    step = sarm_reward_processor_step(stream, task="pick the cube", image_key="observation.images.front")
    env_processor = DataProcessorPipeline(steps=[..., step])   # after the image steps, as the reward
                                                               # classifier's step sits in gym_manipulator

A transition is LeRobot's `EnvTransition` dict (keys "observation", "action", "reward", "done",
"truncated", "info", "complementary_data"; LeRobot's `TransitionKey` members are these strings). Each call
scores the transition's frame with the stream (frame 0 right after `reset()` or after a transition that
was done or truncated), writes `info["sarm_progress"]`, `sarm_stage`, `sarm_stage_probs`, `sarm_reward`,
`sarm_delta`, `sarm_success`, and, as `reward_mode` says, replaces ("replace") or adds to ("add") the
reward, or leaves it ("info"). Images may be uint8 `(H, W, 3)` or LeRobot's float `(C, H, W)` in [0, 1]
(batched or not); floats are turned back into uint8 by rounding `x * 255`, which recovers the frames a
dataset decoded exactly. `terminate_on_success=True` sets `done` once success holds (k frames above the
threshold, `sarm.online.rewards`), like LeRobot's reward classifier step.

`SARMRewardStep` needs no LeRobot: it is a plain callable (tests/integrations/test_lerobot_reward.py).
`sarm_reward_processor_step` returns the same step as a subclass of LeRobot's `ProcessorStep`, which
LeRobot's pipelines require, importing lerobot only then. The step holds a live model, so it is not
registered for `save_pretrained` of a pipeline: build it in code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sarm.online import ProgressReward, ProgressStream, RewardSpec, progress_rewards

__all__ = ["SARMRewardStep", "sarm_reward_processor_step"]

_USES = ("replace", "add", "info")


class SARMRewardStep:
    """A LeRobot-style processor step (see the module docstring) over a `ProgressStream`.

    Args:
        stream: the `ProgressStream` (its `num_envs` = the batch of the transitions).
        task: the task text; None reads `complementary_data[task_key]` at each episode's first frame.
        image_key: observation key of the camera image, or one key per camera of the model.
        state_key: observation key of the raw robot state; None: no state.
        reward: a `RewardSpec` or a mode ("progress", "delta", "success").
        reward_mode: "replace", "add" or "info".
        scale: factor on the SARM reward where it is returned.
        terminate_on_success: set `done` when success holds.
    """

    def __init__(
        self,
        stream: ProgressStream,
        *,
        task: str | None = None,
        image_key: str | Sequence[str] = "observation.image",
        state_key: str | None = "observation.state",
        reward: RewardSpec | str = "progress",
        reward_mode: str = "replace",
        scale: float = 1.0,
        terminate_on_success: bool = False,
        task_key: str = "task",
    ):
        if reward_mode not in _USES:
            raise ValueError(f"reward_mode should be one of {list(_USES)}, but got {reward_mode!r}")
        self.stream, self.task, self.task_key = stream, task, task_key
        self.image_keys = [image_key] if isinstance(image_key, str) else list(image_key)
        self.state_key, self.reward_mode, self.scale = state_key, reward_mode, float(scale)
        self.terminate_on_success = terminate_on_success
        self.rewards = ProgressReward(reward, num_envs=stream.num_envs)
        self._new_episode = True

    def reset(self) -> None:
        """The next transition is the first frame of an episode (LeRobot calls this at each reset)."""
        self._new_episode = True

    def __call__(self, transition: dict) -> dict:
        new = dict(transition)
        obs = new.get("observation")
        if not obs:
            return new
        if self._new_episode:
            self.stream.reset(self._task(new))
            self._new_episode = False
        missing = [k for k in [*self.image_keys, self.state_key] if k is not None and k not in obs]
        if missing:
            raise KeyError(
                f"the observation has no {missing}; it has {sorted(obs)}: pass image_key= / state_key= "
                "(state_key=None for a model without state)"
            )
        frames = np.stack([_uint8_frames(obs[k], self.stream.num_envs) for k in self.image_keys], axis=1)
        state = None if self.state_key is None else _rows(obs[self.state_key], self.stream.num_envs)
        scored = progress_rewards(self.stream, frames, state=state, reward=self.rewards)
        done = _flags(new.get("done"), self.stream.num_envs)
        if self.terminate_on_success and scored["success"].any():
            done = done | scored["success"]
            new["done"] = _like(transition.get("done"), done)
        if done.any() or _flags(new.get("truncated"), self.stream.num_envs).any():
            self._new_episode = True
        if self.reward_mode != "info":
            given = new.get("reward")
            base = 0.0 if self.reward_mode == "replace" or given is None else _as_numpy(given)
            new["reward"] = _like(transition.get("reward"), base + self.scale * scored["reward"])
        one = self.stream.num_envs == 1
        info = dict(new.get("info") or {})
        for key in ("progress", "stage", "stage_probs", "reward", "delta", "success"):
            value = scored[key]
            info[f"sarm_{key}"] = value[0].item() if one and value.ndim == 1 else (value[0] if one else value)
        new["info"] = info
        return new

    def _task(self, transition: dict) -> str | list[str]:
        if self.task is not None:
            return self.task
        task = (transition.get("complementary_data") or {}).get(self.task_key)
        if task is None:
            raise ValueError(
                f"no task text: pass SARMRewardStep(..., task='...') or put it in "
                f"complementary_data[{self.task_key!r}]"
            )
        return task if isinstance(task, str) or len(task) != 1 else task[0]

    def get_config(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "image_key": self.image_keys,
            "state_key": self.state_key,
            "reward": vars(self.rewards.spec),
            "reward_mode": self.reward_mode,
            "scale": self.scale,
            "terminate_on_success": self.terminate_on_success,
        }

    def transform_features(self, features: Any) -> Any:
        return features  # the reward and info change; no observation feature does


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _rows(x: Any, n: int) -> np.ndarray:
    """(s,) or (n, s) state -> (n, s) (the stream names a wrong shape)."""
    x = _as_numpy(x)
    return x.reshape(1, -1) if x.ndim == 1 and n == 1 else x


def _flags(x: Any, n: int) -> np.ndarray:
    return np.zeros(n, bool) if x is None else np.broadcast_to(_as_numpy(x).astype(bool).reshape(-1), (n,))


def _like(template: Any, values: np.ndarray) -> Any:
    """`values` in the form of the transition's own field: a tensor, an array, or a Python scalar."""
    if isinstance(template, torch.Tensor):
        return torch.as_tensor(values, dtype=template.dtype, device=template.device).reshape(template.shape)
    if isinstance(template, np.ndarray):
        return values.astype(template.dtype).reshape(template.shape)
    return values.reshape(-1)[0].item() if values.size == 1 else values


def _uint8_frames(image: Any, n: int) -> np.ndarray:
    """uint8 (H, W, 3) / float (C, H, W) in [0, 1], batched or not -> uint8 (n, H, W, 3)."""
    x = _as_numpy(image)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != n or 3 not in (x.shape[1], x.shape[-1]):
        raise ValueError(
            f"the camera image should be ({n}, H, W, 3) uint8 or ({n}, 3, H, W) float in [0, 1] (or one "
            f"of them unbatched), but got shape {x.shape}"
        )
    if x.shape[-1] != 3:  # channels first, LeRobot's layout
        x = x.transpose(0, 2, 3, 1)
    if x.dtype != np.uint8:
        x = np.clip(np.rint(x.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return x


def sarm_reward_processor_step(stream: ProgressStream, **kwargs: Any):
    """A `SARMRewardStep` that is also a LeRobot `ProcessorStep` (needs lerobot; see the module docstring)."""
    try:
        from lerobot.processor import ProcessorStep
    except ImportError as err:
        raise ImportError(
            "LeRobot is not installed: `pip install 'lerobot>=0.4'`; without it use SARMRewardStep, a plain "
            f"callable over transition dicts ({err})"
        ) from err
    step_class = type("SARMRewardProcessorStep", (SARMRewardStep, ProcessorStep), {})
    return step_class(stream, **kwargs)
