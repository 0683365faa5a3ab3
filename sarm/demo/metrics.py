"""The benchmark's reward-model metrics on lists of episodes: VOC, demo MSE, success AUROC, the paper's rule.

A thin adapter: the arithmetic is `rabc.metrics` (the one implementation `rabc episodes` and
`rabc curate` use too); this module only turns a list of per-episode arrays into rows and runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rabc import metrics

__all__ = ["auroc", "demo_mse", "paper_rule", "success_scores", "voc"]

auroc = metrics.auroc


def _rows(episodes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.array([len(e) for e in episodes], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.concatenate([np.asarray(e, np.float64) for e in episodes]), starts, starts + lengths


def demo_mse(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], every: int = 1) -> float:
    """Mean squared error of normalised progress over episodes, on every `every`-th frame (paper: 10)."""
    if len(predicted) != len(truth) or not predicted:
        raise ValueError(f"need matching, non-empty episode lists, got {len(predicted)} and {len(truth)}")
    for p, t in zip(predicted, truth, strict=True):
        if np.shape(p) != np.shape(t):
            raise ValueError(f"an episode's prediction has shape {np.shape(p)} but its truth {np.shape(t)}")
    p, starts, ends = _rows(predicted)
    return metrics.demo_mse(p, _rows(truth)[0], starts, ends, every)


def success_scores(progress: Sequence[np.ndarray]) -> np.ndarray:
    """One score per episode for AUROC: the final predicted progress."""
    return metrics.paper_rule(*_rows(progress))[1]


def paper_rule(progress: np.ndarray, final: float = 0.8, last_third: float = 0.6) -> bool:
    """The SARM paper's rule: success if final progress > `final` and the last third's mean > `last_third`."""
    return bool(metrics.paper_rule(*_rows([progress]), final, last_third)[0][0])


def voc(predicted: Sequence[np.ndarray]) -> float:
    """Value-order correlation (`rabc.metrics.voc`), mean over the episodes where it is defined."""
    if not predicted:
        raise ValueError("need a non-empty list of episodes")
    rhos = metrics.voc(*_rows(predicted))
    return float(np.nanmean(rhos)) if np.isfinite(rhos).any() else float("nan")
