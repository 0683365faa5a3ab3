"""RA-BC per-frame weights from progress (SARM, arXiv 2509.25358, Eq. 8-9).

For the action chunk that starts at frame t, the progress it makes is

    r_t = progress[min(t + chunk_size, last frame of the episode)] - progress[t]

Eq. 8 (soft weight):  w~_t = clip((r_t - (mu - 2 sigma)) / (4 sigma + eps), 0, 1)
Eq. 9 (final weight): w_t  = 1{r_t > kappa} + 1{0 <= r_t <= kappa} w~_t     (so r_t < 0 gives 0)

with mu, sigma statistics of r over the dataset. The default (`stats="global"`) reproduces LeRobot
0.6.1's `RABCWeights` exactly: mu = max(mean, 0) and sigma = max(population std, eps) over every
valid delta, end-of-episode clamped deltas included, and a frame whose delta is unknown (NaN progress
at t or at the future frame) gets `fallback_weight` (1.0). Here that fallback is counted
(`num_fallback`) and can be refused (`fallback_weight=None`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from rabc.progress_io import ProgressTable, atomic_write_parquet, read_progress

__all__ = [
    "DEFAULT_TARGET_MEAN_WEIGHT",
    "STATS",
    "RABCWeights",
    "eq9_weights",
    "kappa_for_mean_weight",
    "progress_deltas",
]

log = logging.getLogger(__name__)

STATS = ("global", "interior")
DEFAULT_TARGET_MEAN_WEIGHT = 0.55  # middle of the 0.3-0.8 mean weight LeRobot's docs call healthy
FORMAT = "rabc-weights/1"


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


def eq9_weights(deltas, mean, std, kappa: float, epsilon: float, fallback_weight: float | None) -> np.ndarray:
    """Eq. 8-9 weights as float32, computed in float32 like LeRobot (identical threshold decisions).

    `mean` and `std` are scalars or per-row arrays (per-group statistics). NaN deltas get
    `fallback_weight`; with `fallback_weight=None` they are an error.
    """
    d = np.asarray(deltas, dtype=np.float32)
    nan = np.isnan(d)
    if nan.any() and fallback_weight is None:
        raise ValueError(
            f"{int(nan.sum())} frame(s) have no progress delta (NaN progress at the frame or at its "
            "future frame) "
            "and fallback_weight=None; recompute progress for those frames or pass fallback_weight=1.0 "
            "(LeRobot's rule)"
        )
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
    weights[nan] = 0.0 if fallback_weight is None else fallback_weight
    return weights


def kappa_for_mean_weight(weights: RABCWeights, target: float) -> float:
    """The smallest kappa whose Eq. 9 weights have a dataset mean weight <= `target`.

    The mean weight falls as kappa rises (frames leave the full-weight set for the soft band), so
    the answer is read off the sorted deltas in one pass. A target at or above the mean weight at
    kappa = 0 gives 0.0; a target below what any kappa reaches gives the largest delta.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target mean weight should be in (0, 1), but got target={target}")
    d = weights.deltas.astype(np.float32)
    valid = ~np.isnan(d)
    fallback_total = float((~valid).sum()) * (weights.fallback_weight or 0.0)
    mean, std = weights._row_stats()
    if not np.isscalar(mean):
        mean, std = mean[valid], std[valid]
    d = d[valid]
    if np.isscalar(mean):  # the soft weight is a function of delta alone: sort deltas, then weigh them
        d = np.sort(d)
        soft = eq9_weights(
            d, mean, std, np.inf, weights.epsilon, weights.fallback_weight
        )  # soft band, d >= 0
    else:  # per-group statistics: carry each row's soft weight along
        soft = eq9_weights(d, mean, std, np.inf, weights.epsilon, weights.fallback_weight)
        order = np.argsort(d, kind="stable")
        d, soft = d[order], soft[order]
    prefix = np.concatenate([[0.0], np.cumsum(soft, dtype=np.float64)])
    first_nonneg = np.searchsorted(d, 0.0, side="left")
    candidates = np.concatenate([[np.float32(0.0)], d[first_nonneg:]])
    upto = np.searchsorted(d, candidates, side="right")  # rows with delta <= kappa get the soft weight
    mean_weight = (len(d) - upto + prefix[upto] - prefix[first_nonneg] + fallback_total) / len(weights)
    reached = np.flatnonzero(mean_weight <= target)
    return float(candidates[reached[0]] if reached.size else candidates[-1])


class RABCWeights:
    """Per-frame RA-BC weights for a whole dataset, as numpy arrays aligned by row.

    Build with `RABCWeights.from_progress(...)` or `RABCWeights.load(path)`.

    Attributes:
        index, episode_index: int64 (N,) global frame index and episode of each row.
        deltas: float64 (N,) progress delta over `chunk_size` frames (NaN if unknown).
        weights: float32 (N,) Eq. 8-9 weights in [0, 1].
        delta_mean, delta_std: the statistics of Eq. 8 (over all groups when `groups` was given;
            the per-group values are in `group_stats`).
        num_fallback: rows whose delta is unknown and took `fallback_weight`.
    """

    def __init__(
        self,
        *,
        index,
        episode_index,
        deltas,
        weights,
        chunk_size,
        kappa,
        head,
        epsilon,
        fallback_weight,
        stats,
        delta_mean,
        delta_std,
        group_of_row=None,
        group_stats=None,
        source="<arrays>",
    ):
        self.index, self.episode_index = index, episode_index
        self.deltas, self.weights = deltas, weights
        self.chunk_size, self.kappa, self.head = chunk_size, kappa, head
        self.epsilon, self.fallback_weight, self.stats = epsilon, fallback_weight, stats
        self.delta_mean, self.delta_std = delta_mean, delta_std
        self.group_of_row, self.group_stats = group_of_row, group_stats or {}
        self.source = source
        self.num_fallback = int(np.isnan(deltas).sum())
        self.num_missing_lookups = 0  # indices absent from the file that took fallback_weight
        self._dense = bool(len(index) and index[-1] - index[0] == len(index) - 1)
        self._device_cache: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_progress(
        cls,
        progress,
        chunk_size: int,
        kappa: float = 0.01,
        head: str = "sparse",
        epsilon: float = 1e-6,
        fallback_weight: float | None = 1.0,
        stats: str = "global",
        groups: Mapping[int, Hashable] | None = None,
        target_mean_weight: float = DEFAULT_TARGET_MEAN_WEIGHT,
    ) -> RABCWeights:
        """Weights from a progress file (path), a `pyarrow.Table` or a `ProgressTable`.

        Args:
            chunk_size: Delta in frames: the policy's action chunk (LeRobot uses `policy.chunk_size`).
            kappa: Eq. 9 threshold; deltas above it get weight 1. A float >= 0, or "auto": the
                smallest kappa whose mean weight is at most `target_mean_weight`.
            head: "sparse" or "dense" progress column.
            epsilon: numerical floor of sigma and of the Eq. 8 denominator.
            fallback_weight: weight of frames with unknown delta (LeRobot: 1.0); None makes them an error.
            stats: "global" (LeRobot: every valid delta) or "interior" (deltas whose future frame was
                not clamped at the episode end; those near-end deltas shrink to 0 and bias mu down).
            groups: optional episode -> group (e.g. task) mapping: mu and sigma are then computed per
                group, so a slow task's frames are judged against that task's pace.
        """
        table = progress if isinstance(progress, ProgressTable) else read_progress(progress, heads=[head])
        if stats not in STATS:
            raise ValueError(f"stats should be one of {list(STATS)}, but got stats={stats!r}")
        auto = isinstance(kappa, str) and kappa == "auto"
        _check_kappa(0.0 if auto else kappa)
        if not epsilon > 0:
            raise ValueError(f"epsilon should be > 0, but got epsilon={epsilon!r}")
        deltas, clamped = progress_deltas(table, head, chunk_size)
        if fallback_weight is None and (nan_rows := np.flatnonzero(np.isnan(deltas))).size:
            where = ", ".join(
                f"(episode {table.episode_index[r]}, frame {table.frame_index[r]})" for r in nan_rows[:5]
            )
            raise ValueError(
                f"{nan_rows.size} frame(s) have no progress delta in `{table.source}`, e.g. {where}: the "
                "progress "
                "at the frame or at its future frame is NaN or absent, and fallback_weight=None; recompute "
                "progress for those frames or pass fallback_weight=1.0 (LeRobot's rule)"
            )
        use = ~np.isnan(deltas) if stats == "global" else ~np.isnan(deltas) & ~clamped
        group_of_row, group_stats = None, None
        if groups is not None:
            group_of_row, labels = _group_rows(table, groups)
            group_stats = {}
            for code, label in enumerate(labels):
                group_stats[label] = _statistics(deltas[use & (group_of_row == code)], epsilon)
        delta_mean, delta_std = _statistics(deltas[use], epsilon)
        w = cls(
            index=table.index,
            episode_index=table.episode_index,
            deltas=deltas,
            weights=None,
            chunk_size=int(chunk_size),
            kappa=0.0 if auto else float(kappa),
            head=head,
            epsilon=float(epsilon),
            fallback_weight=fallback_weight,
            stats=stats,
            delta_mean=delta_mean,
            delta_std=delta_std,
            group_of_row=group_of_row,
            group_stats=group_stats,
            source=table.source,
        )
        w.weights = w._compute_weights(w.kappa)
        if auto:
            w = w.with_kappa(kappa_for_mean_weight(w, target_mean_weight))
        if w.num_fallback:
            log.warning(
                "RA-BC: %d of %d frames have no progress delta and get fallback_weight=%s",
                w.num_fallback,
                len(w),
                fallback_weight,
            )
        return w

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (
            f"RABCWeights(frames={len(self)}, chunk_size={self.chunk_size}, kappa={self.kappa:g}, "
            f"head={self.head!r}, stats={self.stats!r}, delta_mean={self.delta_mean:.4g}, "
            f"delta_std={self.delta_std:.4g}, mean_weight={self.mean_weight:.4f}, "
            f"num_fallback={self.num_fallback})"
        )

    @property
    def mean_weight(self) -> float:
        return float(self.weights.mean(dtype=np.float64))

    def with_kappa(self, kappa: float) -> RABCWeights:
        """The same deltas and statistics with another kappa (no re-read, no recomputed deltas)."""
        _check_kappa(kappa)
        new = RABCWeights(**{**self._init_args(), "kappa": float(kappa)})
        new.weights = new._compute_weights(float(kappa))
        return new

    def for_indices(self, indices, missing: str = "error"):
        """Raw weights for global frame indices (vectorised). Returns the input's kind and device.

        `missing="error"` raises for an index absent from the progress file; `missing="fallback"`
        gives those `fallback_weight` (LeRobot's behaviour) and adds them to `num_missing_lookups`.
        """
        if missing not in ("error", "fallback"):
            raise ValueError(f"missing should be 'error' or 'fallback', but got missing={missing!r}")
        is_tensor = isinstance(indices, torch.Tensor)
        idx = indices.detach().cpu().numpy() if is_tensor else np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices should be integers (global frame indices), but got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if self._dense:
            row = idx - self.index[0]
            ok = (row >= 0) & (row < len(self.index))
        else:
            row = np.searchsorted(self.index, idx)
            ok = row < len(self.index)
            ok[ok] = self.index[row[ok]] == idx[ok]
        out = np.empty(idx.shape, np.float32)
        out[ok] = self.weights[row[ok]]
        if not ok.all():
            if missing == "error" or self.fallback_weight is None:
                bad = idx[~ok]
                raise KeyError(
                    f"{bad.size} frame index(es) not in the progress file `{self.source}` (e.g. "
                    f"{bad[:5].tolist()}; it covers {len(self)} frames, "
                    f"index {self.index[0]}..{self.index[-1]}); "
                    "compute progress for the whole dataset, or pass missing='fallback' to give them "
                    "fallback_weight"
                )
            out[~ok] = self.fallback_weight
            self.num_missing_lookups += int((~ok).sum())
        if not is_tensor:
            return out
        return torch.from_numpy(out).to(indices.device, non_blocking=True)

    def batch_weights(self, indices) -> tuple[torch.Tensor, dict[str, float]]:
        """LeRobot's `compute_batch_weights`: weights normalised to sum to B, and raw-weight stats."""
        raw = self.for_indices(torch.as_tensor(indices), missing="fallback")
        stats = {
            "mean_weight": float(raw.mean()),
            "num_zero_weight": float((raw == 0).sum()),
            "num_full_weight": float((raw == 1).sum()),
        }
        return raw * len(raw) / (raw.sum() + self.epsilon), stats

    def get_stats(self) -> dict[str, float | int | str]:
        """Dataset-level values for a logger (LeRobot's `get_stats` keys plus ours)."""
        return {
            "type": "rabc",
            "num_frames": len(self),
            "chunk_size": self.chunk_size,
            "head_mode": self.head,
            "delta_mean": self.delta_mean,
            "delta_std": self.delta_std,
            "kappa": self.kappa,
            "mean_weight": self.mean_weight,
            "num_fallback": self.num_fallback,
        }

    def save(self, path) -> Path:
        """Write a weights parquet (index, episode_index, delta, weight) with parameters in its metadata."""
        meta = {"format": FORMAT, **{k: v for k, v in self._init_args().items() if k not in _ARRAYS}}
        meta["group_stats"] = [[label, m, s] for label, (m, s) in self.group_stats.items()]
        columns = {
            "index": self.index,
            "episode_index": self.episode_index,
            "delta": self.deltas,
            "weight": self.weights,
        }
        if self.group_of_row is not None:
            columns["group"] = self.group_of_row
        table = pa.table(columns).replace_schema_metadata({b"rabc": json.dumps(meta, default=str).encode()})
        return atomic_write_parquet(table, path)

    @classmethod
    def load(cls, path) -> RABCWeights:
        """Read a file written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"weights file `{path}` does not exist; write one with `rabc weights`")
        raw = (pq.read_schema(path).metadata or {}).get(b"rabc")
        if raw is None:
            raise ValueError(
                f"`{path}` has no `rabc` metadata: it is not a weights file written by `rabc weights`"
                " (a progress file? build weights with RABCWeights.from_progress)"
            )
        meta = json.loads(raw)
        if meta.pop("format", None) != FORMAT:
            raise ValueError(
                f"`{path}` was written in an unknown weights format; rewrite it with `rabc weights`"
            )
        table = pq.read_table(path)
        group_stats = {label: (m, s) for label, m, s in meta.pop("group_stats", [])}
        cols = {name: table.column(name).to_numpy() for name in table.column_names}
        return cls(
            index=cols["index"],
            episode_index=cols["episode_index"],
            deltas=cols["delta"],
            weights=cols["weight"],
            group_of_row=cols.get("group"),
            group_stats=group_stats,
            **meta,
        )

    def _init_args(self) -> dict:
        return {
            "index": self.index,
            "episode_index": self.episode_index,
            "deltas": self.deltas,
            "weights": self.weights,
            "chunk_size": self.chunk_size,
            "kappa": self.kappa,
            "head": self.head,
            "epsilon": self.epsilon,
            "fallback_weight": self.fallback_weight,
            "stats": self.stats,
            "delta_mean": self.delta_mean,
            "delta_std": self.delta_std,
            "group_of_row": self.group_of_row,
            "group_stats": self.group_stats,
            "source": self.source,
        }

    def _row_stats(self):
        """mu and sigma for Eq. 8: scalars, or per-row arrays when statistics are per group."""
        if self.group_of_row is None:
            return self.delta_mean, self.delta_std
        table = np.array(list(self.group_stats.values()), np.float32).reshape(-1, 2)
        return table[self.group_of_row, 0], table[self.group_of_row, 1]

    def _compute_weights(self, kappa: float) -> np.ndarray:
        mean, std = self._row_stats()
        return eq9_weights(self.deltas, mean, std, kappa, self.epsilon, self.fallback_weight)


_ARRAYS = ("index", "episode_index", "deltas", "weights", "group_of_row", "group_stats")


def _check_kappa(kappa) -> None:
    if isinstance(kappa, bool) or not (
        np.isscalar(kappa) and np.isreal(kappa) and np.isfinite(kappa) and kappa >= 0
    ):
        raise ValueError(f'kappa should be a finite float >= 0 or "auto", but got kappa={kappa!r}')


def _statistics(deltas: np.ndarray, epsilon: float) -> tuple[float, float]:
    """LeRobot's global statistics: mean floored at 0, population std floored at epsilon."""
    if deltas.size == 0:
        log.warning("RA-BC: no valid progress deltas; using mean 0 and std epsilon")
        return 0.0, float(epsilon)
    return max(float(np.mean(deltas)), 0.0), max(float(np.std(deltas)), float(epsilon))


def _group_rows(table: ProgressTable, groups: Mapping[int, Hashable]) -> tuple[np.ndarray, list]:
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
