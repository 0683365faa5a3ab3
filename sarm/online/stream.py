"""`ProgressStream`: a causal SARM scored one frame at a time, for RL (an online reward).

    stream = ProgressStream(model, PixelEncoder(32), num_envs=4)     # or load_encoder("clip:ViT-B-32/openai")
    stream.reset("fold the towel")                                   # every environment starts an episode
    progress = stream.step(frames)            # uint8 (4, H, W, 3) -> float32 (4,): progress of this frame
    stream.last.stage, stream.last.stage_probs                      # (4,) argmax stage, (4, K) probabilities
    stream.reset("fold the towel", env_ids=[2])                     # env 2 alone starts a new episode

Dimension letters: n environments, c cameras, e feature width, s state width, w window slots (k + 1).

Exactly offline `sarm progress`, frame by frame. Frame t of an episode is scored on the window that
`sarm.training.windows.window_frames` gives offline in the "past" mode (called here on the local frame
numbers 0..t, so both share one rule): slot 0 is the episode's first frame; slots 1..k end at t, spaced by
the model's `frame_gap` g once `t >= k * g`, and evenly between frame 0 and t before that (frame 0 itself
has the window [0, 0, ..., 0]). Progress is read at the window's last slot (`config.current_slot`), as
offline. The stream therefore keeps, per environment, the first frame's features and a ring of the last
`k * g + 1` frames' features (which holds every frame so far while t <= k * g): memory is bounded, each
frame is encoded once, and all environments are scored in one batched forward pass. The window has no
future frame in it, so the "centered" window (LeRobot's, frames after t) cannot stream: such a model is
refused (train with `window="past"`, the default).

Inputs are those offline scoring uses: image features from the same encoder (`step`, or pre-computed
with `step_features`, shaped like one frame of the feature cache), the task's text feature (from the
encoder, or from a feature cache's texts), and the raw robot state normalised with the model's saved
statistics (`config.normalize_state`). Progress equals `compute_progress` on the same frames to float
rounding (tests/sarm/online/test_equality.py); a float16 feature cache rounds features that `step`
keeps in float32, so compare `step` with a float32 cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sarm.features.encoders import Encoder
from sarm.model.network import SARM
from sarm.training.windows import window_frames

__all__ = ["ProgressStream", "StreamOutput"]


@dataclass(frozen=True)
class StreamOutput:
    """What one `step` gives for the environments it scored (numpy, on the CPU)."""

    progress: np.ndarray  # float32 (n,) normalised progress of this frame
    stage: np.ndarray  # int64 (n,) argmax stage
    stage_probs: np.ndarray  # float32 (n, K) stage probabilities
    frame_index: np.ndarray  # int64 (n,) the frame's number in its episode (0 = the first after reset)
    env_ids: np.ndarray  # int64 (n,) the environments these rows belong to


class ProgressStream:
    """Streams a SARM over `num_envs` environments one frame at a time (see the module docstring).

    Args:
        model: a SARM trained with `window="past"` (the default); it is moved to `device`.
        encoder: turns raw frames into features for `step` (the encoder the model was trained on);
            None: only `step_features` works.
        head: the head whose progress is read ("sparse" or "dense").
        num_envs: environments scored together.
        device: where features are kept and the model runs (default: the model's device).
        text_features: where task text features come from: a `FeatureCache` (its encoded texts), or a
            mapping task -> (text_dim,) feature; default: `encoder.encode_texts`.
        soft: read progress as the expectation over stages (as `compute_progress(soft=True)`).
        allow_other_encoder: use an encoder other than the one the model records (refused by default).
    """

    def __init__(
        self,
        model: SARM,
        encoder: Encoder | None = None,
        *,
        head: str = "sparse",
        num_envs: int = 1,
        device: str | torch.device | None = None,
        text_features: Any = None,
        soft: bool = False,
        allow_other_encoder: bool = False,
    ):
        config = model.config
        if config.window != "past":
            raise ValueError(
                f"ProgressStream needs a model trained with window='past', but this one has "
                f"window={config.window!r}: its window shows frames after t, which an online stream has not "
                "seen yet; train one with `sarm train --window past` (SARMConfig(window='past'), the default)"
            )
        config.check_head(head)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs should be a positive integer value, but got num_envs={num_envs!r}")
        if encoder is not None and not allow_other_encoder:
            _check_encoder(config.encoder, encoder)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)
        self.encoder, self.head, self.num_envs, self.soft = encoder, head, num_envs, soft
        self._texts_from = text_features
        k, g = config.n_obs_steps, config.frame_gap
        self.ring_size = k * g + 1  # frames t - k*g .. t; while t <= k*g that is every frame so far
        cams, dim = config.num_cameras, config.image_dim
        self._ring = torch.zeros(num_envs, self.ring_size, cams, dim, device=self.device)  # (n, r, c, e)
        self._first = torch.zeros(num_envs, cams, dim, device=self.device)  # (n, c, e) frame 0
        self._ring_state: torch.Tensor | None = None  # (n, r, s), allocated at the first state
        self._first_state: torch.Tensor | None = None
        self._text = torch.zeros(num_envs, config.text_dim, device=self.device)
        self._tasks: list[str | None] = [None] * num_envs
        self._seen = np.full(num_envs, -1, dtype=np.int64)  # frames since reset; -1: never reset
        self.last: StreamOutput | None = None

    # ---- episodes ----------------------------------------------------------------------------------
    def reset(self, task: str | Sequence[str], env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Start a new episode of `task` (one text, or one per environment in `env_ids`) in `env_ids`
        (default: all); their next frame is frame 0. Other environments keep their history."""
        ids = self._env_ids(env_ids)
        tasks = [task] * len(ids) if isinstance(task, str) else list(task)
        if len(tasks) != len(ids) or not all(isinstance(t, str) for t in tasks):
            raise ValueError(
                f"task should be one text or one text per environment reset ({len(ids)}), but got {task!r}"
            )
        features = self._text_features(tasks).to(self.device)
        self._text[torch.as_tensor(ids, device=self.device)] = features
        for i, t in zip(ids.tolist(), tasks, strict=True):
            self._tasks[i] = t
        self._seen[ids] = 0

    @property
    def frame_index(self) -> np.ndarray:
        """int64 (num_envs,): the number the next frame of each environment will get (-1: never reset)."""
        return self._seen.copy()

    # ---- frames ------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, frames: Any, state: Any = None, *, env_ids: Any = None) -> np.ndarray:
        """Encode one new frame per environment and score it: uint8 `(n, H, W, 3)` (one camera) or
        `(n, c, H, W, 3)` RGB frames, raw state `(n, s)` -> float32 `(n,)` progress (also in `last`).
        `env_ids` scores only those environments (n = len(env_ids)); default all."""
        if self.encoder is None:
            raise ValueError(
                "this ProgressStream has no encoder, so it cannot encode frames; pass one "
                "(ProgressStream(model, encoder)) or give features to step_features"
            )
        ids = self._env_ids(env_ids)
        cams = self.model.config.num_cameras
        if not isinstance(frames, torch.Tensor):  # renderers return flipped views (negative strides)
            frames = np.ascontiguousarray(frames)
        frames = torch.as_tensor(frames)
        if frames.dim() == 4 and cams == 1:
            frames = frames[:, None]
        if frames.dim() != 5 or frames.shape[:2] != (len(ids), cams) or frames.shape[-1] != 3:
            raise ValueError(
                f"frames should be uint8 RGB ({len(ids)}, H, W, 3) for one camera or ({len(ids)}, {cams}, H, "
                f"W, 3) (environments, cameras), but got shape {tuple(frames.shape)}; render one frame per "
                "environment (channels last)"
            )
        n, c = frames.shape[:2]
        video = self.encoder.encode_images(frames.reshape(n * c, *frames.shape[2:])).reshape(n, c, -1)
        return self.step_features(video, state, env_ids=ids)

    @torch.no_grad()
    def step_features(self, video: Any, state: Any = None, *, env_ids: Any = None) -> np.ndarray:
        """Score one new frame per environment from features: `video` `(n, c, e)` (one frame of the
        feature cache per environment; `(n, e)` for one camera), raw `state` `(n, s)` -> float32 `(n,)`."""
        ids = self._env_ids(env_ids)
        never = ids[self._seen[ids] < 0]
        if never.size:
            raise RuntimeError(
                f"environment(s) {never.tolist()} were never reset: call stream.reset(task) (or "
                "reset(task, env_ids=[...])) before the first step"
            )
        config = self.model.config
        video = torch.as_tensor(video, device=self.device).float()
        if video.dim() == 2 and config.num_cameras == 1:
            video = video[:, None]
        expected = (len(ids), config.num_cameras, config.image_dim)
        if tuple(video.shape) != expected:
            raise ValueError(
                f"video should be {expected} (environments, cameras, image_dim) for this stream "
                f"(num_envs={self.num_envs}, env_ids={len(ids)}), but got {tuple(video.shape)}"
            )
        states = self._state(state, len(ids))
        t = self._seen[ids].copy()  # (n,) this frame's number in its episode
        rows = torch.as_tensor(ids, device=self.device)
        slot = torch.as_tensor(t % self.ring_size, device=self.device)
        self._ring[rows, slot] = video
        starts = torch.as_tensor(t == 0, device=self.device)
        self._first[rows] = torch.where(starts[:, None, None], video, self._first[rows])
        if states is not None:
            self._ring_state[rows, slot] = states
            self._first_state[rows] = torch.where(starts[:, None], states, self._first_state[rows])
        window = window_frames(
            t, 0, t + 1, mode="past", n_obs_steps=config.n_obs_steps, frame_gap=config.frame_gap
        )  # (n, w) local frame numbers, the offline rule
        where = torch.as_tensor(window % self.ring_size, device=self.device)
        clip = self._ring[rows[:, None], where]  # (n, w, c, e)
        clip[:, 0] = self._first[rows]
        clip_state = None
        if states is not None:
            clip_state = self._ring_state[rows[:, None], where]  # (n, w, s)
            clip_state[:, 0] = self._first_state[rows]
        pred = self.model.predict(
            self._text[rows],
            clip,
            clip_state,
            None,
            head=self.head,
            tasks=[self._tasks[i] for i in ids.tolist()],
            soft=self.soft,
        )
        self._seen[ids] = t + 1
        current = config.current_slot
        self.last = StreamOutput(
            progress=pred.progress[:, current].float().cpu().numpy(),
            stage=pred.stage[:, current].cpu().numpy().astype(np.int64),
            stage_probs=pred.stage_probs[:, current].float().cpu().numpy(),
            frame_index=t,
            env_ids=ids,
        )
        return self.last.progress

    # ---- helpers -----------------------------------------------------------------------------------
    def _env_ids(self, env_ids: Any) -> np.ndarray:
        if env_ids is None:
            return np.arange(self.num_envs, dtype=np.int64)
        ids = np.atleast_1d(np.asarray(env_ids))
        if ids.dtype == bool:  # a mask, as gymnasium's `reset_mask` / autoreset flags
            if ids.shape != (self.num_envs,):
                raise ValueError(f"an env_ids mask should have shape ({self.num_envs},), but got {ids.shape}")
            ids = np.flatnonzero(ids)
        ids = ids.astype(np.int64)
        if ids.ndim != 1 or ((ids < 0) | (ids >= self.num_envs)).any() or len(set(ids.tolist())) != ids.size:
            raise ValueError(
                f"env_ids should be distinct environment numbers in [0, {self.num_envs}), but got "
                f"{np.asarray(env_ids).tolist()}; this stream has num_envs={self.num_envs}"
            )
        return ids

    def _text_features(self, tasks: list[str]) -> torch.Tensor:
        source = self._texts_from
        if source is None and self.encoder is None:
            raise ValueError(
                "this ProgressStream has neither an encoder nor text_features, so it cannot encode the task "
                "text; pass ProgressStream(model, encoder) or text_features=<FeatureCache or {task: feature}>"
            )
        if source is None:
            out = self.encoder.encode_texts(tasks)
        elif hasattr(source, "text_features"):  # a FeatureCache: the texts it encoded
            out = source.text_features(tasks)
        elif isinstance(source, Mapping):
            missing = [t for t in tasks if t not in source]
            if missing:
                raise KeyError(f"text_features has no feature for task(s) {missing}; it has {sorted(source)}")
            out = torch.stack([torch.as_tensor(np.asarray(source[t], np.float32)).reshape(-1) for t in tasks])
        else:
            raise TypeError(
                f"text_features should be a FeatureCache or a mapping task -> feature, but got {type(source)}"
            )
        out = torch.as_tensor(out, dtype=torch.float32)
        if out.shape != (len(tasks), self.model.config.text_dim):
            raise ValueError(
                f"task text features should be ({len(tasks)}, {self.model.config.text_dim}) for this model, "
                f"but got {tuple(out.shape)}; use the encoder the model was trained on"
            )
        return out

    def _state(self, state: Any, n: int) -> torch.Tensor | None:
        """Raw `(n, s)` state -> normalised float32 on the device (the offline rule), or None."""
        config = self.model.config
        if state is None:
            if config.state_mean is not None or not config.num_cameras or self._ring_state is not None:
                raise ValueError(
                    "this model was trained with robot state (its config holds state statistics, or it is "
                    "state-only, or earlier steps gave state): pass state=(num_envs, s) raw robot state "
                    "to every step"
                )
            return None
        raw = state.detach().cpu().numpy() if isinstance(state, torch.Tensor) else np.asarray(state)
        if raw.ndim != 2 or raw.shape[0] != n or raw.shape[1] > config.max_state_dim:
            raise ValueError(
                f"state should be ({n}, s) raw robot state with s <= max_state_dim={config.max_state_dim}, "
                f"but got shape {raw.shape}"
            )
        states = torch.from_numpy(np.ascontiguousarray(config.normalize_state(raw))).to(self.device)
        if self._ring_state is None:
            self._ring_state = torch.zeros(self.num_envs, self.ring_size, raw.shape[1], device=self.device)
            self._first_state = torch.zeros(self.num_envs, raw.shape[1], device=self.device)
        elif self._ring_state.shape[-1] != raw.shape[1]:
            raise ValueError(
                f"state has {raw.shape[1]} dimensions, but earlier steps gave {self._ring_state.shape[-1]}"
            )
        return states


def _check_encoder(trained: dict | None, encoder: Encoder) -> None:
    """The encoder must be the one the model was trained on, when the model records it (as offline)."""
    if trained is None:
        return
    holds = json.loads(json.dumps(encoder.describe()))
    if json.loads(json.dumps(trained)) == holds:
        return
    keys = sorted(k for k in set(trained) | set(holds) if trained.get(k) != holds.get(k))
    raise ValueError(
        f"the model was trained on features of encoder `{trained.get('spec')}`, but the stream's encoder is "
        f"`{holds.get('spec')}` (they differ in {keys}); pass the model's encoder "
        f"(load_encoder({trained.get('spec')!r})), or allow_other_encoder=True to score with it anyway"
    )
