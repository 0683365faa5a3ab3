"""Is kappa right for this dataset? Delta statistics, weight fractions, a verdict and kappa suggestions.

LeRobot's docs call a mean weight of 0.3-0.8 healthy: near 1 every chunk gets full weight and RA-BC
is plain behaviour cloning (kappa too low); near 0 it throws away almost all data. `diagnose` measures
where a dataset stands and which kappa moves it where, without training anything.

Before judging kappa, the verdict checks that the deltas carry a signal at all (first match wins):

* `unknown_progress`: no frame has a known delta (all progress NaN): every weight is the fallback.
* `chunk_too_long`: the chunk size is at least the longest episode, so every delta is clamped at the
  episode end and measures progress to the end of the episode, not over a chunk.
* `no_progress`: the mean delta is <= 0: progress does not increase on average over a chunk.
* `no_signal`: the progress looks like noise, by two rules that must both hold: (1) episodes do not
  rise: the median over episodes of the net rise is below `MIN_EPISODE_RISE` (0.1, a tenth of the
  0 -> 1 a successful demonstration makes), and (2) no positive mass beyond noise: under
  `MIN_RISE_BEYOND_NOISE` (10%) of the deltas exceed the noise level |q05| (the magnitude of the 5%
  most negative delta); deltas of pure noise are symmetric, so about 5% exceed it. The net rise of an
  episode of L frames is `sum(deltas) / min(chunk, L)`, which equals progress at its last frame minus
  the mean progress of its first min(chunk, L) frames (the sum telescopes; NaN deltas are skipped).

Then the mean weight decides: `kappa_too_low` (>= 0.95), `discards_most` (<= 0.1), `mild` (> 0.8),
`selective` (< 0.3), else `healthy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rabc.files import atomic_write, check_output_file
from rabc.progress_io import episode_runs
from rabc.weights import DEFAULT_TARGET_MEAN_WEIGHT, RABCWeights

__all__ = ["Diagnosis", "diagnose"]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HEALTHY = (0.3, 0.8)
MIN_EPISODE_RISE = 0.1  # no_signal rule 1: median net progress rise of an episode below this
MIN_RISE_BEYOND_NOISE = 0.1  # no_signal rule 2: fraction of deltas above |q05| below this (noise: ~0.05)


@dataclass
class Diagnosis:
    """The result of `diagnose`. `metrics` is a flat `dict[str, float]` for any logger."""

    metrics: dict[str, float]
    kappa_suggestions: dict[str, tuple[float, float]]  # name -> (kappa, mean weight it gives)
    verdict: str  # "healthy" | "kappa_too_low" | "mild" | "selective" | "discards_most" | "no_progress"
    # | "no_signal" | "chunk_too_long" | "unknown_progress" (see the module docstring)
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
    if plot is not None:
        check_output_file(plot, "plot")  # before any compute
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
    if verdict != "chunk_too_long" and metrics["clamped_fraction"] > 0.5:
        notes.append(
            f"{metrics['clamped_fraction']:.0%} of the deltas are clamped at the episode end (chunk size "
            f"{w.chunk_size}, longest episode {int(metrics['max_episode_frames'])} frames)"
        )
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
        **_signal_metrics(w, finite, q[1]),
    }
    return metrics


def _signal_metrics(w: RABCWeights, finite: np.ndarray, q05: float) -> dict[str, float]:
    """Clamping, per-episode net rise and positive mass beyond noise (see the module docstring)."""
    _, starts, ends = episode_runs(w.episode_index)
    rows = ends - starts
    spans = w.index[ends - 1] - w.index[starts] + 1  # frames of each episode, gaps included
    last = np.repeat(w.index[ends - 1], rows)
    clamped = w.index + w.chunk_size > last
    known = ~np.isnan(w.deltas)
    sums = np.add.reduceat(np.where(known, w.deltas, 0.0), starts)
    counts = np.add.reduceat(known.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        rise = sums / counts * rows / np.minimum(w.chunk_size, rows)  # mean delta scaled up to the sum
    noise = max(-q05, 0.0) if finite.size else np.nan
    return {
        "max_episode_frames": float(spans.max()),
        "clamped_fraction": float((clamped & known).sum() / max(known.sum(), 1)),
        "median_episode_rise": float(np.median(rise[counts > 0])) if finite.size else np.nan,
        "rise_beyond_noise_fraction": float((finite > noise).mean()) if finite.size else np.nan,
    }


def _verdict(m: dict[str, float], higher_kappa: float) -> tuple[str, str]:
    mean_weight = m["mean_weight"]
    if m["num_fallback"] == m["num_frames"]:
        return "unknown_progress", (
            f"no frame has a known progress delta: the progress values are all NaN (or every future "
            f"frame is absent), so every weight is the fallback {mean_weight:.3g}; recompute progress "
            "with a working reward model"
        )
    if m["clamped_fraction"] == 1:
        return "chunk_too_long", (
            f"the chunk size ({int(m['chunk_size'])} frames) is at least the longest episode "
            f"({int(m['max_episode_frames'])} frames): every delta is clamped at the episode end, so "
            "each weight measures progress to the end of the episode, not over an action chunk; use "
            "the policy's chunk size (shorter than the episodes)"
        )
    if m["delta_mean"] <= 0:
        return "no_progress", (
            "progress does not increase on average over a chunk; check the reward model and the head "
            "before trusting any weights"
        )
    if (
        m["median_episode_rise"] < MIN_EPISODE_RISE
        and m["rise_beyond_noise_fraction"] < MIN_RISE_BEYOND_NOISE
    ):
        return "no_signal", (
            f"the progress looks like noise: the median episode rises by {m['median_episode_rise']:.3g} "
            f"(under {MIN_EPISODE_RISE}) and only {m['rise_beyond_noise_fraction']:.1%} of the deltas "
            f"exceed the noise level |q05| = {abs(m['delta_q05']):.3g} (pure noise: ~5%); the weights "
            "would be random: check the reward model (training, checkpoint, head) before using them"
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
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix[1:] or "png"))
    finally:
        plt.close(fig)
