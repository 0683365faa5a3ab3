"""Write LeRobot datasets (codebase v3.0) episode by episode, with SARM annotation columns.

    cam = "observation.images.top"
    with LeRobotWriter(root, fps=30, state_dim=4, action_dim=4, cameras={cam: (64, 64)}) as w:
        w.add_episode(state=s, action=a, task="pick the cube", images={cam: frames},  # (T, 4), (T, 64, 64, 3)
                      annotations={"sparse": (["reach", "grasp"], [0, 40], [39, 79])})
    ds = sarm.data.open_dataset(root)     # or lerobot's LeRobotDataset("local/name", root=root)

Each episode is written when it is added: its rows become one row group of the open data file, its frames
are encoded into one open mp4 per camera. A file is closed once it has reached its size limit (episodes
are never split), and the next file of `data/chunk-XXX/file-YYY.parquet` or
`videos/{camera}/chunk-XXX/file-YYY.mp4` is opened. Only per-episode metadata (lengths, file positions,
statistics, spans) stays in memory; `close` writes it: `meta/episodes/chunk-000/file-000.parquet`,
`meta/tasks.parquet`, `meta/stats.json`, `meta/temporal_proportions_{head}.json` and, last and
atomically, `meta/info.json`. A writer that is killed, or whose `with` block raises, leaves no info.json,
so the folder is never mistaken for a dataset (both `sarm.data` and LeRobot refuse it).

Annotations: `{head}_subtask_{names,start_frames,end_frames,start_times,end_times}` list columns of
meta/episodes, as LeRobot's `subtask_annotation.py` writes them, and the `mistake_*` and `outcome`
columns that LeRobot carries but never reads (`sarm.labels.records`; to edit them in an existing dataset:
`sarm.data.edit.write_episode_columns`). End frames are inclusive (the last frame
of the subtask, at most `length - 1`); times are `frame / fps`.

Statistics are LeRobot's: per episode min, max, mean, std, count and quantiles q01..q99 of every feature
(cameras: per channel in [0, 1], shape (3, 1, 1), over LeRobot's evenly spaced sample of frames), stored as
`stats/...` columns of meta/episodes, and for the whole dataset in stats.json: min, max, mean and std pooled
exactly; quantiles over all frames (data columns: a histogram pass over the data files at close, within
(max - min) / 5000; cameras: exact, from the sampled frames' level counts). LeRobot instead averages the
episodes' quantiles, which collapses q01..q99 of a value that is constant within each episode.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sarm.data.stats import aggregate_stats, column_stats, data_quantiles, image_stats, level_quantiles
from sarm.data.video import V30_VIDEO
from sarm.data.write_format import (
    DATA_PATH,
    EPISODES_PATH,
    SPAN_FIELDS,
    arrow_array,
    arrow_type,
    episode_spans,
    frame_column,
    info_features,
    next_file,
    size_mb,
    tasks_table,
)
from sarm.data.write_video import VideoFiles
from sarm.data.write_video import codec as _codec
from sarm.labels.annotations import HEADS
from sarm.labels.mistakes import coerce_outcome, validate_mistakes
from sarm.labels.proportions import temporal_proportions
from sarm.labels.records import COLUMN_TYPES, MISTAKE_COLUMNS, OUTCOME_COLUMN

__all__ = ["LeRobotWriter"]


class LeRobotWriter:
    """Write a new LeRobot v3.0 dataset into an empty folder; `add_episode` per episode, then `close`.

    Args:
        root: the dataset folder; created if missing, refused if not empty.
        fps: frames per second (timestamps are `frame_index / fps`).
        state_dim, action_dim: widths of the float32 `state_key` and `action_key` vectors.
        cameras: {feature key: (height, width)} of RGB cameras, stored as videos (even sizes, yuv420p).
        robot_type: written to info.json.
        extra_features: further per-frame columns, {name: {"dtype": one of float32, float64, int64, bool,
            "shape": (k,), "names": optional}}; shape (1,) makes a scalar column.
        video_options: codec options, default `{"g": "2", "crf": "23"}` (a keyframe every 2 frames, as
            LeRobot encodes, so random access decodes little). The codec is libx264, else mpeg4.
        data_file_mb, video_file_mb: size at which a data or video file is closed (LeRobot's defaults).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        fps: int,
        state_dim: int,
        action_dim: int,
        cameras: Mapping[str, tuple[int, int]] | None = None,
        robot_type: str | None = None,
        state_key: str = "observation.state",
        action_key: str = "action",
        extra_features: Mapping[str, Mapping[str, Any]] | None = None,
        video_options: Mapping[str, str] | None = None,
        data_file_mb: float = 100,
        video_file_mb: float = 200,
    ) -> None:
        for name, value in (("fps", fps), ("state_dim", state_dim), ("action_dim", action_dim)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
        for name, value in (("data_file_mb", data_file_mb), ("video_file_mb", video_file_mb)):
            if not value > 0:
                raise ValueError(f"{name} should be a positive number, but got {name}={value!r}")
        self.root, self.fps = Path(root), int(fps)
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise FileExistsError(
                f"`{self.root}` is not an empty folder; LeRobotWriter writes a new dataset only, so pass a "
                "new or empty root (or remove the old dataset)"
            )
        self._cameras = {str(k): (int(h), int(w)) for k, (h, w) in (cameras or {}).items()}
        self._extra = dict(extra_features or {})
        self._codec, self._options, codec_name = _codec() if self._cameras else ("", {}, "")
        self._options.update(video_options or {})
        self.state_key, self.action_key = state_key, action_key
        vectors = [(state_key, {"dtype": "float32", "shape": (state_dim,)})]
        vectors += [(action_key, {"dtype": "float32", "shape": (action_dim,)}), *self._extra.items()]
        self._features = info_features(vectors, self._cameras, self.fps, codec_name)
        self._schema = pa.schema(
            [(n, arrow_type(f)) for n, f in self._features.items() if f["dtype"] != "video"]
        )
        self._robot_type, self._data_mb, self._video_mb = robot_type, data_file_mb, video_file_mb
        self._tasks: dict[str, int] = {}
        self._rows: list[dict[str, Any]] = []  # per-episode metadata, written by close()
        self._spans: dict[str, dict[int, tuple]] = {head: {} for head in HEADS}  # for the proportions
        self._frames = 0
        self._image_hist: dict[str, np.ndarray] = {}  # (3, 256) level counts of the sampled frames
        self._data: dict[str, Any] = {"at": (0, 0), "writer": None}  # (chunk, file) and the open writer
        self._videos = {
            key: VideoFiles(
                self.root,
                key,
                size,
                codec=self._codec,
                options=self._options,
                fps=self.fps,
                limit_mb=video_file_mb,
            )
            for key, size in self._cameras.items()
        }
        self._state = "open"  # "open", "failed" (files unfinished or inconsistent), "closed"
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------- episodes

    def add_episode(
        self,
        *,
        state: Any,
        action: Any,
        task: str,
        images: Mapping[str, Any] | None = None,
        annotations: Mapping[str, tuple[list[str], list[int], list[int]]] | None = None,
        extra: Mapping[str, Any] | None = None,
        mistakes: Any = None,
        outcome: Any = None,
    ) -> int:
        """Write one episode and return its episode_index (0, 1, 2, ... in the order added).

        Args:
            state, action: `(T, state_dim)` and `(T, action_dim)` real arrays, stored as float32, finite.
            task: the episode's task text.
            images: {camera: uint8 `(T, H, W, 3)` RGB} for every camera declared in `cameras`.
            annotations: {head ("sparse" or "dense"): (names, start_frames, end_frames)}: inclusive,
                episode-relative frames, checked by `validate_spans` and stored sorted by
                start. An episode without a head gets null lists (unannotated).
            extra: {name: `(T,)` or `(T, k)` array} for every declared extra feature.
            mistakes: the episode's mistake spans [(kind, start, end), ...] (inclusive frames), stored in
                the `mistake_*` columns (`sarm.labels.records`); None leaves them null.
            outcome: "success", "failure", "partial", True / False or None (unknown): the `outcome` column.

        Everything is checked before anything is written; bad input raises ValueError naming it.
        """
        if self._state != "open":
            raise RuntimeError(f"add_episode() on a {self._state} LeRobotWriter; write into a new root")
        ep = len(self._rows)
        columns, images, spans = self._check(ep, state, action, task, images, annotations, extra)
        length = len(columns[self.state_key])
        marks = None if mistakes is None else validate_mistakes(mistakes, length, episode=ep)
        outcome = coerce_outcome(outcome, ep)
        length, task_index = len(columns[self.state_key]), self._tasks.get(task, len(self._tasks))
        frame = np.arange(length, dtype=np.int64)
        columns["timestamp"], columns["frame_index"] = (frame / self.fps).astype(np.float32), frame
        columns["episode_index"], columns["index"] = np.full(length, ep, np.int64), frame + self._frames
        columns["task_index"] = np.full(length, task_index, np.int64)
        stats, hists = {name: column_stats(x) for name, x in columns.items()}, {}
        for key, frames in images.items():
            stats[key], hists[key] = image_stats(frames)
        table = pa.table([arrow_array(columns[f.name], f.type) for f in self._schema], schema=self._schema)

        self._state = "failed"  # until the writes below are done: a half-written episode is unrecoverable
        row = {"episode_index": ep, "tasks": [task], "length": length, **self._write_data(table)}
        for key, frames in images.items():
            row |= self._videos[key].add(frames)
        row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0, "stats": stats}
        for head, head_spans in spans.items():
            names, starts, ends = ([s[i] for s in head_spans] for i in range(3))
            times = [s / self.fps for s in starts], [e / self.fps for e in ends]
            for field, value in zip(SPAN_FIELDS, (names, starts, ends, *times), strict=True):
                row[f"{head}_subtask_{field}"] = value
            self._spans[head][ep] = (head_spans, length)
        if marks is not None:
            for i, column in enumerate(MISTAKE_COLUMNS):
                row[column] = [m[i] for m in marks]
        if outcome is not None:
            row[OUTCOME_COLUMN] = outcome
        self._rows.append(row)
        self._tasks[task] = task_index
        for key, hist in hists.items():
            self._image_hist[key] = self._image_hist.get(key, 0) + hist
        self._frames += length
        self._state = "open"
        return ep

    def _check(self, ep, state, action, task, images, annotations, extra) -> tuple[dict, dict, dict]:
        """Per-frame columns, camera frames and validated spans per head of one episode."""
        columns = {self.state_key: frame_column(self.state_key, state, self._features[self.state_key])}
        length = len(columns[self.state_key])
        extra = dict(extra or {})
        _same_keys("extra", extra, self._extra, "extra_features=")
        for name, x in ((self.action_key, action), *((n, extra[n]) for n in self._extra)):
            columns[name] = frame_column(name, x, self._features[name], length)
        images = {key: np.asarray(x) for key, x in (images or {}).items()}
        _same_keys("images", images, self._cameras, "cameras=")
        for key, (h, w) in self._cameras.items():
            if images[key].dtype != np.uint8 or images[key].shape != (length, h, w, 3):
                raise ValueError(
                    f"camera {key!r} should be uint8 RGB of shape ({length}, {h}, {w}, 3) (one image per "
                    f"frame), but got {images[key].dtype} {images[key].shape}"
                )
        if not isinstance(task, str) or not task:
            raise ValueError(f"task should be a non-empty string, but got task={task!r}")
        spans = episode_spans(annotations, length, ep)
        return columns, images, spans

    def _write_data(self, table: pa.Table) -> dict[str, int]:
        d = self._data
        if d["writer"] is not None and size_mb(self._path(DATA_PATH, d["at"])) >= self._data_mb:
            d["writer"].close()
            d["writer"], d["at"] = None, next_file(d["at"])
        path = self._path(DATA_PATH, d["at"])
        if d["writer"] is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            d["writer"] = pq.ParquetWriter(path, self._schema, compression="snappy")
        d["writer"].write_table(table)  # one row group per episode
        chunk, file = d["at"]
        return {
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": self._frames,
            "dataset_to_index": self._frames + table.num_rows,
        }

    def _path(self, template: str, at: tuple[int, int]) -> Path:
        return self.root / template.format(chunk_index=at[0], file_index=at[1])

    # ---------------------------------------------------------------------------------------- close

    def close(self) -> Path:
        """Finish the files and write the metadata, meta/info.json last; returns the dataset root."""
        if self._state == "closed":
            return self.root
        if self._state == "failed":
            raise RuntimeError(
                f"an episode write into `{self.root}` failed midway, so its files are inconsistent; the "
                "folder has no meta/info.json and is not a dataset. Write the dataset again into a new root"
            )
        if not self._rows:
            raise ValueError("no episode was added; a LeRobot dataset needs at least one (call add_episode)")
        self._release()
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(self._episodes_table(), self.root / EPISODES_PATH)
        pq.write_table(tasks_table(self._tasks), meta / "tasks.parquet")
        stats = {k: aggregate_stats([r["stats"][k] for r in self._rows]) for k in self._rows[0]["stats"]}
        for key, hist in self._image_hist.items():
            stats[key] |= {q: v.reshape(3, 1, 1) for q, v in level_quantiles(hist).items()}
        for name, quantiles in data_quantiles(self.root / "data", self._schema.names, stats).items():
            stats[name] |= quantiles
        _write_json(meta / "stats.json", {k: {s: v.tolist() for s, v in d.items()} for k, d in stats.items()})
        for head, spans in self._spans.items():
            if any(s for s, _ in spans.values()):
                _write_json(meta / f"temporal_proportions_{head}.json", temporal_proportions(spans))
        info = {
            "codebase_version": "v3.0",
            "robot_type": self._robot_type,
            "total_episodes": len(self._rows),
            "total_frames": self._frames,
            "total_tasks": len(self._tasks),
            "chunks_size": 1000,
            "data_files_size_in_mb": self._data_mb,
            "video_files_size_in_mb": self._video_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self._rows)}"},
            "data_path": DATA_PATH,
            "video_path": V30_VIDEO if self._cameras else None,
            "features": self._features,
        }
        _write_json(meta / "info.json", info)  # last: its presence marks a finished dataset
        self._state = "closed"
        return self.root

    def _episodes_table(self) -> pa.Table:
        rows = [{k: v for k, v in r.items() if k != "stats"} for r in self._rows]
        for row, r in zip(rows, self._rows, strict=True):
            for key, st in r["stats"].items():
                row |= {f"stats/{key}/{s}": v.tolist() for s, v in st.items()}
        names = list(dict.fromkeys(k for row in rows for k in row))  # annotation columns may start late
        types = dict(COLUMN_TYPES)
        types["tasks"] = pa.list_(pa.string())
        return pa.table({n: pa.array([row.get(n) for row in rows], type=types.get(n)) for n in names})

    def _release(self) -> None:
        if self._data["writer"] is not None:
            self._data["writer"].close()
            self._data["writer"] = None
        for videos in self._videos.values():
            videos.finish()

    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        # like tarfile: an exception leaves the folder unfinished (no info.json), with its files closed;
        # the original exception matters more than a second one while closing
        self._state = "failed"
        with contextlib.suppress(Exception):
            self._release()

    def __repr__(self) -> str:
        return (
            f"LeRobotWriter(root='{self.root}', fps={self.fps}, episodes={len(self._rows)}, "
            f"frames={self._frames}, cameras={list(self._cameras)}, state={self._state!r})"
        )


# ------------------------------------------------------------------------------------------ helpers


def _same_keys(what: str, given: Mapping, declared: Mapping, where: str) -> None:
    missing, unknown = sorted(set(declared) - set(given)), sorted(set(given) - set(declared))
    if missing or unknown:
        problems = [f"lacks {missing}"] * bool(missing) + [f"has unknown {unknown}"] * bool(unknown)
        raise ValueError(
            f"{what} should have exactly the keys declared with {where} {sorted(declared)}, but "
            f"{' and '.join(problems)}"
        )


def _write_json(path: Path, value: Any) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=4))
    os.replace(tmp, path)
