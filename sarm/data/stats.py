"""Dataset statistics in LeRobot's `stats.json` form: per-episode stats, their pooling, and quantiles.

Used by `sarm.data.writer`. Vectors get min / max / mean / std / count and q01-q99 per dimension; images get
per-channel stats in [0, 1] of shape (3, 1, 1) over LeRobot's frame and pixel sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sarm.data.layout import column_to_numpy

__all__ = ["QUANTILES", "aggregate_stats", "column_stats", "data_quantiles", "image_stats", "level_quantiles"]

_BINS = 5000  # histogram bins per dimension for the dataset's quantiles, as LeRobot's RunningQuantileStats
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def column_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-episode stats of a `(T,)` or `(T, k)` column: shape (k,) ((1,) for a scalar)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    return out | dict(zip(QUANTILES, np.quantile(x, list(QUANTILES.values()), axis=0), strict=True))


def image_stats(frames: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-channel stats in [0, 1], shape (3, 1, 1), and the (3, 256) level counts, over LeRobot's sample:
    evenly spaced frames, every `step`-th pixel of images 300 pixels or larger (about 150 pixels wide)."""
    t, size = len(frames), max(frames.shape[1:3])
    k = max(min(t, 100), min(int(t**0.75), 10_000))  # LeRobot's estimate_num_samples
    step = size // 150 if size >= 300 else 1  # LeRobot's auto_downsample_height_width
    sample = frames[np.round(np.linspace(0, t - 1, k)).astype(int), ::step, ::step]
    hist = np.stack([np.bincount(sample[..., c].reshape(-1), minlength=256) for c in range(3)])
    level, n = np.arange(256) / 255.0, hist.sum(1)
    mean = hist @ level / n
    out = {"min": level[(hist > 0).argmax(1)], "max": level[255 - (hist[:, ::-1] > 0).argmax(1)]}
    out |= {"mean": mean, "std": np.sqrt(np.maximum(hist @ level**2 / n - mean**2, 0.0))}
    out |= level_quantiles(hist)
    return {s: v.reshape(3, 1, 1) for s, v in out.items()} | {"count": np.array([k])}, hist


def level_quantiles(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Per channel, the level in [0, 1] where the cumulative count of a (3, 256) histogram reaches q."""
    cdf = np.cumsum(hist, 1)
    return {
        key: np.array([np.searchsorted(c, q * c[-1]) for c in cdf]) / 255.0 for key, q in QUANTILES.items()
    }


def aggregate_stats(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Pool per-episode min, max, mean, std and count as LeRobot's `aggregate_stats` (parallel variance)."""
    count = np.array([s["count"][0] for s in stats], np.float64)
    w = (count / count.sum()).reshape(-1, *[1] * stats[0]["mean"].ndim)
    means, stds = np.stack([s["mean"] for s in stats]), np.stack([s["std"] for s in stats])
    mean = (w * means).sum(0)
    out = {"min": np.min([s["min"] for s in stats], 0), "max": np.max([s["max"] for s in stats], 0)}
    out |= {"mean": mean, "std": np.sqrt((w * (stds**2 + (means - mean) ** 2)).sum(0))}
    return out | {"count": np.array([int(count.sum())])}


def data_quantiles(data_dir: Path, names: list[str], stats: dict) -> dict[str, dict[str, np.ndarray]]:
    """Quantiles of each data column over all frames: one pass over the data files into a histogram of
    `_BINS` bins per dimension between the dataset's min and max (error below (max - min) / _BINS).

    Pooling the episodes' quantiles, as LeRobot's `aggregate_stats` does, would give q01 == q99 for a
    value that is constant within episodes but differs between them (a goal position, say).
    """
    lo = {n: stats[n]["min"] for n in names}
    width = {n: np.where(stats[n]["max"] > lo[n], (stats[n]["max"] - lo[n]) / _BINS, 1.0) for n in names}
    hist = {n: np.zeros(len(lo[n]) * _BINS, np.int64) for n in names}
    for path in sorted(Path(data_dir).rglob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 16, columns=names):
            for n in names:
                x = column_to_numpy(batch.column(n), n, path).reshape(batch.num_rows, -1)
                b = np.clip(((x - lo[n]) / width[n]).astype(np.int64), 0, _BINS - 1)
                hist[n] += np.bincount((b + np.arange(x.shape[1]) * _BINS).ravel(), minlength=hist[n].size)
    out = {}
    for n in names:
        h = hist[n].reshape(-1, _BINS)  # (d, bins)
        cdf, rows = np.cumsum(h, 1), np.arange(len(h))
        out[n] = {}
        for key, q in QUANTILES.items():
            target = q * cdf[:, -1]
            b = (cdf < target[:, None]).sum(1)  # the bin where the cumulative count reaches q
            below = np.where(b > 0, cdf[rows, np.maximum(b - 1, 0)], 0)
            inside = (target - below) / np.maximum(h[rows, b], 1)  # linear inside that bin
            out[n][key] = np.where(stats[n]["max"] > lo[n], lo[n] + (b + inside) * width[n], lo[n])
    return out
