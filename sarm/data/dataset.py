"""Read LeRobot datasets (codebase v2.0, v2.1 and v3.0) from a local root or the Hub, without `lerobot`.

    ds = open_dataset("/data/g1_pick_bottle")            # or a Hub repo id, "user/name"
    state = ds.state()                                    # float32 (N, S), episodes in `ds.episodes` order
    for positions, images in ds.decode(ds.camera_keys[0], ds.episodes[1]):
        ...                                               # int64 (n,), uint8 (n, H, W, 3) RGB

Everything per frame is a numpy array in one order, the *concatenated order*: episodes in `episodes`
order (ascending episode_index, as stored), each episode's rows as stored (by frame_index). Columns are
read with pyarrow, one column at a time and only from the files that hold the asked-for episodes.

The data files are the truth. Episode lengths are the rows each episode has in the data files; when
`meta/episodes` or `info.json` totals disagree, the data wins and one warning names both numbers.
Video files are looked up once, when the dataset is opened, so a missing file is reported before a run
starts, never halfway through it (see `missing_videos`).

Layouts:
- v2.0 / v2.1: `meta/episodes.jsonl`, `meta/tasks.jsonl`, `meta/episodes_stats.jsonl` (v2.1) or
  `meta/stats.json` (v2.0); one data file (info.json's `data_path`) and one video per episode.
- v3.0: `meta/episodes/**/*.parquet`, `meta/tasks.parquet`, `meta/stats.json`; the data files
  (`data/**/*.parquet`, in path order) and the videos hold several episodes each; an episode's frames
  are at `videos/<key>/from_timestamp + timestamp` in its video. Video paths: `sarm.data.video.locate_videos`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sarm.data.cameras import CameraVideos
from sarm.data.files import read_parquet, read_parquet_schema
from sarm.data.layout import SUPPORTED_VERSIONS as SUPPORTED_VERSIONS  # public name of sarm.data too
from sarm.data.layout import (
    DatasetError,
    MissingVideoError,
    camera_features,
    column_to_numpy,
    episode_tasks,
    episode_videos,
    listing,
    meta_stats,
    missing_column,
    read_episodes,
    read_info,
    reconcile,
    resolve_root,
    scan_v2,
    scan_v3,
)

__all__ = ["DatasetError", "LeRobotDataset", "MissingVideoError", "open_dataset"]

_MISSING_MODES = ("error", "skip")


def open_dataset(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    keys: Mapping[str, str] | None = None,
    missing_videos: str = "error",
    tolerance_s: float | None = None,
    videos_dir: str | os.PathLike | None = None,
) -> LeRobotDataset:
    """Open a LeRobot dataset: a local root (the folder holding `meta/info.json`) or a Hub repo id.

    Args:
        source: a local dataset root, or a Hub dataset repo id "user/name" (used when no such local
            directory exists). Repo ids are resolved with `huggingface_hub.snapshot_download(repo_id,
            repo_type="dataset", revision=revision)`, honouring HF_HUB_CACHE / HF_HOME and
            HF_HUB_OFFLINE=1 (read the local cache only) as set when this is called.
        revision: Hub branch, tag or commit (ignored for a local root).
        keys: {canonical name: the dataset's name} for datasets whose columns or cameras are named
            differently, e.g. `{"observation.state": "state", "action": "actions",
            "observation.images.top": "cam_top"}`. Canonical names are "observation.state", "action",
            "timestamp", "frame_index", "episode_index", "index", "task_index" and camera keys; every
            method takes canonical names (dataset names still work for unmapped columns).
        missing_videos: "error" (default) opens the dataset, but decoding an episode whose video file
            is missing, or asking `video_episodes` for a camera with missing files, raises
            `MissingVideoError` listing every such episode. "skip" warns once and leaves those
            episodes out of `video_episodes(camera)`.
        tolerance_s: largest gap between a frame's timestamp and the decoded frame matched to it;
            default half a frame period, `0.5 / fps` (the nearest decoded frame is always taken, so
            this only rejects dropped frames or a misplaced episode; LeRobot allows 1e-4 s).
        videos_dir: the folder that holds what the dataset's `videos/` folder normally holds, for
            videos kept elsewhere (or in a folder named differently, e.g. `video/`).
    """
    root = resolve_root(source, revision)
    return LeRobotDataset(
        root, keys=keys, missing_videos=missing_videos, tolerance_s=tolerance_s, videos_dir=videos_dir
    )


class LeRobotDataset(CameraVideos):
    """One LeRobot dataset on disk; build it with `open_dataset`. All per-frame arrays are numpy.

    Attributes:
        root, version, info, fps: the dataset root, codebase version, parsed info.json, frames per second.
        episodes, episode_lengths, episode_starts: int64 `(E,)` episode_index values (ascending, as
            stored), their frame counts (from the data files) and first rows in the concatenated order.
        num_episodes, num_frames: E and N.
        tasks: the first task text of each episode; task_texts: the unique texts, in first appearance.
        camera_keys: features of dtype "video" or "image" (canonical names; only video decodes).
        state_key, action_key: the dataset's names for "observation.state" and "action".
        index, frame_index, episode_index, timestamps: per-frame `(N,)` columns, read on first use.

    The cameras' methods (video paths, missing and damaged files, `decode`) come from
    `sarm.data.cameras.CameraVideos`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        keys: Mapping[str, str] | None = None,
        missing_videos: str = "error",
        tolerance_s: float | None = None,
        videos_dir: str | os.PathLike | None = None,
    ) -> None:
        if missing_videos not in _MISSING_MODES:
            raise ValueError(
                f"missing_videos should be one of {list(_MISSING_MODES)}, but got {missing_videos!r}"
            )
        if tolerance_s is not None and not tolerance_s > 0:
            raise ValueError(f"tolerance_s should be a positive number, but got tolerance_s={tolerance_s!r}")
        self.root = Path(root)
        self.videos_dir = None if videos_dir is None else Path(videos_dir).expanduser()
        if self.videos_dir is not None and not self.videos_dir.is_dir():
            raise FileNotFoundError(
                f"videos_dir `{self.videos_dir}` is not a directory; pass the folder that holds the "
                "dataset's videos (what `videos/` holds in a LeRobot dataset)"
            )
        self.info, self.version = read_info(self.root)
        self.fps = float(self.info["fps"])
        self.tolerance_s = 0.5 / self.fps if tolerance_s is None else float(tolerance_s)
        self._keys = {str(k): str(v) for k, v in (keys or {}).items()}
        self._v3 = self.version == "v3.0"
        self._missing_mode = missing_videos
        self._last: tuple[int, str, np.ndarray] | None = None
        meta = read_episodes(self.root, self.version)
        if self._v3:
            scan = scan_v3(self.root, self._raw("episode_index"), self._keys)
        else:
            scan = scan_v2(self.root, self.info, meta)
        self._files, file_rows, data_eps, data_lengths = scan
        if not data_lengths.sum():
            raise DatasetError(
                f"no data rows under `{self.root / 'data'}`; the episodes' parquet files are missing or empty"
            )
        self._file_starts = np.concatenate([[0], np.cumsum(file_rows)]).astype(np.int64)  # (F + 1,)
        self.episodes, self.episode_lengths = data_eps, data_lengths
        self.episode_starts = np.concatenate([[0], np.cumsum(data_lengths)[:-1]]).astype(np.int64)
        self.num_episodes, self.num_frames = int(data_eps.size), int(data_lengths.sum())
        reconcile(self.root, self.info, meta, data_eps, data_lengths)  # warns where the metadata disagrees
        self._columns = read_parquet_schema(self._files[0]).names if self._files else []
        self._cameras = camera_features(self.root, self.info, self._keys, self._columns)
        self.camera_keys = list(self._cameras)
        self.state_key, self.action_key = self._raw("observation.state"), self._raw("action")
        self.tasks = episode_tasks(
            self.root, meta, self.episodes, self.episode_lengths, lambda eps: self.column("task_index", eps)
        )
        self.task_texts = list(dict.fromkeys(self.tasks))
        self._videos = {
            cam: episode_videos(self.root, self.info, self.version, raw, self.episodes, meta, self.videos_dir)
            for cam, (raw, kind) in self._cameras.items()
            if kind == "video"
        }
        missing = {cam: self.missing_videos(cam) for cam in self._videos}
        if missing_videos == "skip" and any(m.size for m in missing.values()):
            listed = "; ".join(self.missing_report(cam) for cam, m in missing.items() if m.size)
            warnings.warn(f"skipping episodes whose video file is missing: {listed}", stacklevel=3)

    # ------------------------------------------------------------------------------------- loading

    def open_args(self) -> dict:
        """The keyword arguments that open this dataset again (`open_dataset(**ds.open_args())`), e.g. in
        another process; plain values only, so they pickle and compare cheaply."""
        return {
            "source": str(self.root),
            "keys": dict(self._keys),
            "missing_videos": self._missing_mode,
            "tolerance_s": self.tolerance_s,
            "videos_dir": None if self.videos_dir is None else str(self.videos_dir),
        }

    def _raw(self, name: str) -> str:
        return self._keys.get(name, name)

    # ------------------------------------------------------------------------------------- episodes

    def episode_position(self, episode_index: int) -> int:
        """Position of an episode in `episodes` (and in every per-episode array)."""
        return int(self._positions([episode_index])[0])

    def _positions(self, episodes: Any) -> np.ndarray:
        wanted = np.asarray(episodes, dtype=np.int64).reshape(-1)
        pos = np.minimum(np.searchsorted(self.episodes, wanted), max(self.num_episodes - 1, 0))
        bad = wanted[(self.episodes[pos] != wanted) if self.num_episodes else np.ones(wanted.size, bool)]
        if bad.size:
            raise DatasetError(
                f"episodes {listing(bad)} are not in `{self.root}`; it holds {self.num_episodes} episodes "
                f"(episode_index {int(self.episodes.min(initial=0))}..{int(self.episodes.max(initial=-1))}; "
                "see `episodes`)"
            )
        return pos

    def frames_of(self, episode_index: int) -> slice:
        """The episode's rows in the concatenated order."""
        p = self.episode_position(episode_index)
        return slice(int(self.episode_starts[p]), int(self.episode_starts[p] + self.episode_lengths[p]))

    # -------------------------------------------------------------------------------------- columns

    def _missing_column(self, raw: str) -> DatasetError:
        return missing_column(raw, self._columns, self._files[0] if self._files else self.root, self._keys)

    def column(self, name: str, episodes: Any = None) -> np.ndarray:
        """A numeric data column for all frames, or for `episodes` (sorted, in concatenated order).

        Scalars give `(n,)`, fixed-length vectors `(n, d)`, in the stored dtype. `name` is canonical
        (mapped by `keys=`) or the dataset's own name.
        """
        raw = self._raw(name)
        if raw not in self._columns:
            raise self._missing_column(raw)
        if episodes is None:
            pieces = [self._read(f, raw) for f in range(len(self._files))]
        else:
            pos = np.unique(self._positions(episodes))
            lo = self.episode_starts[pos]
            hi = lo + self.episode_lengths[pos]
            first = np.searchsorted(self._file_starts, lo, side="right") - 1
            last = np.searchsorted(self._file_starts, hi - 1, side="right") - 1
            pieces = []
            for f in np.unique(
                np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)] or [[]])
            ).astype(int):
                data, start, stop = self._read(f, raw), self._file_starts[f], self._file_starts[f + 1]
                inside = (lo < stop) & (hi > start)
                pieces += [
                    data[a - start : b - start]
                    for a, b in zip(np.maximum(lo[inside], start), np.minimum(hi[inside], stop), strict=True)
                ]
        if not pieces:
            return np.zeros(0)
        return np.concatenate(pieces)

    def _read(self, file: int, raw: str) -> np.ndarray:
        """One file's column; the last one read is kept, so episode-by-episode reads parse a file once."""
        if self._last is not None and self._last[:2] == (file, raw):
            return self._last[2]
        path = self._files[file]
        data = column_to_numpy(read_parquet(path, columns=[raw]).column(0), raw, path)
        self._last = (file, raw, data)
        return data

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """The data files as one pyarrow Table (concatenated order); `columns` canonical or dataset names."""
        raw = None if columns is None else [self._raw(c) for c in columns]
        for c in raw or []:
            if c not in self._columns:
                raise self._missing_column(c)
        return pa.concat_tables(
            [read_parquet(p, columns=raw) for p in self._files], promote_options="default"
        )

    def state(self, episodes: Any = None) -> np.ndarray:
        """float32 `(n, S)` observation.state; raises DatasetError naming the first non-finite frame."""
        x = self.column(self.state_key, episodes).astype(np.float32, copy=False)
        x = x.reshape(len(x), -1)
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            pos = np.arange(self.num_episodes) if episodes is None else np.unique(self._positions(episodes))
            starts = np.cumsum(self.episode_lengths[pos]) - self.episode_lengths[pos]
            k = int(np.searchsorted(starts, bad[0], side="right") - 1)
            raise DatasetError(
                f"`{self.state_key}` is not finite at episode {int(self.episodes[pos[k]])}, frame "
                f"{int(bad[0] - starts[k])} ({bad.size} frames in all) in `{self.root}`; "
                "fix or drop those frames"
            )
        return x

    @property
    def state_dim(self) -> int:
        """Width S of observation.state."""
        if self.state_key in self._columns:
            kind = read_parquet_schema(self._files[0]).field(self.state_key).type
            if pa.types.is_fixed_size_list(kind):
                return int(kind.list_size)
        return self.state(self.episodes[:1]).shape[1]

    @cached_property
    def index(self) -> np.ndarray:
        return self.column("index").astype(np.int64, copy=False)

    @cached_property
    def frame_index(self) -> np.ndarray:
        return self.column("frame_index").astype(np.int64, copy=False)

    @cached_property
    def episode_index(self) -> np.ndarray:
        return self.column("episode_index").astype(np.int64, copy=False)

    @cached_property
    def timestamps(self) -> np.ndarray:
        return self.column("timestamp").astype(np.float64)

    def stats(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """float64 `(mean, std)` of a feature, as LeRobot normalises with: `(x - mean) / (std + 1e-8)`.

        From meta/stats.json (v3.0, v2.0), else pooled over meta/episodes_stats.jsonl (v2.1; count-
        weighted mean, `var = sum(n_i (std_i^2 + mean_i^2)) / N - mean^2`), else computed from the data.
        """
        raw = self._raw(key)
        found = meta_stats(self.root, raw, self.episodes, self.episode_lengths)
        return self._data_stats(raw) if found is None else found

    def _data_stats(self, raw: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population std over all frames, merged file by file (Chan et al.)."""
        if raw not in self._columns:
            raise self._missing_column(raw)
        n, mean, m2 = 0, 0.0, 0.0
        for f in range(len(self._files)):
            x = self._read(f, raw).astype(np.float64)
            if not len(x):
                continue
            xm = x.mean(axis=0)
            delta, total = xm - mean, n + len(x)
            m2 = m2 + ((x - xm) ** 2).sum(axis=0) + delta**2 * n * len(x) / total
            mean, n = mean + delta * len(x) / total, total
        return np.asarray(mean, np.float64), np.sqrt(np.asarray(m2, np.float64) / max(n, 1))

    # ---------------------------------------------------------------------------------------- misc

    def fingerprint(self) -> str:
        """16 hex digits of sha256 over version, fps, features, episodes, lengths and tasks (tags caches)."""
        h = hashlib.sha256()
        head = {k: self.info.get(k) for k in ("codebase_version", "fps", "features")}
        h.update(json.dumps(head, sort_keys=True, default=str).encode())
        h.update(self.episodes.astype("<i8").tobytes())
        h.update(self.episode_lengths.astype("<i8").tobytes())
        h.update(json.dumps(self.tasks).encode())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset(root='{self.root}', version={self.version!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, fps={self.fps:g}, cameras={self.camera_keys})"
        )
