"""The RA-BC arithmetic on numpy arrays: progress deltas, Eq. 8-9, statistics, and kappa solving.

For the action chunk that starts at frame t, the progress it makes is

    r_t = progress[min(t + chunk_size, last frame of the episode)] - progress[t]

Eq. 8 (soft weight):  w~_t = clip((r_t - (mu - 2 sigma)) / (4 sigma + eps), 0, 1)
Eq. 9 (final weight): w_t  = 1{r_t > kappa} + 1{0 <= r_t <= kappa} w~_t     (so r_t < 0 gives 0)

`rabc.weights.RABCWeights` holds the results for a dataset; these functions hold the math.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping

import numpy as np

from rabc.progress_io import ProgressTable

__all__ = ["delta_statistics", "eq9_weights", "group_rows", "progress_deltas", "solve_kappa"]

log = logging.getLogger(__name__)


def progress_deltas(table: ProgressTable, head: str, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame progress deltas over `chunk_size` frames, clamped to the episode's last frame.

    Returns `(deltas, clamped)`: float64 deltas (NaN where either progress value is unknown or the
    future index is absent from the file) and a bool mask of rows whose future frame was clamped.
    """
    if not isinstance(chunk_size, int | np.integer) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"chunk_size should be a positive integer value, but got chunk_size={chunk_size!r}")
    progress = table.column(head)
    _, starts, ends = table.episode_runs()
    last_index = np.repeat(table.index[ends - 1], ends - starts)  # last global index of each row's episode
    future = table.index + chunk_size
    clamped = future > last_index
    np.minimum(future, last_index, out=future)
    if table.index[-1] - table.index[0] == len(table.index) - 1:  # no gaps: rows are index offsets
        row = future - table.index[0]
        found = np.ones(len(row), bool)
    else:
        row = np.searchsorted(table.index, future)  # `future` is sorted, so this is cache-friendly
        found = table.index[np.minimum(row, len(table.index) - 1)] == future
    deltas = np.full(len(table.index), np.nan)
    deltas[found] = progress[row[found]].astype(np.float64) - progress[found]
    return deltas, clamped


def eq9_weights(deltas, mean, std, kappa: float, epsilon: float, fallback_weight: float) -> np.ndarray:
    """Eq. 8-9 weights as float32, computed in float32 like LeRobot (identical threshold decisions).

    `mean` and `std` are scalars or per-row arrays (per-group statistics). NaN deltas get
    `fallback_weight` (refusing NaN is the caller's decision: see `RABCWeights.from_progress`).
    """
    d = np.asarray(deltas, dtype=np.float32)
    nan = np.isnan(d)
    if np.isscalar(mean):  # python floats: numpy keeps the float32 dtype of `d`, as in LeRobot
        lower, scale = float(mean) - 2 * float(std), 4 * float(std) + epsilon
    else:
        lower, scale = (mean - 2 * std).astype(np.float32), (4 * std + epsilon).astype(np.float32)
    soft = (d - lower) / scale
    np.clip(soft, 0.0, 1.0, out=soft)
    weights = np.zeros(d.shape, np.float32)
    weights[d > kappa] = 1.0
    band = (d >= 0) & (d <= kappa)
    weights[band] = soft[band]
    weights[nan] = fallback_weight
    return weights


def solve_kappa(deltas, mean, std, epsilon: float, fallback_weight: float, target: float) -> float:
    """The smallest kappa whose Eq. 9 weights have a dataset mean weight <= `target`.

    The mean weight falls as kappa rises (frames leave the full-weight set for the soft band), so
    the answer is read off the sorted deltas in one pass. A target at or above the mean weight at
    kappa = 0 gives 0.0; a target below what any kappa reaches gives the largest delta.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target mean weight should be in (0, 1), but got target={target}")
    d = np.asarray(deltas).astype(np.float32)
    total = len(d)
    valid = ~np.isnan(d)
    fallback_total = float((~valid).sum()) * fallback_weight
    if not np.isscalar(mean):
        mean, std = mean[valid], std[valid]
    d = d[valid]
    if np.isscalar(mean):  # the soft weight is a function of delta alone: sort deltas, then weigh them
        d = np.sort(d)
        soft = eq9_weights(d, mean, std, np.inf, epsilon, fallback_weight)  # soft band, d >= 0
    else:  # per-group statistics: carry each row's soft weight along
        soft = eq9_weights(d, mean, std, np.inf, epsilon, fallback_weight)
        order = np.argsort(d, kind="stable")
        d, soft = d[order], soft[order]
    prefix = np.concatenate([[0.0], np.cumsum(soft, dtype=np.float64)])
    first_nonneg = np.searchsorted(d, 0.0, side="left")
    candidates = np.concatenate([[np.float32(0.0)], d[first_nonneg:]])
    upto = np.searchsorted(d, candidates, side="right")  # rows with delta <= kappa get the soft weight
    mean_weight = (len(d) - upto + prefix[upto] - prefix[first_nonneg] + fallback_total) / total
    reached = np.flatnonzero(mean_weight <= target)
    return float(candidates[reached[0]] if reached.size else candidates[-1])


def delta_statistics(deltas: np.ndarray, epsilon: float) -> tuple[float, float]:
    """LeRobot's global statistics: mean floored at 0, population std floored at epsilon."""
    if deltas.size == 0:
        log.warning("RA-BC: no valid progress deltas; using mean 0 and std epsilon")
        return 0.0, float(epsilon)
    return max(float(np.mean(deltas)), 0.0), max(float(np.std(deltas)), float(epsilon))


def group_rows(table: ProgressTable, groups: Mapping[int, Hashable]) -> tuple[np.ndarray, list]:
    episodes, starts, ends = table.episode_runs()
    missing = [int(e) for e in episodes if int(e) not in groups]
    if missing:
        raise ValueError(
            f"groups has no entry for episode(s) {missing[:10]} ({len(missing)} in all); "
            "map every episode of the progress file to a group (e.g. its task)"
        )
    labels = list(dict.fromkeys(groups[int(e)] for e in episodes))
    code = {label: i for i, label in enumerate(labels)}
    per_episode = np.array([code[groups[int(e)]] for e in episodes], np.int32)
    return np.repeat(per_episode, ends - starts), [str(label) for label in labels]
