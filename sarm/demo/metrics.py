"""Reward-model metrics of the benchmark: demo MSE, success/failure AUROC and the paper's success rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["auroc", "demo_mse", "paper_rule", "success_scores"]


def demo_mse(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], every: int = 1) -> float:
    """Mean squared error of normalised progress over episodes, on every `every`-th frame (paper: 10)."""
    if len(predicted) != len(truth) or not predicted:
        raise ValueError(f"need matching, non-empty episode lists, got {len(predicted)} and {len(truth)}")
    errors = []
    for p, t in zip(predicted, truth, strict=True):
        if p.shape != t.shape:
            raise ValueError(f"an episode's prediction has shape {p.shape} but its truth {t.shape}")
        errors.append((np.asarray(p, np.float64)[::every] - np.asarray(t, np.float64)[::every]) ** 2)
    return float(np.concatenate(errors).mean())


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties 1/2."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    pos, neg = scores[positive], scores[~positive]
    if not pos.size or not neg.size:
        return float("nan")  # undefined without both classes
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def success_scores(progress: Sequence[np.ndarray]) -> np.ndarray:
    """One score per episode for AUROC: the final predicted progress."""
    return np.array([float(np.asarray(p)[-1]) for p in progress])


def paper_rule(progress: np.ndarray, final: float = 0.8, last_third: float = 0.6) -> bool:
    """The SARM paper's rule: success if final progress > `final` and the last third's mean > `last_third`."""
    progress = np.asarray(progress, np.float64)
    tail = progress[len(progress) - max(1, len(progress) // 3) :]
    return bool(progress[-1] > final and tail.mean() > last_third)
