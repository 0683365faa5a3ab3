"""`SARMConfig`: every size and switch of a SARM model, with the reason for each default.

The defaults are the paper's (768 wide, 8 layers, 12 heads, 13 frame slots, CLIP ViT-B/32 features),
which are also LeRobot's. Two switches choose between LeRobot parity and the better behaviour:

    attention  "lerobot": stream-major triangular mask, as LeRobot trains it (state and language tokens
                          of every slot see the camera tokens of all later slots: not causal in time);
               "causal":  slot t attends only to slots <= t, so a past-only window gives a reward that
                          can be computed online.
    window     "centered": t - k*gap .. t + k*gap, clamped to the episode (LeRobot; frame t at slot k);
               "past":     the episode's first frame, then n_obs_steps frames ending at t (the paper's
                          code; frame t at the last observation slot).

Stage schemas (names and temporal proportions) are stored per head and per task so a saved model
carries everything needed to turn its outputs into normalised progress.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarm.labels.schema import StageSchema, TaskSchemas

__all__ = ["ATTENTION_MODES", "HEADS", "WINDOW_MODES", "SARMConfig"]

HEADS = ("sparse", "dense")
ATTENTION_MODES = ("lerobot", "causal")
WINDOW_MODES = ("centered", "past")


def _single_stage() -> dict[str, dict[str, dict[str, list]]]:
    return {"sparse": {"*": StageSchema.single().to_dict()}}


@dataclass
class SARMConfig:
    """Sizes and switches of a SARM model. Contradictory settings raise `ValueError`."""

    # inputs
    image_dim: int = 512  # width of one camera's frame feature (CLIP ViT-B/32 image embedding)
    text_dim: int = 512  # width of the task text feature (CLIP ViT-B/32 text embedding)
    num_cameras: int = 1  # camera streams per frame slot; 0 = state-only (text + robot state tokens)
    max_state_dim: int = 32  # robot state is zero-padded to this width (LeRobot's rule)
    # trunk: two transformers (stage, tau) of this size; the paper's and LeRobot's defaults
    hidden_dim: int = 768
    num_layers: int = 8
    num_heads: int = 12
    dropout: float = 0.1
    # temporal structure
    attention: str = "causal"  # "lerobot" (checkpoint parity) or "causal" (slot t sees slots <= t)
    window: str = "past"  # "past" (paper's code, online-ready) or "centered" (LeRobot)
    n_obs_steps: int = 8  # observation slots besides the anchor: 9 observed frames
    frame_gap: int = 30  # frames between observation slots (1 s at 30 fps)
    max_rewind_steps: int = 4  # extra slots for rewind augmentation: 1 + 8 + 4 = 13 slots
    # stages: head ("sparse" | "dense") -> task text ("*" = any task) -> {"names", "proportions"}
    schemas: dict[str, dict[str, dict[str, list]]] = field(default_factory=_single_stage)
    # robot-state normalisation the data pipeline applies before the model, (x - mean) / (std + 1e-8)
    # (LeRobot's MEAN_STD rule); None = the state is passed as it is. Saved with the model so a
    # checkpoint scores new data exactly as it was trained.
    state_mean: list[float] | None = None
    state_std: list[float] | None = None
    # the feature cache's encoder description (spec, dims, preprocessing) this model was trained on;
    # `compute_progress` refuses a cache made with another encoder. None = not recorded (old and
    # LeRobot checkpoints): no check.
    encoder: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in (
            "image_dim",
            "text_dim",
            "hidden_dim",
            "num_layers",
            "num_heads",
            "frame_gap",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} should be a positive integer, but got {name}={value!r}")
        for name in ("num_cameras", "max_state_dim", "n_obs_steps", "max_rewind_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} should be a non-negative integer, but got {name}={value!r}")
        if self.num_cameras == 0 and self.max_state_dim == 0:
            raise ValueError(
                "a state-only model (num_cameras=0) needs robot state, but got max_state_dim=0; "
                "give max_state_dim > 0 or at least one camera"
            )
        if self.encoder is not None and not (isinstance(self.encoder, dict) and "spec" in self.encoder):
            raise ValueError(
                f"encoder should be a feature cache manifest's encoder description (a dict with 'spec'), "
                f"but got encoder={self.encoder!r}"
            )
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}; "
                "choose sizes such that hidden_dim % num_heads == 0"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout should be in [0, 1), but got dropout={self.dropout}")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(
                f"attention should be one of {list(ATTENTION_MODES)}, but got {self.attention!r}"
            )
        if self.window not in WINDOW_MODES:
            raise ValueError(f"window should be one of {list(WINDOW_MODES)}, but got {self.window!r}")
        if self.window == "centered" and self.n_obs_steps % 2:
            raise ValueError(
                f"window='centered' needs an even n_obs_steps (frames t-k*gap .. t+k*gap), "
                f"but got n_obs_steps={self.n_obs_steps}"
            )
        if self.window == "past" and self.n_obs_steps < 1:
            raise ValueError(
                "window='past' needs n_obs_steps >= 1 (slot 0 is the episode's first frame, the anchor "
                f"follows), but got n_obs_steps={self.n_obs_steps}"
            )
        if not self.schemas or "sparse" not in self.schemas:
            raise ValueError(
                "schemas should hold at least the 'sparse' head, e.g. "
                "{'sparse': {'*': {'names': ['task'], 'proportions': [1.0]}}}"
            )
        unknown = sorted(set(self.schemas) - set(HEADS))
        if unknown:
            raise ValueError(f"schemas has unknown heads {unknown}; heads are {list(HEADS)}")
        self._check_state_stats()
        # normalise to plain JSON-able dicts, validating every schema on the way
        self.schemas = {
            head: TaskSchemas.from_dict(self.schemas[head]).to_dict()
            for head in HEADS
            if head in self.schemas
        }

    def _check_state_stats(self) -> None:
        if (self.state_mean is None) != (self.state_std is None):
            raise ValueError("state_mean and state_std should be given together (or both left None)")
        if self.state_mean is None:
            return
        mean = np.asarray(self.state_mean, dtype=np.float64)
        std = np.asarray(self.state_std, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape or mean.size > self.max_state_dim:
            raise ValueError(
                f"state_mean and state_std should be 1-D lists of the same length <= max_state_dim="
                f"{self.max_state_dim}, but got lengths {mean.size} and {std.size}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()):
            raise ValueError("state_mean and state_std should be finite, with std >= 0")
        self.state_mean, self.state_std = mean.tolist(), std.tolist()

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """`(..., s)` raw robot state -> float32 `(state - mean) / (std + 1e-8)`; unchanged (as
        float32) when the config holds no statistics."""
        state = np.asarray(state, dtype=np.float32)
        if self.state_mean is None:
            return state
        if state.shape[-1] != len(self.state_mean):
            raise ValueError(
                f"state has {state.shape[-1]} dimensions but this model's state_mean has "
                f"{len(self.state_mean)}; pass the same state columns the model was trained on"
            )
        mean = np.asarray(self.state_mean, dtype=np.float32)
        return (state - mean) / (np.asarray(self.state_std, dtype=np.float32) + np.float32(1e-8))

    # ---- derived facts -------------------------------------------------------------------------
    @property
    def heads(self) -> tuple[str, ...]:
        """The heads this model predicts, "sparse" first."""
        return tuple(self.schemas)

    @property
    def num_slots(self) -> int:
        """Frame slots of one window: anchor + observations + rewind (13 by default)."""
        return 1 + self.n_obs_steps + self.max_rewind_steps

    @property
    def current_slot(self) -> int:
        """The slot that shows the anchor frame t, where progress of frame t is read."""
        return self.n_obs_steps // 2 if self.window == "centered" else self.n_obs_steps

    def check_head(self, head: str) -> None:
        if head not in self.schemas:
            raise ValueError(f"head {head!r} is not in this model; its heads are {list(self.heads)}")

    def task_schemas(self, head: str) -> TaskSchemas:
        self.check_head(head)
        return TaskSchemas.from_dict(self.schemas[head])

    def num_stages(self, head: str) -> int:
        """Stage classes of a head: the largest stage count over its tasks."""
        return self.task_schemas(head).max_stages

    # ---- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SARMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SARMConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SARMConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"`{path}` is not a JSON SARMConfig ({error}); re-save the config") from error
        if not isinstance(data, dict):
            raise ValueError(f"`{path}` holds a JSON {type(data).__name__}, not a SARMConfig object")
        return cls.from_dict(data)
