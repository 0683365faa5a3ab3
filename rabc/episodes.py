"""One row of quality scores per episode of a progress file: which episodes to watch first.

    scores = score_episodes("sarm_progress.parquet", chunk_size=50)      # a dict of numpy columns
    worst = scores.worst_first()                                          # row order, worst first

Columns (NaN progress frames are left out of every per-episode value):

    num_frames            rows of the episode in the file
    length_percentile     where num_frames falls among all episodes of the file (every task): 0 the
                          shortest, 100 the longest; equal lengths share their mean rank, so
                          100 * (shorter + (equal - 1) / 2) / (episodes - 1), and 50 for a lone
                          episode. Long episodes often are the failed ones: read scores beside it
    final_progress        progress at the last known frame
    max_progress          highest progress reached
    max_drop              largest fall below the running maximum (a regression: 0 for a monotone episode)
    stalled_fraction      frames with a known delta whose progress moves by at most `stall_threshold`
                          (default 0.01, LeRobot's default kappa: 1% of the task) over the chunk; the
                          last frame's delta is always 0, so even a clean episode has >= 1 / L
    mean_weight           mean RA-BC weight (Eq. 8-9, with `kappa`, default LeRobot's 0.01)
    zero_weight_fraction  frames whose RA-BC weight is 0
    predicted_success     the paper's rule: final progress > 0.8 and last-third mean > 0.6 (options)
    score                 final_progress * (1 - max_drop) * (1 - stalled_fraction), in [0, 1], higher is
                          better: an episode that ends done, never goes back and never stalls scores 1;
                          it does not depend on kappa. NaN when the episode has no known progress.
    rank, percentile      within the episode's task (all episodes when tasks are unknown): rank 1 is the
                          best score; percentile 100 the best, 0 the worst (NaN scores: no rank).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from rabc.files import atomic_write
from rabc.metrics import paper_rule
from rabc.progress_io import ProgressTable, read_progress
from rabc.weights import RABCWeights

__all__ = ["COLUMNS", "EpisodeScores", "score_episodes"]

COLUMNS = (
    "episode_index",
    "task",
    "num_frames",
    "length_percentile",
    "final_progress",
    "max_progress",
    "max_drop",
    "stalled_fraction",
    "mean_weight",
    "zero_weight_fraction",
    "predicted_success",
    "score",
    "rank",
    "percentile",
)
DEFAULT_STALL_THRESHOLD = 0.01


class EpisodeScores(dict):
    """Column name -> numpy array (one entry per episode, in file order); see the module docstring."""

    def __len__(self) -> int:
        return len(self["episode_index"])

    def worst_first(self) -> np.ndarray:
        """Row order by score, worst first (unknown scores first of all), ties by episode index."""
        score = np.where(np.isnan(self["score"]), -np.inf, self["score"])
        return np.lexsort((self["episode_index"], score))

    def rows(self) -> list[dict]:
        """Plain JSON-ready dicts, worst first; NaN becomes None; `task` is None when unknown."""
        out = []
        for i in self.worst_first():
            row = {}
            for key in COLUMNS:
                value = self[key][i]
                if isinstance(value, np.generic):
                    value = value.item()
                if isinstance(value, float) and math.isnan(value):
                    value = None
                row[key] = int(value) if key == "rank" and value is not None else value
            out.append(row)
        return out

    def write(self, path) -> Path:
        """Write every episode, worst first, as .parquet, .csv or .json (by the suffix), atomically."""
        path = Path(path)
        if path.suffix == ".json":
            text = json.dumps(self.rows(), indent=1)
            return atomic_write(path, lambda tmp: tmp.write_text(text))
        order = self.worst_first()
        table = pa.table({k: self[k][order] for k in COLUMNS})
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            return atomic_write(path, lambda tmp: pacsv.write_csv(table, tmp))
        raise ValueError(f"episode scores `{path}`: write .parquet, .csv or .json, not `{path.suffix}`")


def score_episodes(
    progress,
    chunk_size: int,
    *,
    head: str = "sparse",
    kappa: float = 0.01,
    tasks: Mapping[int, str] | None = None,
    stall_threshold: float = DEFAULT_STALL_THRESHOLD,
    success_final: float = 0.8,
    success_last_third: float = 0.6,
    weights: RABCWeights | None = None,
) -> EpisodeScores:
    """Per-episode scores of a progress file (path, `pyarrow.Table` or `ProgressTable`).

    `weights` reuses RA-BC weights already computed from the same file (else they are built with
    `chunk_size`, `kappa` and `head`). `tasks` ({episode: task}) ranks episodes within their task.
    """
    if not stall_threshold >= 0:
        raise ValueError(f"stall_threshold should be >= 0, but got stall_threshold={stall_threshold!r}")
    table = progress if isinstance(progress, ProgressTable) else read_progress(progress, heads=[head])
    w = weights or RABCWeights.from_progress(table, chunk_size, kappa=kappa, head=head)
    if len(w) != len(table) or not np.array_equal(w.index, table.index):
        raise ValueError("weights were computed from another progress file: pass the same file's weights")
    p = table.column(head)
    episodes, starts, ends = table.episode_runs()
    n = ends - starts
    success, final, _ = paper_rule(p, starts, ends, success_final, success_last_third)
    position = np.repeat(np.arange(len(starts)), n)
    # running maximum per episode in one pass: offset each episode above the previous one's range
    finite = np.isfinite(p)
    shifted = np.where(finite, p, -1.0).astype(np.float64) + 3.0 * position
    running = np.maximum.accumulate(shifted)
    drop = np.where(finite, running - shifted, 0.0)
    max_drop = np.maximum.reduceat(drop, starts)
    max_progress = np.fmax.reduceat(np.where(finite, p, np.nan), starts).astype(np.float64)
    known_delta = ~np.isnan(w.deltas)
    stalled = known_delta & (np.abs(w.deltas) <= stall_threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        stalled_fraction = np.add.reduceat(stalled, starts) / np.add.reduceat(known_delta, starts)
        score = final * (1.0 - max_drop) * (1.0 - stalled_fraction)
    has = np.add.reduceat(finite, starts) > 0
    max_drop[~has] = np.nan
    mean_weight = np.add.reduceat(w.weights.astype(np.float64), starts) / n
    zero = np.add.reduceat(w.weights == 0, starts) / n
    task = np.array([None if tasks is None else tasks.get(int(e)) for e in episodes], object)
    if tasks is not None and (missing := [int(e) for e, t in zip(episodes, task, strict=True) if t is None]):
        raise ValueError(
            f"tasks has no entry for episode(s) {missing[:10]} ({len(missing)} in all); map every episode "
            "of the progress file to its task"
        )
    rank, percentile = _rank_within(score, task)
    return EpisodeScores(
        episode_index=episodes.astype(np.int64),
        task=task,
        num_frames=n.astype(np.int64),
        length_percentile=_length_percentile(n),
        final_progress=final,
        max_progress=max_progress,
        max_drop=max_drop,
        stalled_fraction=stalled_fraction,
        mean_weight=mean_weight,
        zero_weight_fraction=zero,
        predicted_success=success,
        score=score,
        rank=rank,
        percentile=percentile,
    )


def _length_percentile(lengths: np.ndarray) -> np.ndarray:
    """100 * (episodes shorter + (episodes as long - 1) / 2) / (episodes - 1): mean ranks, 0 to 100."""
    if len(lengths) < 2:
        return np.full(len(lengths), 50.0)
    _, inverse, counts = np.unique(lengths, return_inverse=True, return_counts=True)
    shorter = np.cumsum(counts) - counts
    return 100.0 * (shorter + (counts - 1) / 2.0)[inverse.reshape(-1)] / (len(lengths) - 1)


def _rank_within(score: np.ndarray, task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Competition ranks (1 = best, ties share the best rank) and percentiles within each task."""
    _, code = np.unique(task.astype(str), return_inverse=True)
    rank, percentile = np.full(len(score), np.nan), np.full(len(score), np.nan)
    known = ~np.isnan(score)
    order = np.flatnonzero(known)[np.lexsort((-score[known], code[known]))]
    if order.size:
        c, s = code[order], score[order]
        new_group = np.ones(order.size, bool)
        new_group[1:] = c[1:] != c[:-1]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(order.size), 0))
        new_value = new_group.copy()
        new_value[1:] |= s[1:] != s[:-1]
        value_start = np.maximum.accumulate(np.where(new_value, np.arange(order.size), 0))
        r = value_start - group_start + 1
        size = np.bincount(c, minlength=code.max() + 1)[c]
        rank[order] = r
        with np.errstate(invalid="ignore", divide="ignore"):
            percentile[order] = np.where(size > 1, 100.0 * (size - r) / (size - 1), 100.0)
    return rank, percentile
