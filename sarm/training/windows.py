"""Frame windows over per-frame features: which frames a SARM sample shows, and the dataset that gathers them.

    ds = WindowDataset(features, episode_lengths=lengths, targets={"sparse": y}, tasks=task_per_episode)
    loader = DataLoader(ds, batch_size=32, sampler=..., collate_fn=RewindCollate(task_features))

A sample is anchored at a global frame t of one episode `[episode_start, episode_end)` and shows
`n_obs_steps + 1` observation frames (`window_frames`), followed by up to `max_rewind_steps` rewind
frames stepping backwards from t (`rewind_frames`); `RewindCollate` decides per sample how
many rewind slots are used. Everything here is index arithmetic on numpy arrays: the dataset gathers
feature rows with one fancy-indexing call per sample and never touches videos.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sarm.model.config import WINDOW_MODES as _WINDOW_MODES

__all__ = ["WindowDataset", "current_slot", "rewind_frames", "split_episodes", "window_frames"]

_CHECK_CHUNK = 1 << 24  # elements per finiteness check, so a memmap is never loaded whole


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = not isinstance(value, bool) and isinstance(value, int | np.integer)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} should be a {kind} integer value, but got {name}={value!r}")
    return int(value)


def _check_window_args(mode: str, n_obs_steps: int, frame_gap: int) -> None:
    if mode not in _WINDOW_MODES:
        raise ValueError(f"mode should be one of {list(_WINDOW_MODES)}, but got mode={mode!r}")
    _positive_int("frame_gap", frame_gap)
    if mode == "centered":
        _positive_int("n_obs_steps", n_obs_steps, allow_zero=True)
        if n_obs_steps % 2:
            raise ValueError(
                f"mode='centered' needs an even n_obs_steps (frames t - k*gap .. t + k*gap with "
                f"k = n_obs_steps // 2), but got n_obs_steps={n_obs_steps}; use an even value or mode='past'"
            )
    else:  # slot 0 is the episode's first frame, so at least one more slot is needed to show t
        _positive_int("n_obs_steps", n_obs_steps)


def current_slot(mode: str, n_obs_steps: int) -> int:
    """The window slot that shows the anchor frame t: `n_obs_steps // 2` (centered), `n_obs_steps` (past)."""
    _check_window_args(mode, n_obs_steps, 1)
    return n_obs_steps // 2 if mode == "centered" else n_obs_steps


def _as_frames(frames: Any, episode_start: Any, episode_end: Any | None) -> tuple[np.ndarray, ...]:
    t = np.atleast_1d(np.asarray(frames)).astype(np.int64, copy=False)
    if t.ndim != 1:
        raise ValueError(f"frames should be a scalar or a 1-D array, but got shape {tuple(t.shape)}")
    start = np.broadcast_to(np.asarray(episode_start, dtype=np.int64), t.shape)
    end = None if episode_end is None else np.broadcast_to(np.asarray(episode_end, dtype=np.int64), t.shape)
    outside = t < start if end is None else (t < start) | (t >= end)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        bounds = f"[{start[i]}, {end[i]})" if end is not None else f"[{start[i]}, ...)"
        raise ValueError(
            f"frame {t[i]} (position {i}) is outside its episode {bounds}; anchors must lie inside "
            "their episode (episode_start inclusive, episode_end exclusive)"
        )
    return t, start, end


def window_frames(
    frames: Any,
    episode_start: Any,
    episode_end: Any,
    *,
    mode: str = "centered",
    n_obs_steps: int = 8,
    frame_gap: int = 30,
) -> np.ndarray:
    """Global frame indices of the observation slots for M anchor frames: int64 `(M, n_obs_steps + 1)`.

    Args:
        frames: anchor frames t, global indices, scalar or `(M,)`.
        episode_start, episode_end: each anchor's episode bounds (start inclusive, end exclusive),
            scalars or `(M,)`. Every anchor must satisfy `episode_start <= t < episode_end`.
        mode: "centered" or "past" (see below).
        n_obs_steps: observation slots besides one (the window has `n_obs_steps + 1` slots).
        frame_gap: frames between consecutive slots g.

    Modes (k = n_obs_steps, g = frame_gap, s = episode_start, e = episode_end):
        * "centered" (LeRobot): slot j shows `t + g * (j - k // 2)` for j = 0..k, clamped to
          `[s, e - 1]` (LeRobot's copy padding at the episode boundary). The anchor is slot `k // 2`.
          k must be even (LeRobot silently mis-sizes its targets for odd k; here it is a ValueError).
        * "past" (the paper's code, opensarm): slot 0 shows the episode's first frame s; slots 1..k
          show k frames ending at t, so slot k is t. With enough history (`t - s >= k * g`) slot j is
          `t - (k - j) * g`; otherwise slot j is `s + rint((t - s) * j / k)`, evenly spaced between s
          and t (rounded half to even, like Python's `round` in opensarm). Both rules give a
          non-decreasing window whose last slot is t; the window never looks past t, so a model
          with temporally causal attention can score frame t online.
    """
    _check_window_args(mode, n_obs_steps, frame_gap)
    return _windows(*_as_frames(frames, episode_start, episode_end), mode, n_obs_steps, frame_gap)


def _windows(
    t: np.ndarray, start: np.ndarray, end: np.ndarray, mode: str, n_obs_steps: int, frame_gap: int
) -> np.ndarray:
    """`window_frames` on validated int64 `(M,)` arrays."""
    slots = np.arange(n_obs_steps + 1, dtype=np.int64)
    if mode == "centered":
        out = t[:, None] + frame_gap * (slots - n_obs_steps // 2)[None, :]
        return np.clip(out, start[:, None], (end - 1)[:, None])
    history = t - start
    regular = t[:, None] - frame_gap * (n_obs_steps - slots)[None, :]
    even = start[:, None] + np.rint(history[:, None] * (slots / n_obs_steps)[None, :]).astype(np.int64)
    out = np.where((history >= n_obs_steps * frame_gap)[:, None], regular, even)
    out[:, 0] = start
    return out


def rewind_frames(
    frames: Any, episode_start: Any, *, max_rewind_steps: int = 4, frame_gap: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """The frames rewind slots show, stepping backwards from each anchor t: `t - g, t - 2g, ...`.

    Returns `(rewind, available)`: int64 `(M, max_rewind_steps)` frame indices and int64 `(M,)`
    counts, `available = min(max_rewind_steps, (t - episode_start) // g)`. Entries past `available`
    would fall before the episode and are clamped to `episode_start` (they are never shown:
    `RewindCollate` uses at most `available` of them). Rewind slot i shows frame `rewind[:, i]` and
    must carry that frame's label; LeRobot shows `t - 30 .. t - 120` but labels them with frames
    `t - 150 .. t - 240`, which is the bug this layout makes impossible.
    """
    _positive_int("max_rewind_steps", max_rewind_steps, allow_zero=True)
    _positive_int("frame_gap", frame_gap)
    t, start, _ = _as_frames(frames, episode_start, None)
    return _rewinds(t, start, max_rewind_steps, frame_gap)


def _rewinds(
    t: np.ndarray, start: np.ndarray, max_rewind_steps: int, frame_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """`rewind_frames` on validated int64 `(M,)` arrays."""
    steps = np.arange(1, max_rewind_steps + 1, dtype=np.int64)
    rewind = np.maximum(t[:, None] - frame_gap * steps[None, :], start[:, None])
    available = np.minimum((t - start) // frame_gap, max_rewind_steps)
    return rewind, available


def split_episodes(
    num_episodes: int, eval_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train / eval split of episode positions `0..num_episodes-1`.

    `round(num_episodes * eval_fraction)` episodes, chosen by `np.random.default_rng(seed)`, go to
    eval, clamped so that both parts get at least one episode when `num_episodes >= 2` (a single
    episode goes to train). Returns two sorted int64 arrays.
    """
    num_episodes = _positive_int("num_episodes", num_episodes)
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction should be in (0, 1), but got eval_fraction={eval_fraction}")
    if num_episodes == 1:
        return np.zeros(1, np.int64), np.zeros(0, np.int64)
    n_eval = min(max(round(num_episodes * eval_fraction), 1), num_episodes - 1)
    order = np.random.default_rng(seed).permutation(num_episodes)
    return np.sort(order[n_eval:]).astype(np.int64), np.sort(order[:n_eval]).astype(np.int64)


def _per_frame(name: str, array: Any, num_frames: int) -> np.ndarray | torch.Tensor:
    if isinstance(array, torch.Tensor):
        array = array.detach()
        if not array.is_floating_point():
            raise TypeError(f"{name} should hold floating-point values, but got dtype {array.dtype}")
    else:
        if not _is_lazy(array):
            array = np.asarray(array)  # keeps np.memmap a memmap view, no copy
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{name} should hold floating-point values, but got dtype {array.dtype}")
    if array.shape[0] != num_frames:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but episode_lengths sums to {num_frames} frames; "
            "pass one row per frame, episodes stored contiguously in the order of episode_lengths"
        )
    return array


def _is_lazy(array: Any) -> bool:
    """An array-like that gathers rows on demand (e.g. `FeatureCache.images`): has shape, dtype and
    `__getitem__(int64 rows)`, but is not an ndarray (np.asarray would load it whole)."""
    return (
        not isinstance(array, np.ndarray)
        and all(hasattr(array, name) for name in ("shape", "dtype", "ndim", "__getitem__"))
        and not hasattr(array, "__array__")
    )


def _first_non_finite(array: np.ndarray, episode_ends: np.ndarray, selected: np.ndarray) -> int | None:
    """First non-finite frame of a selected episode (other episodes are never shown), or None."""
    for lo in range(0, array.shape[0], _CHECK_CHUNK):
        bad = lo + np.flatnonzero(~np.isfinite(array[lo : lo + _CHECK_CHUNK]))
        bad = bad[selected[np.searchsorted(episode_ends, bad, side="right")]]
        if bad.size:
            return int(bad[0])
    return None


def _gather(array: np.ndarray | torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array[torch.from_numpy(rows)].to(torch.float32)
    return torch.from_numpy(np.asarray(array[rows], dtype=np.float32))


class WindowDataset(Dataset):
    """Training / evaluation windows over per-frame features, one sample per anchor frame.

    Args:
        features: `(N, C, E)` per-frame camera features, or `(N, E)` for one camera (numpy array,
            `np.memmap` or tensor, any float dtype; rows are gathered per sample, never copied whole).
        episode_lengths: frames per episode, in storage order (episode i is the contiguous block of
            rows after episodes 0..i-1); sums to N.
        targets: head -> `(N,)` per-frame targets y = stage + tau, finite in the selected `episodes`
            (the others are never shown). May be empty (inference).
        tasks: one task text per episode.
        state: `(N, S)` robot state per frame, or None (samples then carry `(n_obs_steps + 1, 0)`).
        episodes: episode positions to draw anchors from (e.g. one side of `split_episodes`), in the
            order anchors are listed; default all.
        anchor_stride: anchors are frames 0, k, 2k, ... of each episode (k = anchor_stride).
        mode, n_obs_steps, frame_gap: the observation window, see `window_frames`.
        max_rewind_steps: rewind candidates per sample, see `rewind_frames`.
        labels: the label policies that made `targets` (e.g. {"order": "error", "mistakes": "hold"}),
            kept as `self.labels` for `sarm.training.resume` to compare when a run resumes.

    Item i is a dict: "video" `(n_obs_steps + 1, C, E)`, "state" `(n_obs_steps + 1, S)`, "targets"
    {head: `(n_obs_steps + 1,)`}, "rewind_video" `(R, C, E)`, "rewind_state" `(R, S)`,
    "rewind_targets" {head: `(R,)`}, "rewind_available" int, "task" str, "key" int (= i), "frame"
    int (global anchor frame), "episode" int (episode position). Tensors are float32; R =
    max_rewind_steps. Rewind rows always show the frames `rewind_frames` names, and their targets are
    those same frames' targets.
    """

    def __init__(
        self,
        features: np.ndarray | torch.Tensor,
        *,
        episode_lengths: Sequence[int] | np.ndarray,
        targets: Mapping[str, np.ndarray | torch.Tensor] | None = None,
        tasks: Sequence[str],
        state: np.ndarray | torch.Tensor | None = None,
        episodes: Sequence[int] | np.ndarray | None = None,
        anchor_stride: int = 1,
        mode: str = "centered",
        n_obs_steps: int = 8,
        frame_gap: int = 30,
        max_rewind_steps: int = 4,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        self.labels = dict(labels or {})  # what made the targets (label policies); a resume compares it
        _check_window_args(mode, n_obs_steps, frame_gap)
        self.mode, self.n_obs_steps, self.frame_gap = mode, int(n_obs_steps), int(frame_gap)
        self.max_rewind_steps = _positive_int("max_rewind_steps", max_rewind_steps, allow_zero=True)
        self.anchor_stride = _positive_int("anchor_stride", anchor_stride)

        lengths = np.asarray(episode_lengths)
        if lengths.ndim != 1 or lengths.size == 0 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(
                f"episode_lengths should be a non-empty 1-D integer array, but got shape "
                f"{tuple(lengths.shape)} and dtype {lengths.dtype}"
            )
        if (lengths < 0).any():
            i = int(np.flatnonzero(lengths < 0)[0])
            raise ValueError(
                f"episode_lengths should be non-negative, but episode {i} has length {lengths[i]}"
            )
        lengths = lengths.astype(np.int64)
        ends = np.cumsum(lengths)
        self.episode_lengths, self.episode_starts, self.episode_ends = lengths, ends - lengths, ends
        num_frames = int(ends[-1])

        if features.ndim == 2:
            features = features[:, None, :]  # one camera: (N, E) -> (N, 1, E), a view
        if features.ndim != 3:
            raise ValueError(f"features should be (N, C, E) or (N, E), but got shape {tuple(features.shape)}")
        self.features = _per_frame("features", features, num_frames)
        self.state = None if state is None else _per_frame("state", state, num_frames)
        if self.state is not None and self.state.ndim != 2:
            raise ValueError(f"state should be (N, S), but got shape {tuple(self.state.shape)}")

        positions = np.arange(len(lengths), dtype=np.int64) if episodes is None else np.asarray(episodes)
        if positions.ndim != 1 or (positions.size and not np.issubdtype(positions.dtype, np.integer)):
            raise ValueError(f"episodes should be a 1-D sequence of episode positions, but got {episodes!r}")
        positions = positions.astype(np.int64)
        if ((positions < 0) | (positions >= len(lengths))).any():
            bad = positions[(positions < 0) | (positions >= len(lengths))]
            raise ValueError(f"episodes {bad[:8].tolist()} are out of range [0, {len(lengths)})")
        if np.unique(positions).size != positions.size:
            raise ValueError("episodes should not repeat an episode position")
        self.episodes = positions
        selected = np.zeros(len(lengths), bool)
        selected[positions] = True

        self.targets: dict[str, np.ndarray] = {}
        for head, y in (targets or {}).items():
            y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
            y = _per_frame(f"targets[{head!r}]", y, num_frames)
            if y.ndim != 1:
                raise ValueError(f"targets[{head!r}] should be (N,), but got shape {tuple(y.shape)}")
            bad = _first_non_finite(y, ends, selected)
            if bad is not None:
                episode = int(np.searchsorted(ends, bad, side="right"))
                raise ValueError(
                    f"targets[{head!r}] is {y[bad]} at frame {bad} (episode {episode}); every target must "
                    "be finite: label the frame or leave the episode out with `episodes=`"
                )
            self.targets[head] = y

        if isinstance(tasks, str) or len(tasks) != len(lengths):
            got = "a single string" if isinstance(tasks, str) else f"{len(tasks)} tasks"
            raise ValueError(f"tasks should hold one task text per episode ({len(lengths)}), but got {got}")
        if not all(isinstance(task, str) for task in tasks):
            raise TypeError("tasks should be strings (one task text per episode)")
        self.tasks = list(tasks)

        counts = -(-lengths[positions] // self.anchor_stride)  # ceil: anchors per selected episode
        first = np.repeat(np.cumsum(counts) - counts, counts)
        offsets = (np.arange(int(counts.sum()), dtype=np.int64) - first) * self.anchor_stride
        self.anchors = np.repeat(self.episode_starts[positions], counts) + offsets

    @property
    def num_slots(self) -> int:
        """Slots of a collated sample: `1 + n_obs_steps + max_rewind_steps`."""
        return 1 + self.n_obs_steps + self.max_rewind_steps

    @property
    def current_slot(self) -> int:
        """The slot that shows the anchor frame."""
        return current_slot(self.mode, self.n_obs_steps)

    def __len__(self) -> int:
        return int(self.anchors.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {index} is out of range for a WindowDataset of {len(self)} anchors")
        i %= len(self)
        t = int(self.anchors[i])
        episode = int(np.searchsorted(self.episode_ends, t, side="right"))
        anchor, ep = self.anchors[i : i + 1], slice(episode, episode + 1)  # (1,) arrays: no re-validation
        start, end = self.episode_starts[ep], self.episode_ends[ep]
        window = _windows(anchor, start, end, self.mode, self.n_obs_steps, self.frame_gap)[0]
        rewind, available = _rewinds(anchor, start, self.max_rewind_steps, self.frame_gap)
        rows = np.concatenate([window, rewind[0]])  # one gather for observation and rewind slots
        n = window.shape[0]
        video = _gather(self.features, rows)
        state = torch.zeros(rows.shape[0], 0) if self.state is None else _gather(self.state, rows)
        targets = {
            head: torch.from_numpy(np.asarray(y[rows], dtype=np.float32)) for head, y in self.targets.items()
        }
        return {
            "video": video[:n],
            "state": state[:n],
            "targets": {head: y[:n] for head, y in targets.items()},
            "rewind_video": video[n:],
            "rewind_state": state[n:],
            "rewind_targets": {head: y[n:] for head, y in targets.items()},
            "rewind_available": int(available[0]),
            "task": self.tasks[episode],
            "key": i,
            "frame": t,
            "episode": episode,
        }
