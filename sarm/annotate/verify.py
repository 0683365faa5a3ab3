"""Check annotations by eye (LeRobot's Step 2): per-episode PNGs of boundary frames and a timeline.

    paths = plot_annotations(ds, summary.results, camera, "viz/", num_episodes=5)
    print(explore_command(dataset, annotations))    # `sarm explore DATASET --annotations ...`

Each figure shows, per head, a row of frames (the first frame of every subtask and the episode's last
frame, titled with the subtask and its time) and a timeline of coloured spans over the episode's frames,
with the boundaries marked. matplotlib is needed (`pip install 'sarm-rabc[plot]'`); figures are drawn on
an Agg canvas, pyplot is never touched.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["explore_command", "plot_annotations", "plot_episode_annotations"]


def plot_episode_annotations(images: Mapping[int, np.ndarray], heads: Mapping[str, dict], length: int,
                             fps: float, title: str, path: str | os.PathLike) -> Path:  # fmt: skip
    """Write one PNG; `images` maps episode-local frames to uint8 RGB frames, `heads` are result columns."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("the annotation PNGs need matplotlib: pip install 'sarm-rabc[plot]'") from err
    rows = list(heads.items())
    width = max(len(h["names"]) + 1 for _, h in rows)
    fig = Figure(figsize=(max(8.0, 1.8 * width), 2.6 * len(rows) + 0.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 * len(rows), width, height_ratios=[3, 1] * len(rows), hspace=0.8,
                            top=1 - 0.9 / fig.get_figheight(), bottom=0.5 / fig.get_figheight())  # fmt: skip
    colors = [f"C{i}" for i in range(10)]
    for r, (head, h) in enumerate(rows):
        shown = [*zip(h["names"], h["start_frames"], strict=True), ("end", length - 1)]
        for c, (name, frame) in enumerate(shown):
            ax = fig.add_subplot(grid[2 * r, c])
            ax.imshow(images[frame])
            ax.set_title(f"{name}\nframe {frame}, t={frame / fps:.2f} s", fontsize=8,
                         color=colors[c % 10] if c < len(shown) - 1 else "black")  # fmt: skip
            ax.axis("off")
        line = fig.add_subplot(grid[2 * r + 1, :])
        spans = list(zip(h["names"], h["start_frames"], h["end_frames"], strict=True))
        for i, (name, s, e) in enumerate(spans):
            e = e + 1 if i == len(spans) - 1 or spans[i + 1][1] > e else e  # a shared boundary frame once
            line.barh(0, e - s, left=s, color=colors[i % 10], alpha=0.8, edgecolor="white")
            line.text((s + e) / 2, 0, name, ha="center", va="center", fontsize=8, color="white")
            line.axvline(s, color="black", lw=0.8, ls="--")
        line.set_xlim(0, length)
        line.set_yticks([0], [head])
        line.set_xlabel(f"frame (of {length}, {fps:g} fps)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)
    return path


def plot_annotations(ds, results: Mapping[int, dict], camera: str, out_dir: str | os.PathLike,
                     num_episodes: int = 5) -> list[Path]:  # fmt: skip
    """PNGs `out_dir/episode_XXXXXX.png` for the first `num_episodes` annotated episodes of `results`."""
    done = [e for e, r in sorted(results.items()) if r.get("status") == "annotated"][: max(num_episodes, 0)]
    paths = []
    for ep in done:
        heads = results[ep]["heads"]
        p = ds.episode_position(ep)
        length = int(ds.episode_lengths[p])
        wanted = sorted({length - 1, *(f for h in heads.values() for f in h["start_frames"])})
        images = {}
        for positions, frames in ds.decode(camera, ep, wanted):
            images.update(zip(positions.tolist(), frames, strict=True))
        title = f"episode {ep}: {ds.tasks[p]} ({camera})"
        paths.append(plot_episode_annotations(images, heads, length, ds.fps, title,
                                              Path(out_dir) / f"episode_{ep:06d}.png"))  # fmt: skip
    return paths


def explore_command(dataset: str, annotations: str | None = None, dense: str | None = None) -> str:
    """The `sarm explore` command that opens the dataset beside these annotations."""
    cmd = ["sarm", "explore", str(dataset), "--annotations", str(annotations or dataset)]
    if dense:
        cmd += ["--dense-annotations", str(dense)]
    return shlex.join(cmd)
