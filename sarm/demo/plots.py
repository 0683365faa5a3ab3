"""Figures of the demo and the benchmark: an episode's progress and weights, several models on one episode,
success per method, grouped bars per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_curves", "plot_episode_weights", "plot_grouped", "plot_success"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_episode_weights(
    path: str | Path,
    *,
    predicted: np.ndarray,
    truth: np.ndarray,
    weights: np.ndarray,
    mistake_span: tuple[int, int] | None,
    title: str,
) -> Path:
    """Top: SARM progress against ground truth (the injected mistake shaded); bottom: RA-BC weights."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(2, 1))
    frames = np.arange(len(predicted))
    top.plot(frames, truth, color="0.4", lw=2, label="ground truth (simulator state)")
    top.plot(frames, predicted, color="tab:green", lw=2, label="SARM")
    bottom.plot(frames, weights, color="tab:blue", lw=1.5)
    for ax in (top, bottom):
        if mistake_span is not None:
            ax.axvspan(*mistake_span, color="tab:red", alpha=0.15, lw=0)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    top.set_ylabel("progress")
    top.legend(loc="upper left", fontsize=8)
    bottom.set_ylabel("RA-BC weight")
    bottom.set_xlabel("frame" + ("   (red: injected mistake)" if mistake_span else ""))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_success(path: str | Path, rates: Mapping[str, Sequence[float]], title: str) -> Path:
    """Bars of the mean success rate per method, with every seed's rate as a dot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(rates), 3.5))
    for x, (method, values) in enumerate(rates.items()):
        values = np.asarray(values, float)
        ax.bar(x, values.mean(), color="tab:blue" if "rabc" in method.lower().replace("-", "") else "0.6")
        ax.plot(np.full(len(values), x), values, "k.", ms=6)
    ax.set_xticks(range(len(rates)), list(rates), rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("success rate")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(
    path: str | Path,
    *,
    curves: Mapping[str, np.ndarray],
    truth: np.ndarray,
    mistake_span: tuple[int, int] | None,
    title: str,
) -> Path:
    """Several reward models' progress on one episode against ground truth (the injected mistake shaded)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    frames = np.arange(len(truth))
    ax.plot(frames, truth, color="0.3", lw=2.5, label="ground truth (simulator state)")
    styles = ["-", "--", "-.", ":"]
    for i, (name, values) in enumerate(curves.items()):
        ax.plot(frames, values, lw=1.4, ls=styles[i // 10 % len(styles)], color=f"C{i % 10}", label=name)
    if mistake_span is not None:
        ax.axvspan(*mistake_span, color="tab:red", alpha=0.12, lw=0)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("frame" + ("   (red: injected mistake)" if mistake_span else ""))
    ax.set_ylabel("progress")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_grouped(
    path: str | Path,
    values: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] = (0.0, 1.02),
) -> Path:
    """Grouped bars: one group per key of `values` (a task), one bar per series (a method or a model) at
    the mean of its values, each value (a seed) as a dot."""
    plt = _pyplot()
    series = list(dict.fromkeys(name for group in values.values() for name in group))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(2.0 + 0.35 * len(series) * len(values), 4))
    labelled: set[str] = set()
    for j, name in enumerate(series):
        for g, group in enumerate(values.values()):
            if name not in group:
                continue
            vals = np.asarray(group[name], float)
            x = g - 0.4 + width * (j + 0.5)
            if not np.isfinite(vals).any():  # undefined here (e.g. AUROC with one class): no bar
                continue
            label = None if name in labelled else name
            colour = plt.cm.tab20(j % 20) if len(series) > 10 else f"C{j}"
            ax.bar(x, np.nanmean(vals), width * 0.9, color=colour, label=label)
            labelled.add(name)
            ax.plot(np.full(len(vals), x), vals, "k.", ms=3)
    ax.set_xticks(range(len(values)), list(values), fontsize=9)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if labelled:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path
