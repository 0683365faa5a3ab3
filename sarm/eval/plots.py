"""`sarm eval --plots DIR`: the three figures that tell a user whether to trust a reward model.

    write_plots(table, "sparse", report, "eval_plots/", success={0: True, 1: False}, labels=None)
    # -> [eval_plots/voc_histogram.png, eval_plots/final_progress.png, eval_plots/worst_episodes.png]

- voc_histogram.png: VOC per episode, stacked by outcome (successful vs not when outcomes are known), with the
  verdict's thresholds (`VOC_NOISE`, `VOC_GOOD`) as vertical lines;
- final_progress.png: final progress by outcome (successful vs not: failure or partial; all episodes
  when outcomes are unknown), with the paper's rule threshold (0.8) and the AUROC in the title;
- worst_episodes.png: progress curves of the episodes with the lowest VOC (up to 6), the label
  progress dashed when labels are given.

matplotlib is an optional extra (`pip install 'sarm-rabc[plot]'`); figures are drawn on an Agg canvas
without pyplot and written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rabc.files import atomic_write
from rabc.progress_io import ProgressTable
from sarm.eval.report import VOC_GOOD, VOC_NOISE, EpisodeValues, episode_values

__all__ = ["write_plots"]

_OK, _BAD, _ALL = "tab:green", "tab:red", "tab:blue"


def _figure(**kw):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("sarm eval --plots needs matplotlib: pip install 'sarm-rabc[plot]'") from err
    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        fig.clear()


def _groups(ev: EpisodeValues, values: np.ndarray, success) -> list[tuple[str, np.ndarray, str]]:
    """(legend label, finite values, colour) per outcome group; one group of all when none is known."""
    if not success:
        v = values[np.isfinite(values)]
        return [(f"all episodes (n={v.size})", v, _ALL)]
    ok = np.array([success.get(e) is True for e in ev.episodes.tolist()])
    bad = np.array([success.get(e) is False for e in ev.episodes.tolist()])
    out = []
    for name, m, colour in (("successful", ok, _OK), ("not successful", bad, _BAD)):
        v = values[m & np.isfinite(values)]
        out.append((f"{name} (n={v.size})", v, colour))
    unknown = ~ok & ~bad & np.isfinite(values)
    if unknown.any():
        out.append((f"outcome unknown (n={int(unknown.sum())})", values[unknown], "tab:gray"))
    return out


def _histogram(path: Path, groups, bins, xlabel: str, title: str, lines) -> Path:
    fig = _figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    names, values, colours = zip(*groups, strict=True)
    ax.hist(list(values), bins=bins, stacked=True, color=list(colours), label=list(names), edgecolor="white")
    for x, text, style in lines:
        ax.axvline(x, color="black", linestyle=style, linewidth=1, label=text)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("episodes")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return _save(fig, path)


def _worst(path: Path, table, head, ev: EpisodeValues, success, labels, worst: int) -> Path:
    order = np.argsort(np.where(np.isnan(ev.voc), -np.inf, ev.voc), kind="stable")[:worst]
    cols = min(3, max(1, len(order)))
    rows = max(1, -(-len(order) // cols))
    fig = _figure(figsize=(4.2 * cols, 3.0 * rows + 0.6))
    p = table.column(head)
    for k, i in enumerate(order.tolist()):
        ax = fig.add_subplot(rows, cols, k + 1)
        rows_i = slice(int(ev.starts[i]), int(ev.ends[i]))
        frames = table.frame_index[rows_i]
        ax.plot(frames, p[rows_i], color=_ALL, label="predicted")
        if labels is not None:
            ax.plot(frames, labels[rows_i], color="black", linestyle="--", linewidth=1, label="label")
        episode = int(ev.episodes[i])
        known = (success or {}).get(episode)
        outcome = {True: "success", False: "not successful"}.get(known, "outcome unknown")
        voc = "n/a" if np.isnan(ev.voc[i]) else f"{ev.voc[i]:.2f}"
        ax.set_title(f"episode {episode}: VOC {voc}, {outcome}", fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("frame")
        ax.set_ylabel("progress")
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"the {len(order)} episodes with the lowest VOC ({head} progress)")
    fig.tight_layout()
    return _save(fig, path)


def write_plots(
    table: ProgressTable,
    head: str,
    report: Mapping,
    out_dir,
    *,
    success: Mapping[int, bool] | None = None,
    labels: np.ndarray | None = None,
    worst: int = 6,
) -> list[Path]:
    """Write the three PNGs of the module docstring into `out_dir` and return their paths. `report` is
    `evaluate`'s output for the same table and head (its VOC mean, AUROC and the rule go in titles)."""
    out = Path(out_dir)
    ev = episode_values(table, head)
    voc_mean, on, auroc = report["voc"]["mean"], report["voc"]["on"], report["auroc"]
    mean = "n/a" if voc_mean is None else f"{voc_mean:.2f}"
    rule = report["paper_rule_accuracy"]
    final_title = "final progress by outcome" if success else "final progress (outcomes unknown)"
    final_title += "" if auroc is None else f": AUROC {auroc:.2f}"
    final_title += "" if rule is None else f", paper-rule accuracy {rule:.2f}"
    paths = [
        _histogram(
            out / "voc_histogram.png",
            _groups(ev, ev.voc, success),
            np.linspace(-1, 1, 41),
            "VOC (Spearman of progress vs time, per episode)",
            f"VOC per episode: mean {mean} on {on}",
            [(VOC_NOISE, f"noise below {VOC_NOISE}", ":"), (VOC_GOOD, f"good from {VOC_GOOD}", "--")],
        ),
        _histogram(
            out / "final_progress.png",
            _groups(ev, ev.final, success),
            np.linspace(0, 1, 26),
            "final progress (last frame of the episode)",
            "final progress by outcome"
            + ("" if auroc is None else f": AUROC {auroc:.2f}")
            + (
                ""
                if report["paper_rule_accuracy"] is None
                else f", rule accuracy {report['paper_rule_accuracy']:.2f}"
            ),
            [(0.8, "paper's rule: final > 0.8", "--")],
        ),
        _worst(out / "worst_episodes.png", table, head, ev, success, labels, worst),
    ]
    return paths
