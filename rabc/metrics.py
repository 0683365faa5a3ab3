"""Progress-only metrics per episode, vectorised over a whole progress file (no loop over frames).

Episodes are contiguous runs of rows (`rabc.progress_io.episode_runs`); every function takes the
per-row values and the runs' `starts` (first row of each episode) and reduces with
`np.*.reduceat`. NaN progress is left out of each episode before reducing.

    voc               value-order correlation: per-episode Spearman between progress and time (GVL)
    auroc             P(score of a random positive > score of a random negative), ties count 1/2
    paper_rule        the SARM paper's success rule: final > 0.8 and last-third mean > 0.6
    grouped_pearson / grouped_spearman   correlation of two per-row values inside each group of rows
"""

from __future__ import annotations

import numpy as np

__all__ = ["auroc", "demo_mse", "grouped_pearson", "grouped_spearman", "paper_rule", "voc"]


def _finite_runs(values: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """(finite values, their episode position, starts and lengths of the finite runs per episode)."""
    values = np.asarray(values)
    keep = np.isfinite(values)
    group = np.repeat(np.arange(len(starts)), ends - starts)[keep]
    counts = np.bincount(group, minlength=len(starts))
    fstarts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return values[keep], group, fstarts, counts


def _reduce(ufunc, x: np.ndarray, starts: np.ndarray, counts: np.ndarray, empty=np.nan) -> np.ndarray:
    """`ufunc.reduceat` that is safe for empty groups (they get `empty`)."""
    out = np.full(len(starts), empty, np.float64)
    has = counts > 0
    if x.size:
        out[has] = ufunc.reduceat(x, starts[has])
    return out


def _group_ranks(x: np.ndarray, group: np.ndarray, fstarts: np.ndarray) -> np.ndarray:
    """Average ranks (0-based) of `x` within each contiguous group, ties share their mean rank."""
    order = np.lexsort((x, group))
    xs, gs = x[order], group[order]
    new = np.ones(len(xs), bool)
    new[1:] = (xs[1:] != xs[:-1]) | (gs[1:] != gs[:-1])
    tie_start = np.flatnonzero(new)
    tie_len = np.diff(np.append(tie_start, len(xs)))
    pos = np.arange(len(xs)) - fstarts[gs]  # position inside the episode
    first = pos[tie_start]
    ranks_sorted = np.repeat(first + (tie_len - 1) / 2.0, tie_len)
    ranks = np.empty(len(xs), np.float64)
    ranks[order] = ranks_sorted
    return ranks


def grouped_pearson(x: np.ndarray, y: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson correlation of x and y inside each group; NaN for < 2 rows or a constant side."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = _reduce(np.add, x, starts, counts, 0.0) / n
        my = _reduce(np.add, y, starts, counts, 0.0) / n
        dx, dy = x - np.repeat(mx, counts), y - np.repeat(my, counts)
        sxy = _reduce(np.add, dx * dy, starts, counts, 0.0)
        sxx = _reduce(np.add, dx * dx, starts, counts, 0.0)
        syy = _reduce(np.add, dy * dy, starts, counts, 0.0)
        r = sxy / np.sqrt(sxx * syy)
    r[(counts < 2) | ~(sxx > 0) | ~(syy > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def grouped_spearman(x: np.ndarray, y: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Spearman correlation of x and y inside each group (Pearson of their average ranks, as
    `scipy.stats.spearmanr`); NaN for < 2 rows or a constant side. Rows must be finite."""
    counts = np.asarray(counts, np.int64)
    group = np.repeat(np.arange(len(counts)), counts)
    fstarts = np.asarray(starts, np.int64)
    rx = _group_ranks(np.asarray(x, np.float64), group, fstarts)
    ry = _group_ranks(np.asarray(y, np.float64), group, fstarts)
    return grouped_pearson(rx, ry, fstarts, counts)


def voc(progress: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Value-order correlation of each episode: Spearman between progress and frame order.

    NaN frames are left out; an episode with fewer than 2 known frames, or constant progress, gets
    NaN (Spearman is undefined there, as in `scipy.stats.spearmanr`).
    """
    x, group, fstarts, counts = _finite_runs(progress, starts, ends)
    ranks = _group_ranks(x, group, fstarts)
    time = (np.arange(len(x)) - fstarts[group]).astype(np.float64)  # rows are in frame order
    return grouped_pearson(ranks, time, fstarts, counts)


def auroc(scores, positive) -> float:
    """Area under the ROC curve of `scores` for the boolean labels `positive` (Mann-Whitney U, ties 1/2).

    NaN scores are left out; NaN when either class is empty.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    keep = ~np.isnan(scores)
    scores, positive = scores[keep], positive[keep]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    new = np.ones(len(s), bool)
    new[1:] = s[1:] != s[:-1]
    start = np.flatnonzero(new)
    length = np.diff(np.append(start, len(s)))
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(start + (length + 1) / 2.0, length)  # 1-based average ranks
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def paper_rule(
    progress: np.ndarray, starts: np.ndarray, ends: np.ndarray, final: float = 0.8, last_third: float = 0.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SARM paper's rule per episode: success if final progress > `final` and the mean over the
    last third (the last max(1, L // 3) known frames) > `last_third`.

    Returns (predicted success: bool, final progress, last-third mean); NaN frames are left out, an
    episode without a known frame is predicted to fail with NaN values.
    """
    x, group, fstarts, counts = _finite_runs(progress, starts, ends)
    last = np.full(len(starts), np.nan)
    has = counts > 0
    last[has] = x[fstarts[has] + counts[has] - 1]
    tail_len = np.maximum(1, counts // 3)
    pos = np.arange(len(x)) - fstarts[group]
    in_tail = pos >= (counts - tail_len)[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = np.bincount(group[in_tail], x[in_tail].astype(np.float64), minlength=len(starts)) / tail_len
    tail[~has] = np.nan
    success = (last > final) & (tail > last_third)
    return success, last, tail


def demo_mse(predicted, truth, starts: np.ndarray, ends: np.ndarray, every: int = 1) -> float:
    """Mean squared error between predicted and true progress on every `every`-th frame of each
    episode (the paper uses 10), pooled over frames; rows where either side is NaN are left out."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted progress has shape {predicted.shape} but the labels {truth.shape}")
    position = np.arange(len(predicted)) - np.repeat(starts, ends - starts)
    use = (position % every == 0) & ~np.isnan(predicted) & ~np.isnan(truth)
    return float(np.mean((predicted[use] - truth[use]) ** 2)) if use.any() else float("nan")
