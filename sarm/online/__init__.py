"""SARM as an online reward: a causal model streamed one frame at a time, and its RL adapters.

`ProgressStream` (stream.py) scores each new frame of every environment exactly as offline
`sarm progress` would; `ProgressReward` and `progress_rewards` (rewards.py) turn progress into rewards
(dense progress, potential-based deltas, success with hysteresis); `ProgressRewardWrapper` (gym.py)
wraps a gymnasium Env or VectorEnv. gymnasium is imported only when the wrapper is used.
"""

from typing import Any

from sarm.online.rewards import REWARD_MODES, ProgressReward, RewardSpec, progress_rewards
from sarm.online.stream import ProgressStream, StreamOutput

__all__ = [
    "REWARD_MODES",
    "ProgressReward",
    "ProgressRewardWrapper",
    "ProgressStream",
    "RewardSpec",
    "StreamOutput",
    "progress_rewards",
]


def __getattr__(name: str) -> Any:
    if name == "ProgressRewardWrapper":  # needs gymnasium: imported on first use, not with sarm.online
        from sarm.online.gym import ProgressRewardWrapper

        return ProgressRewardWrapper
    raise AttributeError(f"module 'sarm.online' has no attribute {name!r}")
