"""Per-episode PNGs of predicted progress, read from a `sarm_progress.parquet` file (`sarm viz`).

    plot_progress_file("sarm_progress.parquet", "viz/", num_episodes=5, dataset=LeRobotDataset("data/"))
    # -> [viz/episode_000003.png, ...]: progress per head, stage probabilities, a strip of video frames

Each figure shows, from top to bottom: an optional strip of video thumbnails (with matching dashed
markers on the progress axes), one progress panel per head (`progress_<head>`, y in [0, 1], the label
dashed next to the prediction when given) and, when the file has `stage_probs_<head>` columns, one stacked
area panel per head. Only the asked-for episodes and the needed columns are read (pyarrow filters), so a
file of 10^8 rows costs only its row groups that hold those episodes.

matplotlib is an optional extra (`pip install 'sarm-rabc[plot]'`), imported when a figure is drawn. The
figures are `matplotlib.figure.Figure`s drawn on an Agg canvas: pyplot, its global figure list and the
global backend are never touched, and nothing stays alive after a PNG is written.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from rabc import score_files

__all__ = ["plot_episode", "plot_progress_file"]

_PIP = "pip install 'sarm-rabc[plot]'"
_COLORS = {"sparse": "tab:blue", "dense": "tab:orange"}


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"sarm.viz needs matplotlib: {_PIP}") from err
    return Figure, FigureCanvasAgg


def _check_lengths(progress, labels, stage_probs) -> int:
    if not progress:
        raise ValueError("progress should map at least one head to a (T,) array, but got an empty mapping")
    lengths = {head: len(values) for head, values in progress.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"every head's progress should have the same number of frames, but got {lengths}")
    length = next(iter(lengths.values()))
    for name, extra in (("labels", labels), ("stage_probs", stage_probs)):
        for head, values in (extra or {}).items():
            if values is not None and len(values) != length:
                raise ValueError(f"{name}[{head!r}] has {len(values)} frames, but the episode has {length}")
    return length


def _figure(progress, *, labels=None, stage_probs=None, stage_names=None, strip=None, title=None, fps=None):
    """The figure behind `plot_episode` (same arguments, no path): a `matplotlib.figure.Figure`.

    Axes carry labels for tests and callers: "frame" (strip thumbnails), "progress_<head>",
    "stage_probs_<head>".
    """
    Figure, FigureCanvasAgg = _matplotlib()
    length = _check_lengths(progress, labels, stage_probs)
    probs = {h: np.asarray(p, dtype=np.float32) for h, p in (stage_probs or {}).items() if p is not None}
    rows = [("strip", 1.3)] if strip is not None and len(strip[0]) else []
    rows += [(f"progress_{h}", 2.2) for h in progress] + [(f"stage_probs_{h}", 1.6) for h in probs]
    fig = Figure(figsize=(11, sum(r[1] for r in rows) + 0.7), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), 1, height_ratios=[r[1] for r in rows])
    x = np.arange(length)
    marks = np.asarray(strip[0]) if rows[0][0] == "strip" else np.empty(0, np.int64)
    empty = []
    for i, (name, _) in enumerate(rows):
        if name == "strip":
            _draw_strip(fig, grid[i], *strip)
            continue
        ax = fig.add_subplot(grid[i])
        ax.set_label(name)
        head = name.split("_", 2)[-1]
        if name.startswith("progress_"):
            if not _draw_progress(ax, x, head, progress[head], (labels or {}).get(head)):
                empty.append(head)
        else:
            _draw_stages(ax, x, head, probs[head], (stage_names or {}).get(head))
        for m in marks:
            ax.axvline(m, color="0.4", lw=0.8, ls=":")
        ax.set_xlim(0, max(length - 1, 1))
        if fps and i == (rows[0][0] == "strip"):  # seconds on top of the first curves panel
            top = ax.secondary_xaxis("top", functions=(lambda f: f / fps, lambda s: s * fps))
            top.set_xlabel("seconds")
        if i == len(rows) - 1:
            ax.set_xlabel("frame")
    suffix = f" (no prediction: {', '.join(empty)})" if empty else ""
    fig.suptitle(f"{title or 'progress'}{suffix}")
    return fig


def _draw_strip(fig, cell, positions, images) -> None:
    cells = cell.subgridspec(1, len(positions))
    for k, (position, image) in enumerate(zip(positions, images, strict=True)):
        ax = fig.add_subplot(cells[0, k])
        ax.set_label("frame")
        ax.imshow(image)
        ax.set_axis_off()
        ax.set_title(f"frame {int(position)}", fontsize=8)


def _draw_progress(ax, x, head, values, label) -> bool:
    """Prediction (and dashed label) of one head; False when the head has no prediction at all."""
    values = np.asarray(values, dtype=np.float64)
    color = _COLORS.get(head, "tab:green")
    ax.plot(x, values, color=color, lw=1.6, label=f"{head} prediction")
    if label is not None:
        ax.plot(x, np.asarray(label, dtype=np.float64), color=color, lw=1.2, ls="--", label="label")
    ax.set(ylim=(-0.02, 1.02), ylabel=f"progress ({head})")
    ax.grid(alpha=0.3)
    if np.isnan(values).all():
        ax.text(0.5, 0.5, "no prediction", transform=ax.transAxes, ha="center", va="center", color="0.4")
        return False
    ax.legend(loc="upper left", fontsize=8)
    return True


def _draw_stages(ax, x, head, probs, names) -> None:
    k = probs.shape[1]
    names = [f"stage {i}" for i in range(k)] if names is None else list(names)
    if len(names) != k:
        raise ValueError(f"stage_names[{head!r}] has {len(names)} names, but stage_probs has {k} stages")
    ax.stackplot(x, np.nan_to_num(probs).T, labels=names, alpha=0.85)
    ax.set(ylim=(0, 1), ylabel=f"stages ({head})")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def plot_episode(
    path: str | os.PathLike,
    episode: int,
    progress: Mapping[str, np.ndarray],
    *,
    labels: Mapping[str, np.ndarray] | None = None,
    stage_probs: Mapping[str, np.ndarray] | None = None,
    stage_names: Mapping[str, Sequence[str]] | None = None,
    strip: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
    fps: float | None = None,
) -> Path:
    """Write one episode's progress figure to `path` (PNG, atomically) and return the path.

    Args:
        progress: head -> (T,) predicted progress (NaN frames are gaps; all NaN says "no prediction").
        labels: head -> (T,) ground-truth progress, drawn dashed.
        stage_probs: head -> (T, K) stage probabilities, drawn as a stacked area panel per head.
        stage_names: head -> K names for the stage legend (default "stage 0", ...).
        strip: (positions (n,), images uint8 (n, H, W, 3)): thumbnails above the curves, with markers.
        title: figure title (default "episode <episode>").
        fps: adds a seconds axis on top.

    Example:
        >>> t = np.linspace(0, 1, 50)
        >>> plot_episode("ep.png", 3, {"sparse": t}, labels={"sparse": t ** 2})  # doctest: +SKIP
        PosixPath('ep.png')
    """
    path = Path(path)
    fig = _figure(
        progress,
        labels=labels,
        stage_probs=stage_probs,
        stage_names=stage_names,
        strip=strip,
        title=title or f"episode {episode}",
        fps=fps,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        fig.clear()  # no pyplot: dropping the last reference frees the figure
    return path


def _present_episodes(path: Path) -> np.ndarray:
    """Sorted episode indices of the file, one row group at a time (memory bounded by a row group)."""
    found = [np.empty(0, np.int64)]
    for batch in pq.ParquetFile(path).iter_batches(columns=["episode_index"], batch_size=1 << 22):
        found.append(np.unique(batch.column(0).to_numpy()))
    return np.unique(np.concatenate(found))


def _columns(path: Path) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"progress file `{path}` not found; compute it with `sarm progress`")
    schema = pq.read_schema(path)
    names = schema.names
    if score_files.detect(schema.metadata):  # LeRobot's scores file: read through today's layout
        names = score_files.lerobot_view(schema.empty_table(), str(path)).column_names
    heads = [n.removeprefix("progress_") for n in names if n.startswith("progress_")]
    missing = [n for n in ("episode_index", "frame_index") if n not in names]
    if missing or not heads:
        wanted = missing or ["progress_<head>"]
        raise ValueError(
            f"column(s) {wanted} not found in `{path}`; available: {names}; compute the "
            "file with `sarm progress`"
        )
    return heads, [n for n in names if n.startswith("stage_probs_")]


def _stage_array(column) -> np.ndarray | None:
    """list<float32> column of one episode -> (T, K) float32 (NaN rows where null), None if all null."""
    column = column.combine_chunks()
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not valid.any():
        return None
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    out = np.full((len(column), flat.size // valid.sum()), np.nan, np.float32)
    out[valid] = flat.reshape(valid.sum(), -1)
    return out


def _strip(dataset: Any, camera: str, episode: int, length: int, num_frames: int):
    """Evenly spaced frames of the episode, or None (with a warning naming the episode) if decoding fails."""
    wanted = np.unique(np.linspace(0, length - 1, num_frames).round().astype(np.int64))
    try:
        chunks = list(dataset.decode(camera, episode, frames=wanted))
    except Exception as err:
        warnings.warn(
            f"episode {episode}: could not decode camera {camera!r} ({type(err).__name__}: {err}); "
            "plotting it without the frame strip",
            stacklevel=3,
        )
        return None
    if not chunks:
        return None
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _name(dataset: Any) -> str:
    root = getattr(dataset, "root", None)
    return f"`{root}`" if root is not None else type(dataset).__name__


def _check_episode(path: Path, dataset: Any, episode: int, part) -> None:
    """The plotted episode has the same frames (count, global index) in the file and the dataset."""
    if not hasattr(dataset, "episodes") or not hasattr(dataset, "episode_lengths"):
        return  # a minimal dataset (decode + camera_keys only): nothing to compare
    where = np.flatnonzero(np.asarray(dataset.episodes) == episode)
    problem = None
    if not where.size:
        problem = f"episode {episode} is not in the dataset"
    elif int(dataset.episode_lengths[where[0]]) != len(part):
        problem = (
            f"episode {episode} has {len(part)} frames in the progress file but "
            f"{int(dataset.episode_lengths[where[0]])} in the dataset"
        )
    elif "index" in part.column_names and hasattr(dataset, "column"):
        first_file = int(part.column("index")[0].as_py())
        first_data = int(np.min(dataset.column("index", [episode])))
        if first_file != first_data:
            problem = (
                f"episode {episode} starts at global index {first_file} in the progress file but at "
                f"{first_data} in the dataset"
            )
    if problem:
        raise ValueError(
            f"`{path}` does not match the dataset {_name(dataset)}: {problem}; pass the dataset the "
            "progress was computed from"
        )


def plot_progress_file(
    progress_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    episodes: Sequence[int] | None = None,
    num_episodes: int = 5,
    dataset: Any = None,
    camera: str | None = None,
    num_frames: int = 6,
    labels: Mapping[str, Mapping[int, np.ndarray]] | None = None,
    stage_names: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write `out_dir/episode_XXXXXX.png` for some episodes of a progress parquet file; returns the paths.

    Args:
        episodes: episodes to plot; default `num_episodes` drawn by `np.random.default_rng(seed)` among
            those in the file (sorted).
        dataset: anything with `decode(camera, episode_index, frames=...)` yielding (positions, images)
            chunks and `camera_keys` (e.g. `sarm.data.LeRobotDataset`): adds a strip of `num_frames`
            evenly spaced frames, and a seconds axis if it has `fps`.
        camera: the camera to decode (default `dataset.camera_keys[0]`).
        labels: head -> {episode: (T,) ground-truth progress}.
        stage_names: head -> stage names for the stage probability legend.

    Example:
        >>> plot_progress_file("sarm_progress.parquet", "viz/", episodes=[0, 7])  # doctest: +SKIP
        [PosixPath('viz/episode_000000.png'), PosixPath('viz/episode_000007.png')]
    """
    path, out_dir = Path(progress_path), Path(out_dir)
    for name, value in (("num_episodes", num_episodes), ("num_frames", num_frames)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} should be a positive integer value, but got {name}={value}")
    heads, prob_columns = _columns(path)
    present = None
    if episodes is None:
        present = _present_episodes(path)
        size = min(num_episodes, present.size)
        episodes = np.sort(np.random.default_rng(seed).choice(present, size=size, replace=False))
    episodes = list(dict.fromkeys(int(e) for e in episodes))
    cameras = list(getattr(dataset, "camera_keys", None) or [])
    if dataset is not None and camera is None:
        if not cameras:
            raise ValueError(
                f"the dataset {_name(dataset)} has no camera to draw the frame strip from; plot without the "
                "dataset, or choose a camera"
            )
        camera = cameras[0]
    if dataset is not None and cameras and camera not in cameras:
        raise ValueError(f"camera {camera!r} is not in the dataset {_name(dataset)}; its cameras: {cameras}")
    if dataset is not None and present is not None and hasattr(dataset, "episodes"):
        foreign = np.setdiff1d(present, np.asarray(dataset.episodes))
        if foreign.size:
            raise ValueError(
                f"`{path}` does not match the dataset {_name(dataset)}: the progress file holds "
                f"{present.size} episodes, {foreign.size} of them not in the dataset (e.g. "
                f"{foreign[:5].tolist()}); pass the dataset the progress was computed from"
            )
    with_index = dataset is not None and "index" in pq.read_schema(path).names
    columns = ["episode_index", "frame_index", *(["index"] if with_index else [])]
    columns += [*(f"progress_{h}" for h in heads), *prob_columns]
    scores = score_files.detect(pq.read_schema(path).metadata) is not None
    table = pq.read_table(
        path, columns=None if scores else columns, filters=[("episode_index", "in", episodes)]
    )
    if scores:
        table = score_files.lerobot_view(table, str(path)).select(columns)
    episode_column = table.column("episode_index").to_numpy()
    unknown = sorted(set(episodes) - set(np.unique(episode_column).tolist()))
    if unknown:
        present = _present_episodes(path)
        raise ValueError(
            f"episode(s) {unknown[:20]} not in `{path}`; it holds {present.size} episodes, e.g. "
            f"{present[:10].tolist()}"
        )
    paths = []
    for episode in episodes:
        rows = np.flatnonzero(episode_column == episode)
        rows = rows[np.argsort(table.column("frame_index").take(rows).to_numpy(), kind="stable")]
        part = table.take(rows)
        if dataset is not None:
            _check_episode(path, dataset, episode, part)
        progress = {h: part.column(f"progress_{h}").to_numpy().astype(np.float32) for h in heads}
        probs = {c.removeprefix("stage_probs_"): _stage_array(part.column(c)) for c in prob_columns}
        truth = {h: lab[episode] for h, lab in (labels or {}).items() if episode in lab}
        strip = None if dataset is None else _strip(dataset, camera, episode, len(rows), num_frames)
        paths.append(
            plot_episode(
                out_dir / f"episode_{episode:06d}.png",
                episode,
                progress,
                labels=truth,
                stage_probs=probs,
                stage_names=stage_names,
                strip=strip,
                fps=getattr(dataset, "fps", None),
            )
        )
    return paths
