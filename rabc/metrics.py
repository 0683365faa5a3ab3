"""Progress-only metrics per episode, vectorised over a whole progress file (no loop over frames).

Episodes are contiguous runs of rows (`rabc.progress_io.episode_runs`); every function takes the
per-row values and the runs' `starts` (first row of each episode) and reduces with
`np.*.reduceat`. NaN progress is left out of each episode before reducing.

    voc               value-order correlation: per-episode Spearman between progress and time (GVL)
    auroc             P(score of a random positive > score of a random negative), ties count 1/2
    auroc_length      AUROC of episode length alone, shorter = positive (success)
    auroc_length_controlled   AUROC counted only between episodes of matched length (length strata)
    paper_rule        the SARM paper's success rule: final > 0.8 and last-third mean > 0.6
    grouped_pearson / grouped_spearman   correlation of two per-row values inside each group of rows
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "auroc",
    "auroc_length",
    "auroc_length_controlled",
    "demo_mse",
    "grouped_pearson",
    "grouped_spearman",
    "length_strata",
    "paper_rule",
    "voc",
]


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


def auroc_length(lengths, positive) -> float:
    """AUROC of episode length alone, oriented as `auroc` of final progress is: 1.0 when every
    positive (successful) episode is shorter than every negative one, 0.5 when length says nothing,
    below 0.5 when the successes are the longer ones (then 1 - value is how well length separates
    them the other way). It is `auroc(-lengths, positive)`: the baseline a progress score must beat,
    since mistakes, retries and time-outs make failed demonstrations long."""
    return auroc(-np.asarray(lengths, np.float64), positive)


def length_strata(lengths, *, stratum_size: int | None = None, max_ratio: float = 1.1) -> np.ndarray:
    """Stratum of each episode (int64, 0, 1, ... in order of length) for `auroc_length_controlled`.

    Episodes sorted by length are cut into runs of neighbours: a stratum is closed before the next
    length once it holds `stratum_size` episodes, or when that length is more than `max_ratio` times
    the stratum's shortest (10%: 200 and 220 frames match, 140 and 220 do not). Equal lengths always
    share a stratum. The default `stratum_size` is ceil(n^(1/3)) for n episodes (3 for 25, 13 for
    2,000): the leak from lengths left unmatched inside a stratum grows with its width (~ size / n)
    while the noise grows with fewer pairs (~ 1 / (n size)); their sum is smallest for a size
    ~ n^(1/3), the rate of histogram bin widths. The constant is 1, on the small side, because the
    leak is what this number exists to remove.
    """
    lengths = np.asarray(lengths, np.float64)
    if stratum_size is not None and not (isinstance(stratum_size, int | np.integer) and stratum_size > 0):
        raise ValueError(
            f"stratum_size should be a positive integer value, but got stratum_size={stratum_size!r}"
        )
    if not max_ratio >= 1:
        raise ValueError(f"max_ratio should be >= 1, but got max_ratio={max_ratio!r}")
    size = stratum_size or max(1, int(np.ceil(len(lengths) ** (1 / 3) - 1e-9)))
    values, inverse, counts = np.unique(lengths, return_inverse=True, return_counts=True)
    stratum_of_value = np.empty(len(values), np.int64)
    stratum, shortest, held = -1, np.inf, size  # one pass over the distinct lengths
    for i, (value, count) in enumerate(zip(values.tolist(), counts.tolist(), strict=True)):
        if held >= size or value > max_ratio * shortest:
            stratum, shortest, held = stratum + 1, value, 0
        stratum_of_value[i] = stratum
        held += count
    return stratum_of_value[inverse.reshape(-1)]


def auroc_length_controlled(
    scores, lengths, positive, *, stratum_size: int | None = None, max_ratio: float = 1.1
) -> float:
    """AUROC of `scores` counting only pairs of a positive and a negative episode of matched length.

    Episodes are cut into length strata (`length_strata`, after leaving out NaN scores); inside each
    stratum every (positive, negative) pair is compared as in `auroc` (higher score wins, ties count
    1/2) and the pairs of all strata are pooled: sum of wins / number of within-stratum pairs. A score
    that is only a function of length gets ~0.5 (exactly 0.5 where matched lengths are equal); a
    score that separates the outcomes among episodes of the same length keeps its AUROC. NaN when no
    stratum holds both a positive and a negative episode: the outcomes are then told apart by length
    alone, and whether a score adds anything cannot be measured on these episodes.

    Stratifying was chosen over the residual of final progress after a regression on length: a
    residual needs a model of how progress depends on length (a line leaves curvature that leaks
    length back in), and where length alone separates the outcomes it still returns a number,
    extrapolated; strata return NaN there, which is the honest answer.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    lengths = np.asarray(lengths, np.float64)
    if not scores.shape == lengths.shape == positive.shape:
        raise ValueError(
            f"scores, lengths and positive should have one value per episode, but got shapes "
            f"{scores.shape}, {lengths.shape} and {positive.shape}"
        )
    keep = ~np.isnan(scores)
    scores, lengths, positive = scores[keep], lengths[keep], positive[keep]
    stratum = length_strata(lengths, stratum_size=stratum_size, max_ratio=max_ratio)
    k = int(stratum.max()) + 1 if stratum.size else 0
    n_pos = np.bincount(stratum, positive, minlength=k)
    n_neg = np.bincount(stratum, ~positive, minlength=k)
    pairs = n_pos * n_neg
    if not pairs.sum():
        return float("nan")
    order = np.argsort(stratum, kind="stable")  # strata contiguous for the within-stratum ranks
    s, g = scores[order], stratum[order]
    starts = np.searchsorted(g, np.arange(k))
    ranks = _group_ranks(s, g, starts) + 1.0  # 1-based average ranks within the stratum
    rank_sum = np.bincount(g, np.where(positive[order], ranks, 0.0), minlength=k)
    u = rank_sum - n_pos * (n_pos + 1) / 2.0  # Mann-Whitney U of each stratum
    return float(u[pairs > 0].sum() / pairs.sum())


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
