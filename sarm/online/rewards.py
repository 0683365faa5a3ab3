"""Rewards from streamed progress: dense progress, potential-based deltas, success with hysteresis.

    stream = ProgressStream(model, encoder, num_envs=8)
    reward = ProgressReward(RewardSpec(mode="delta", gamma=0.99), num_envs=8)
    stream.reset("fold the towel")
    out = progress_rewards(stream, frames, reward=reward)     # in a custom loop, once per env step
    out["reward"], out["progress"], out["stage"], out["stage_probs"], out["success"]

Modes (`RewardSpec.mode`), for frame t of an episode with progress p_t in [0, 1]:
    "progress"  r_t = p_t, the dense reward.
    "delta"     r_t = gamma * p_t - p_{t-1}: potential-based shaping with potential Phi = progress
                (Ng et al. 1999), which leaves the optimal policy of the task's own reward unchanged.
                The first frame of an episode (frame 0, the one after reset) has no predecessor: its
                delta is 0 and its progress is the potential the next delta starts from. Over an episode
                the deltas sum to p_T - p_0 + (gamma - 1) * (p_1 + ... + p_T) (with gamma = 1: p_T - p_0).
                The last frame's potential is not zeroed at termination.
    "success"   r_t = 1.0 while success holds, else 0.0. Success holds once progress has been at or
                above `threshold` for `steps` consecutive frames (k-step hysteresis: a single spike
                does not fire it); a frame below the threshold ends it and starts the count again.
Every mode also reports the others (`delta`, `success`, the count of frames above the threshold), so a
logger sees all of them whichever one is the reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["REWARD_MODES", "ProgressReward", "RewardSpec", "progress_rewards"]

REWARD_MODES = ("progress", "delta", "success")


@dataclass(frozen=True)
class RewardSpec:
    """Which reward to read from progress (see the module docstring)."""

    mode: str = "progress"  # "progress" | "delta" | "success"
    gamma: float = 0.99  # the RL discount of the delta (potential-based shaping)
    threshold: float = 0.9  # success: progress at or above this ...
    steps: int = 5  # ... for this many consecutive frames

    def __post_init__(self) -> None:
        if self.mode not in REWARD_MODES:
            raise ValueError(f"mode should be one of {list(REWARD_MODES)}, but got mode={self.mode!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma should be in [0, 1], but got gamma={self.gamma}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold should be in [0, 1] (progress), but got threshold={self.threshold}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps should be a positive integer value, but got steps={self.steps!r}")


class ProgressReward:
    """Per-environment reward state (the previous potential, the count above the threshold).

    `update(progress, first)` takes the progress of one frame per environment (or of `env_ids`) and a
    mask of the rows that are the first frame of an episode, and returns float32 / bool arrays:
    {"reward", "progress", "delta", "success", "above"}.
    """

    def __init__(self, spec: RewardSpec | str = "progress", *, num_envs: int = 1, **options: Any):
        self.spec = RewardSpec(spec, **options) if isinstance(spec, str) else spec
        if options and not isinstance(spec, str):
            raise ValueError(f"give the options {sorted(options)} in the RewardSpec, or a mode string")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs should be a positive integer value, but got num_envs={num_envs!r}")
        self.num_envs = num_envs
        self._previous = np.zeros(num_envs, dtype=np.float64)
        self._above = np.zeros(num_envs, dtype=np.int64)

    def update(self, progress: Any, first: Any = False, env_ids: Any = None) -> dict[str, np.ndarray]:
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        p = np.asarray(progress, dtype=np.float64).reshape(-1)
        if p.shape != ids.shape:
            raise ValueError(
                f"progress should hold one value per environment ({ids.size}), but got shape "
                f"{np.shape(progress)}; num_envs={self.num_envs}"
            )
        first = np.broadcast_to(np.asarray(first, dtype=bool), ids.shape)
        spec = self.spec
        delta = np.where(first, 0.0, spec.gamma * p - self._previous[ids])
        above = np.where(p >= spec.threshold, np.where(first, 0, self._above[ids]) + 1, 0)
        self._previous[ids], self._above[ids] = p, above
        success = above >= spec.steps
        reward = {"progress": p, "delta": delta, "success": success.astype(np.float64)}[spec.mode]
        return {
            "reward": reward.astype(np.float32),
            "progress": p.astype(np.float32),
            "delta": delta.astype(np.float32),
            "success": success,
            "above": above,
        }


def progress_rewards(
    stream,
    frames: Any = None,
    *,
    state: Any = None,
    features: Any = None,
    reward: ProgressReward | None = None,
    env_ids: Any = None,
) -> dict[str, np.ndarray]:
    """One step of a custom loop: score `frames` (raw, through the stream's encoder) or `features`
    (pre-computed, `step_features`) and return {"progress", "stage", "stage_probs", "frame_index"}, plus
    `reward.update(...)`'s arrays when a `ProgressReward` is given (frame 0 after a reset is its first
    frame). Call `stream.reset(task, env_ids)` whenever an episode starts."""
    if (frames is None) == (features is None):
        raise ValueError("pass exactly one of frames (raw RGB, encoded by the stream) or features")
    if features is None:
        stream.step(frames, state, env_ids=env_ids)
    else:
        stream.step_features(features, state, env_ids=env_ids)
    out = stream.last
    result = {
        "progress": out.progress,
        "stage": out.stage,
        "stage_probs": out.stage_probs,
        "frame_index": out.frame_index,
    }
    if reward is not None:
        result |= reward.update(out.progress, first=out.frame_index == 0, env_ids=out.env_ids)
    return result
