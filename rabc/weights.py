"""`RABCWeights`: per-frame RA-BC weights for a dataset (SARM, arXiv 2509.25358, Eq. 8-9).

The default (`stats="global"`) reproduces LeRobot 0.6.1's `RABCWeights` exactly: mu = max(mean, 0)
and sigma = max(population std, eps) over every valid delta, end-of-episode clamped deltas included,
and a frame whose delta is unknown (NaN progress at t or at the future frame) gets `fallback_weight`
(1.0). Here that fallback is counted (`num_fallback`) and can be refused (`fallback_weight=None`).
The formulas themselves live in `rabc.formulas`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch

from rabc.checks import check_arrays, check_fallback, check_kappa
from rabc.formulas import delta_statistics, eq9_weights, group_rows, progress_deltas, solve_kappa
from rabc.progress_io import ProgressTable, read_progress
from rabc.weights_file import load_weights, save_weights

__all__ = ["DEFAULT_TARGET_MEAN_WEIGHT", "STATS", "RABCWeights"]

log = logging.getLogger(__name__)

STATS = ("global", "interior")
DEFAULT_TARGET_MEAN_WEIGHT = 0.55  # middle of the 0.3-0.8 mean weight LeRobot's docs call healthy


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
        drop_episodes=None,
    ):
        check_fallback(fallback_weight)
        check_arrays(source, index=index, episode_index=episode_index, deltas=deltas, weights=weights)
        if group_of_row is not None:
            check_arrays(source, index=index, group=group_of_row)
        self.index, self.episode_index = index, episode_index
        self.deltas, self.weights = deltas, weights
        self.chunk_size, self.kappa, self.head = chunk_size, kappa, head
        self.epsilon, self.fallback_weight, self.stats = epsilon, fallback_weight, stats
        self.delta_mean, self.delta_std = delta_mean, delta_std
        self.group_of_row, self.group_stats = group_of_row, group_stats or {}
        self.source = source
        self.drop_episodes = sorted(int(e) for e in drop_episodes) if drop_episodes else None
        self.num_fallback = int(np.isnan(deltas).sum())
        self.num_missing_lookups = 0  # indices absent from the file that took fallback_weight
        self._dense = bool(len(index) and index[-1] - index[0] == len(index) - 1)

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
        drop_episodes=None,
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
            drop_episodes: episode indices (e.g. `rabc.curation.read_drop_list("curation.json")`)
                whose frames get weight 0, so a trainer never learns from them without rewriting the
                dataset; the delta statistics still cover every episode. An episode absent from the
                file is an error.
        """
        check_fallback(fallback_weight)
        table = progress if isinstance(progress, ProgressTable) else read_progress(progress, heads=[head])
        if stats not in STATS:
            raise ValueError(f"stats should be one of {list(STATS)}, but got stats={stats!r}")
        auto = isinstance(kappa, str) and kappa == "auto"
        check_kappa(0.0 if auto else kappa)
        if not epsilon > 0:
            raise ValueError(f"epsilon should be > 0, but got epsilon={epsilon!r}")
        deltas, clamped = progress_deltas(table, head, chunk_size)
        if fallback_weight is None and (nan_rows := np.flatnonzero(np.isnan(deltas))).size:
            where = ", ".join(
                f"(episode {table.episode_index[r]}, frame {table.frame_index[r]})" for r in nan_rows[:5]
            )
            raise ValueError(
                f"{nan_rows.size} frame(s) have no progress delta in `{table.source}`, e.g. {where}: "
                "the progress at the frame or at its future frame is NaN or absent, and "
                "fallback_weight=None refuses such frames; recompute progress for those frames or pass "
                "fallback_weight=1.0 (LeRobot's rule)"
            )
        use = ~np.isnan(deltas) if stats == "global" else ~np.isnan(deltas) & ~clamped
        group_of_row, group_stats = None, None
        if groups is not None:
            group_of_row, labels = group_rows(table, groups)
            group_stats = {}
            for code, label in enumerate(labels):
                group_stats[label] = delta_statistics(deltas[use & (group_of_row == code)], epsilon)
        delta_mean, delta_std = delta_statistics(deltas[use], epsilon)
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
            drop_episodes=_check_drop(drop_episodes, table),
        )
        w.weights = w._compute_weights(w.kappa)
        if auto:
            w = w.with_kappa("auto", target_mean_weight)
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

    def with_kappa(
        self, kappa: float | str, target_mean_weight: float = DEFAULT_TARGET_MEAN_WEIGHT
    ) -> RABCWeights:
        """The same deltas and statistics with another kappa (no re-read, no recomputed deltas).

        `kappa="auto"` takes the smallest kappa whose mean weight is at most `target_mean_weight`.
        """
        if isinstance(kappa, str) and kappa == "auto":
            kappa = self.kappa_for_mean_weight(target_mean_weight)
        check_kappa(kappa)
        new = RABCWeights(**{**self._init_args(), "kappa": float(kappa)})
        new.weights = new._compute_weights(float(kappa))
        return new

    def kappa_for_mean_weight(self, target: float) -> float:
        """The smallest kappa whose weights have a dataset mean weight <= `target` (see `solve_kappa`)."""
        mean, std = self._row_stats()
        return solve_kappa(self.deltas, mean, std, self.epsilon, self._fallback, target)

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

    def batch_weights(self, indices, missing: str = "fallback") -> tuple[torch.Tensor, dict[str, float]]:
        """LeRobot's `compute_batch_weights`: weights normalised to sum to B, and raw-weight stats.

        `missing` is as in `for_indices` (LeRobot: fallback); `stats["num_missing"]` counts this
        batch's indices absent from the progress file.
        """
        before = self.num_missing_lookups
        raw = self.for_indices(torch.as_tensor(indices), missing=missing)
        stats = {
            "mean_weight": float(raw.mean()),
            "num_zero_weight": float((raw == 0).sum()),
            "num_full_weight": float((raw == 1).sum()),
            "num_missing": float(self.num_missing_lookups - before),
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
        return save_weights(self, path)

    @classmethod
    def load(cls, path) -> RABCWeights:
        """Read a file written by `save`, validated (columns, weights in [0, 1], parameters)."""
        return load_weights(cls, path)

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
            "drop_episodes": self.drop_episodes,
        }

    def _row_stats(self):
        """mu and sigma for Eq. 8: scalars, or per-row arrays when statistics are per group."""
        if self.group_of_row is None:
            return self.delta_mean, self.delta_std
        table = np.array(list(self.group_stats.values()), np.float32).reshape(-1, 2)
        return table[self.group_of_row, 0], table[self.group_of_row, 1]

    def _compute_weights(self, kappa: float) -> np.ndarray:
        mean, std = self._row_stats()
        weights = eq9_weights(self.deltas, mean, std, kappa, self.epsilon, self._fallback)
        if self.drop_episodes:
            weights[np.isin(self.episode_index, self.drop_episodes)] = 0.0
        return weights

    @property
    def _fallback(self) -> float:
        """`fallback_weight` as a number: with None, `from_progress` has refused every NaN delta."""
        return 0.0 if self.fallback_weight is None else float(self.fallback_weight)


def _check_drop(drop_episodes, table: ProgressTable):
    if drop_episodes is None:
        return None
    drop = sorted({int(e) for e in drop_episodes})
    have = table.episode_runs()[0]
    unknown = sorted(set(drop) - set(have.tolist()))
    if unknown:
        raise ValueError(
            f"drop_episodes names episode(s) {unknown[:10]} ({len(unknown)} in all) that are not in "
            f"`{table.source}` ({len(have)} episodes); the drop list belongs to another progress file"
        )
    return drop
