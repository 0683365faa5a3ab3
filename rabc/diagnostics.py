"""Is kappa right for this dataset? Delta statistics, weight fractions, a verdict and kappa suggestions.

LeRobot's docs call a mean weight of 0.3-0.8 healthy: near 1 every chunk gets full weight and RA-BC
is plain behaviour cloning (kappa too low); near 0 it throws away almost all data. `diagnose` measures
where a dataset stands and which kappa moves it where, without training anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rabc.progress_io import episode_runs
from rabc.weights import DEFAULT_TARGET_MEAN_WEIGHT, RABCWeights

__all__ = ["Diagnosis", "diagnose"]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HEALTHY = (0.3, 0.8)


@dataclass
class Diagnosis:
    """The result of `diagnose`. `metrics` is a flat `dict[str, float]` for any logger."""

    metrics: dict[str, float]
    kappa_suggestions: dict[str, tuple[float, float]]  # name -> (kappa, mean weight it gives)
    verdict: str  # "healthy" | "kappa_too_low" | "mild" | "selective" | "discards_most" | "no_progress"
    advice: str
    worst_episodes: list[tuple[int, int, int]]  # (episode, zero-weight frames, frames)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        m = self.metrics
        rows = [
            ("frames / episodes", f"{int(m['num_frames']):,} / {int(m['num_episodes']):,}"),
            ("chunk size, kappa", f"{int(m['chunk_size'])}, {m['kappa']:.4g}"),
            ("delta mean / std", f"{m['delta_mean']:.4g} / {m['delta_std']:.4g}"),
            (
                "delta q01 q05 q25 q50",
                " ".join(f"{m[f'delta_q{round(q * 100):02d}']:.3g}" for q in QUANTILES[:4]),
            ),
            (
                "delta q75 q95 q99",
                " ".join(f"{m[f'delta_q{round(q * 100):02d}']:.3g}" for q in QUANTILES[4:]),
            ),
            ("negative deltas", f"{m['negative_fraction']:.1%}"),
            ("mean weight", f"{m['mean_weight']:.3f}"),
            (
                "zero / soft / full",
                f"{m['zero_fraction']:.1%} / {m['soft_fraction']:.1%} / {m['full_fraction']:.1%}",
            ),
            ("fallback (unknown delta)", f"{int(m['num_fallback']):,} frames"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = ["RA-BC diagnostics", *(f"  {name:<{width}}  {value}" for name, value in rows)]
        lines += [
            "",
            f"verdict: {self.verdict}: {self.advice}",
            "",
            "kappa suggestions (kappa -> mean weight):",
        ]
        lines += [f"  {name:<24} {k:>10.4g} -> {mw:.3f}" for name, (k, mw) in self.kappa_suggestions.items()]
        if self.worst_episodes:
            lines += ["", "episodes with the most zero-weight frames (episode: zero / frames):"]
            lines += [f"  {e}: {z} / {n}" for e, z, n in self.worst_episodes]
        lines += [f"note: {n}" for n in self.notes]
        if self.plot is not None:
            lines += ["", f"plot: {self.plot}"]
        return "\n".join(lines)


def diagnose(
    source,
    chunk_size: int | None = None,
    *,
    kappa: float | str | None = None,
    head: str = "sparse",
    target_mean_weight: float = DEFAULT_TARGET_MEAN_WEIGHT,
    top_episodes: int = 5,
    plot=None,
    **weight_options,
) -> Diagnosis:
    """Diagnose RA-BC weights, from an `RABCWeights` or a progress file/table (then `chunk_size` is needed).

    Args:
        kappa: evaluate this kappa (float or "auto") instead of the one the weights were built with.
        target_mean_weight: the mean weight the "target" kappa suggestion aims at.
        plot: a PNG path: histogram of deltas with the kappa lines, and histogram of weights.
        weight_options: passed to `RABCWeights.from_progress` (epsilon, fallback_weight, stats, groups).
    """
    if isinstance(source, RABCWeights):
        w = source if kappa is None else source.with_kappa(kappa, target_mean_weight)
    else:
        if chunk_size is None:
            raise ValueError("diagnose needs chunk_size (the policy's action chunk) to read a progress file")
        if kappa is not None:
            weight_options["kappa"] = kappa
        w = RABCWeights.from_progress(
            source, chunk_size, head=head, target_mean_weight=target_mean_weight, **weight_options
        )

    metrics = _metrics(w)
    suggestions = {
        "mean": w.delta_mean,
        "mean + std": w.delta_mean + w.delta_std,
        "mean + 2 std": w.delta_mean + 2 * w.delta_std,
        f"target mean weight {target_mean_weight:g}": w.kappa_for_mean_weight(target_mean_weight),
    }
    kappa_suggestions = {name: (k, w.with_kappa(k).mean_weight) for name, k in suggestions.items()}
    verdict, advice = _verdict(metrics, suggestions["mean + std"])
    notes = []
    if w.group_stats:
        notes.append(
            f"statistics per group: {len(w.group_stats)} groups; delta mean/std above are the pooled values"
        )
    result = Diagnosis(
        metrics, kappa_suggestions, verdict, advice, _worst_episodes(w, top_episodes), notes=notes
    )
    if plot is not None:
        result.plot = _plot(w, kappa_suggestions, Path(plot))
    return result


def _metrics(w: RABCWeights) -> dict[str, float]:
    finite = w.deltas[~np.isnan(w.deltas)]
    n = len(w)
    q = np.quantile(finite, QUANTILES) if finite.size else np.full(len(QUANTILES), np.nan)
    zero = int((w.weights == 0).sum())
    full = int((w.weights == 1).sum())
    metrics = {
        "num_frames": float(n),
        "num_episodes": float(len(episode_runs(w.episode_index)[0])),
        "chunk_size": float(w.chunk_size),
        "kappa": float(w.kappa),
        "delta_mean": float(w.delta_mean),
        "delta_std": float(w.delta_std),
        "delta_min": float(finite.min()) if finite.size else np.nan,
        "delta_max": float(finite.max()) if finite.size else np.nan,
        **{f"delta_q{round(p * 100):02d}": float(v) for p, v in zip(QUANTILES, q, strict=True)},
        "negative_fraction": float((finite < 0).sum() / n),
        "mean_weight": w.mean_weight,
        "zero_fraction": zero / n,
        "full_fraction": full / n,
        "soft_fraction": (n - zero - full) / n,
        "num_fallback": float(w.num_fallback),
    }
    return metrics


def _verdict(m: dict[str, float], higher_kappa: float) -> tuple[str, str]:
    mean_weight = m["mean_weight"]
    if m["delta_mean"] <= 0:
        return "no_progress", (
            "progress does not increase on average over a chunk; check the reward model and the head "
            "before trusting any weights"
        )
    if mean_weight >= 0.95:
        return "kappa_too_low", (
            f"mean weight {mean_weight:.2f}: almost every chunk gets full weight, so RA-BC is plain BC. "
            f"Raise kappa, e.g. to {higher_kappa:.4g} (delta mean + std) or use kappa='auto'"
        )
    if mean_weight <= 0.1:
        return "discards_most", (
            f"mean weight {mean_weight:.2f}: RA-BC discards almost all data. Lower kappa, or check that "
            "the progress is not mostly flat or decreasing"
        )
    if mean_weight > HEALTHY[1]:
        return "mild", f"mean weight {mean_weight:.2f}: little is filtered; a higher kappa is more selective"
    if mean_weight < HEALTHY[0]:
        return "selective", f"mean weight {mean_weight:.2f}: very selective; a lower kappa keeps more data"
    return "healthy", f"mean weight {mean_weight:.2f} is in the 0.3-0.8 range LeRobot's docs call healthy"


def _worst_episodes(w: RABCWeights, top: int) -> list[tuple[int, int, int]]:
    episodes, starts, ends = episode_runs(w.episode_index)  # rows are contiguous per episode
    zeros = np.add.reduceat((w.weights == 0).astype(np.int64), starts)
    frames = ends - starts
    order = np.lexsort((-zeros / frames, -zeros))[:top]
    return [(int(episodes[i]), int(zeros[i]), int(frames[i])) for i in order if zeros[i] > 0]


def _plot(w: RABCWeights, suggestions: dict[str, tuple[float, float]], path: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("the diagnostics plot needs matplotlib: pip install 'sarm-rabc[plot]'") from err
    finite = w.deltas[~np.isnan(w.deltas)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    left.hist(finite, bins=120, color="0.55")
    left.axvline(0.0, color="black", lw=1, label="0 (below: weight 0)")
    left.axvline(w.kappa, color="tab:red", lw=2, label=f"kappa = {w.kappa:.4g} (in use)")
    for (name, (k, mw)), color in zip(
        suggestions.items(), ("tab:blue", "tab:green", "tab:purple", "tab:orange"), strict=False
    ):
        left.axvline(k, color=color, ls="--", lw=1.2, label=f"{name}: {k:.3g} (mean w {mw:.2f})")
    left.set(
        title=f"progress delta over {w.chunk_size} frames", xlabel="delta", ylabel="frames", yscale="log"
    )
    left.legend(fontsize=8)
    right.hist(w.weights, bins=50, range=(0, 1), color="tab:red")
    right.set(
        title=f"RA-BC weights (mean {w.mean_weight:.3f})", xlabel="weight", ylabel="frames", yscale="log"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
