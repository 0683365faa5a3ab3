"""`RABCEpisodeSampler`: RA-BC's weighted drop-in for LeRobot's `EpisodeAwareSampler` (sampler mode of
`integrations.lerobot`, which re-exports it; import it from there). It needs no `lerobot`: it only
mirrors `EpisodeAwareSampler`'s arguments and LeRobot's resume state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rabc import RABCWeightedSampler, RABCWeights

__all__ = ["RABCEpisodeSampler"]

log = logging.getLogger("integrations.lerobot")  # the integration's logger, as before this module split off


class RABCEpisodeSampler(RABCWeightedSampler):
    """A weighted drop-in for LeRobot's `EpisodeAwareSampler` (same positional arguments).

    Frames of the used episodes, less `drop_n_first_frames` / `drop_n_last_frames` at each end, are
    drawn with probability proportional to their RA-BC weight; all other dataset positions have
    weight 0. An epoch is `len(sampler)` draws (default: the number of eligible frames, like
    `EpisodeAwareSampler`), so LeRobot's `compute_sampler_state(step, len(sampler), batch_size,
    num_processes)` gives the resume state and `load_state_dict` accepts it.

    Epochs: every `__iter__` after the first is the next epoch (LeRobot's `cycle(dataloader)` never
    calls `set_epoch`). accelerate's prepared loader calls `set_epoch(pass)` with its pass count,
    which starts at 0 in every process: here `set_epoch(k)` means "k passes after the last
    `load_state_dict`" (after none, epoch k), so a resumed run continues the saved epoch and a
    fresh run is unchanged.

    Args:
        weights: `RABCWeights` (looked up by global frame index) or a 1-D array indexed by global
            frame index.
        dataset_from_indices, dataset_to_indices, episode_indices_to_use, drop_n_first_frames,
        drop_n_last_frames, seed, absolute_to_relative_idx: as in `EpisodeAwareSampler`.
        shuffle: must be True (a weighted draw has no unshuffled order); LeRobot passes True.
        missing: frames absent from the progress file: "error" or "fallback" (`fallback_weight`,
            counted in `num_missing`).
        num_samples: draws per epoch (default: the eligible frame count).
    """

    def __init__(
        self,
        weights: RABCWeights | np.ndarray,
        dataset_from_indices: Sequence[int],
        dataset_to_indices: Sequence[int],
        episode_indices_to_use: Sequence[int] | None = None,
        drop_n_first_frames: int = 0,
        drop_n_last_frames: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        absolute_to_relative_idx: dict[int, int] | None = None,
        *,
        missing: str = "error",
        num_samples: int | None = None,
    ) -> None:
        if not shuffle:
            raise ValueError(
                "RABCEpisodeSampler draws frames at random in proportion to their weight, so shuffle=False "
                "has no meaning; use LeRobot's EpisodeAwareSampler for an unshuffled pass"
            )
        absolute = _eligible_frames(
            dataset_from_indices,
            dataset_to_indices,
            episode_indices_to_use,
            drop_n_first_frames,
            drop_n_last_frames,
        )
        if absolute_to_relative_idx is None:
            positions, size = absolute, int(np.max(np.asarray(dataset_to_indices, np.int64)))
        else:
            lookup = absolute_to_relative_idx.__getitem__
            positions = np.fromiter(map(lookup, absolute.tolist()), np.int64, absolute.size)
            size = len(absolute_to_relative_idx)
        self.num_missing = 0
        if isinstance(weights, RABCWeights):
            before = weights.num_missing_lookups
            frame_weights = weights.for_indices(absolute, missing=missing)
            self.num_missing = weights.num_missing_lookups - before
            if self.num_missing:
                log.warning(
                    "RA-BC sampler: %d of %d frames are not in the progress file `%s` and get "
                    "fallback_weight=%s",
                    self.num_missing,
                    absolute.size,
                    weights.source,
                    weights.fallback_weight,
                )
        else:
            table = np.asarray(weights)
            if table.ndim != 1 or table.shape[0] <= absolute.max():
                raise ValueError(
                    f"weights should be 1-D and cover global frame index {absolute.max()}, but got shape "
                    f"{table.shape}; pass RABCWeights or one weight per global frame index"
                )
            frame_weights = table[absolute]
        dataset_weights = np.zeros(size, np.float32)
        dataset_weights[positions] = frame_weights
        self.num_eligible = int(absolute.size)
        self.num_zero_weight = int((frame_weights == 0).sum())
        super().__init__(
            dataset_weights,
            num_samples=self.num_eligible if num_samples is None else num_samples,
            seed=seed,
            auto_epoch=True,
        )
        self._epoch_base = 0

    def set_epoch(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"epoch should be a non-negative integer, but got epoch={epoch!r}")
        super().set_epoch(self._epoch_base + int(epoch))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Our `state_dict()`, or LeRobot's `{"epoch", "start_index"}` from `compute_sampler_state`."""
        if set(state) == {"epoch", "start_index"}:
            state = {**self.state_dict(), "epoch": state["epoch"], "position": state["start_index"]}
        super().load_state_dict(state)
        self._epoch_base = self.epoch


def _eligible_frames(from_idx, to_idx, episodes, drop_first: int, drop_last: int) -> np.ndarray:
    """Global frame indices EpisodeAwareSampler would yield, in order: int64 (K,)."""
    for name, value in (("drop_n_first_frames", drop_first), ("drop_n_last_frames", drop_last)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    starts = np.asarray(from_idx, np.int64) + drop_first
    ends = np.asarray(to_idx, np.int64) - drop_last
    if starts.shape != ends.shape:
        raise ValueError(
            f"dataset_from_indices and dataset_to_indices must have the same length, got {starts.size} "
            f"and {ends.size}"
        )
    used = np.ones(starts.size, bool) if episodes is None else np.isin(np.arange(starts.size), episodes)
    empty = used & (ends <= starts)
    if empty.any():
        log.warning(
            "episodes %s have no frames left after drop_n_first_frames=%d and drop_n_last_frames=%d; "
            "they are skipped",
            np.flatnonzero(empty).tolist(),
            drop_first,
            drop_last,
        )
    used &= ends > starts
    if not used.any():
        raise ValueError(
            "No valid frames remain after applying drop_n_first_frames and drop_n_last_frames: every "
            "episode was filtered out or is too short"
        )
    lengths = ends[used] - starts[used]
    offsets = np.repeat(starts[used] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + offsets
