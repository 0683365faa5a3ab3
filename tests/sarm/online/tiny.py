"""Shared by the online tests: a tiny (untrained) SARM over 8-d pixel features and a real gymnasium Env."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from sarm import SARM, SARMConfig
from sarm.features.encoders import PixelEncoder

TASK = "reach the light"


def tiny_model(**overrides) -> SARM:
    """Past window of 3 slots spaced by 2 frames, two stages, state statistics for 2-d state."""
    settings = {
        "image_dim": 8, "text_dim": 8, "hidden_dim": 16, "num_layers": 1, "num_heads": 2,
        "n_obs_steps": 2, "frame_gap": 2, "max_state_dim": 4, "state_mean": [0.5, 0.0],
        "state_std": [0.25, 1.0],
        "schemas": {"sparse": {"*": {"names": ["a", "b"], "proportions": [0.4, 0.6]}}},
    } | overrides  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SARM(SARMConfig(**settings)).eval()


def encoder() -> PixelEncoder:
    return PixelEncoder(8)


def ramp_env_class():
    """A gymnasium Env (built lazily: gymnasium is optional) whose frame brightens each step."""
    import gymnasium as gym

    class Ramp(gym.Env):
        metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

        def __init__(self, length: int = 5, render_mode: str | None = "rgb_array", shift: int = 0):
            self.length, self.render_mode, self.shift = length, render_mode, shift
            self.observation_space = gym.spaces.Dict(
                {
                    "pixels": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8),
                    "state": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
                }
            )
            self.action_space = gym.spaces.Discrete(2)
            self.t = 0

        def _obs(self):
            pixels = np.zeros((16, 16, 3), np.uint8)
            pixels[..., 0] = min(255, 20 * self.t + self.shift)
            pixels[: self.t + 1, :, 1] = 200
            return {"pixels": pixels, "state": np.array([self.t / self.length, 1.0], np.float32)}

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def step(self, action):
            self.t += 1
            return self._obs(), float(action), self.t >= self.length, False, {"t": self.t}

        def render(self):
            return self._obs()["pixels"]

    return Ramp
