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
  are at `videos/<key>/from_timestamp + timestamp` in its video. Video paths: `sarm.video.locate_videos`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sarm.video import V21_VIDEO, V30_VIDEO, FrameNotFoundError, decode_at, locate_videos

__all__ = ["DatasetError", "LeRobotDataset", "MissingVideoError", "open_dataset"]

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
_V21_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MISSING_MODES = ("error", "skip")


class DatasetError(ValueError):
    """The dataset on disk is not what `sarm.data` can read; the message names the file and the fix."""


class MissingVideoError(DatasetError, FileNotFoundError):
    """A video file that an episode needs is not on disk."""


def open_dataset(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    keys: Mapping[str, str] | None = None,
    missing_videos: str = "error",
    tolerance_s: float | None = None,
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
    """
    root = _resolve_root(source, revision)
    return LeRobotDataset(root, keys=keys, missing_videos=missing_videos, tolerance_s=tolerance_s)


def _resolve_root(source: str | os.PathLike, revision: str | None) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    text = str(source)
    if isinstance(source, str) and _REPO_ID.match(text):
        from huggingface_hub import snapshot_download

        home = os.environ.get("HF_HOME")
        cache = os.environ.get("HF_HUB_CACHE") or (os.path.join(home, "hub") if home else None)
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        try:
            local = snapshot_download(
                text, repo_type="dataset", revision=revision, cache_dir=cache, local_files_only=offline
            )
        except Exception as e:
            raise FileNotFoundError(
                f"{text!r} is not a local directory, and fetching it as a Hub dataset failed "
                f"({type(e).__name__}: {e}); pass an existing dataset root, or check the repo id, the "
                "revision and the network (with HF_HUB_OFFLINE=1 only the local cache is read)"
            ) from e
        return Path(local)
    raise FileNotFoundError(
        f"dataset root `{path}` does not exist; pass a LeRobot dataset root (the folder holding "
        "meta/info.json) or a Hub repo id such as 'user/name'"
    )


def _listing(values: Any) -> str:
    return str([int(v) for v in np.asarray(values).reshape(-1)])


def _to_numpy(column: pa.ChunkedArray | pa.Array, name: str, path: Path) -> np.ndarray:
    """A numeric parquet column as numpy: scalars `(n,)`, lists of one length `(n, d)`."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = arr.type
    if pa.types.is_fixed_size_list(kind):
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), kind.list_size)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        sizes = arr.value_lengths().to_numpy(zero_copy_only=False)
        if sizes.size and (sizes != sizes[0]).any():
            raise DatasetError(
                f"column `{name}` in `{path}` holds lists of different lengths ({int(sizes.min())} to "
                f"{int(sizes.max())}); only fixed-length vectors can be read as an array, use table()"
            )
        return (
            arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), int(sizes[0]) if sizes.size else 0)
        )
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return arr.to_numpy(zero_copy_only=False)
    raise DatasetError(
        f"column `{name}` in `{path}` has type {kind}, not a number or vector; read it with table()"
    )


class LeRobotDataset:
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
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        keys: Mapping[str, str] | None = None,
        missing_videos: str = "error",
        tolerance_s: float | None = None,
    ) -> None:
        if missing_videos not in _MISSING_MODES:
            raise ValueError(
                f"missing_videos should be one of {list(_MISSING_MODES)}, but got {missing_videos!r}"
            )
        if tolerance_s is not None and not tolerance_s > 0:
            raise ValueError(f"tolerance_s should be a positive number, but got tolerance_s={tolerance_s!r}")
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise DatasetError(
                f"`{self.root}` is not a LeRobot dataset root: `{info_path}` not found; pass the folder "
                "that holds meta/ and data/ (for a Hub dataset, its snapshot folder)"
            )
        self.info: dict = json.loads(info_path.read_text())
        self.version = str(self.info.get("codebase_version"))
        if self.version not in SUPPORTED_VERSIONS:
            raise DatasetError(
                f"`{info_path}` has codebase_version {self.version!r}; supported: "
                f"{list(SUPPORTED_VERSIONS)}. Convert the dataset with LeRobot's conversion scripts"
            )
        self.fps = float(self.info["fps"])
        self.tolerance_s = 0.5 / self.fps if tolerance_s is None else float(tolerance_s)
        self._keys = {str(k): str(v) for k, v in (keys or {}).items()}
        self._v3 = self.version == "v3.0"
        self._missing_mode = missing_videos
        self._last: tuple[int, str, np.ndarray] | None = None
        meta = self._read_meta()
        self._files, file_rows, data_eps, data_lengths = self._scan_v3() if self._v3 else self._scan_v2(meta)
        if not data_lengths.sum():
            raise DatasetError(
                f"no data rows under `{self.root / 'data'}`; the episodes' parquet files are missing or empty"
            )
        self._file_starts = np.concatenate([[0], np.cumsum(file_rows)]).astype(np.int64)  # (F + 1,)
        self._reconcile(meta, data_eps, data_lengths)
        self._columns = pq.read_schema(self._files[0]).names if self._files else []
        cameras = {
            k: f for k, f in self.info.get("features", {}).items() if f.get("dtype") in ("video", "image")
        }
        unknown = {c: v for c, v in self._keys.items() if v not in self._columns and v not in cameras}
        if unknown:
            raise DatasetError(
                f"keys={unknown} names columns that `{self.root}` does not have; data columns: "
                f"{self._columns}, cameras: {list(cameras)}"
            )
        inverse = {v: k for k, v in self._keys.items()}
        self._cameras = {inverse.get(raw, raw): (raw, feature["dtype"]) for raw, feature in cameras.items()}
        self.camera_keys = list(self._cameras)
        self.state_key, self.action_key = self._raw("observation.state"), self._raw("action")
        self.tasks = self._episode_tasks(meta)
        self.task_texts = list(dict.fromkeys(self.tasks))
        self._videos = {
            cam: self._locate_videos(cam, meta) for cam, (_, kind) in self._cameras.items() if kind == "video"
        }
        missing = {cam: self.missing_videos(cam) for cam in self._videos}
        if missing_videos == "skip" and any(m.size for m in missing.values()):
            listed = "; ".join(f"{cam}: {_listing(m)}" for cam, m in missing.items() if m.size)
            warnings.warn(
                f"skipping episodes whose video file is missing under `{self.root}`: {listed}", stacklevel=3
            )

    # ------------------------------------------------------------------------------------- loading

    def _raw(self, name: str) -> str:
        return self._keys.get(name, name)

    def _read_meta(self) -> dict[str, Any]:
        """Episode metadata: `episode_index`, `length` (int64 arrays), `tasks` and, for v3.0, the table."""
        if not self._v3:
            path = self.root / "meta" / "episodes.jsonl"
            if not path.is_file():
                raise DatasetError(f"`{path}` not found; a {self.version} dataset lists its episodes there")
            rows = sorted(
                (json.loads(line) for line in path.read_text().splitlines() if line.strip()),
                key=lambda r: r["episode_index"],
            )
            return {
                "episode_index": np.array([r["episode_index"] for r in rows], dtype=np.int64),
                "length": np.array([r.get("length", -1) for r in rows], dtype=np.int64),
                "tasks": [r.get("tasks") or None for r in rows],
            }
        paths = sorted((self.root / "meta" / "episodes").rglob("*.parquet"))
        if not paths:
            raise DatasetError(
                f"no `meta/episodes/**/*.parquet` under `{self.root}`; a v3.0 dataset lists its episodes "
                "there"
            )
        tables = []
        for p in paths:
            names = [n for n in pq.read_schema(p).names if not n.startswith(("stats/", "meta/"))]
            tables.append(pq.read_table(p, columns=names))
        table = pa.concat_tables(tables, promote_options="default").sort_by("episode_index")
        has = set(table.column_names)
        return {
            "episode_index": table["episode_index"].to_numpy().astype(np.int64),
            "length": table["length"].to_numpy().astype(np.int64)
            if "length" in has
            else np.full(len(table), -1),
            "tasks": table["tasks"].to_pylist() if "tasks" in has else [None] * len(table),
            "table": table,
        }

    def _scan_v2(self, meta: dict) -> tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]:
        """One data file per episode; its row count is the episode's length."""
        template, size = self.info.get("data_path", _V21_DATA), int(self.info.get("chunks_size", 1000))
        files, lengths = [], []
        for ep in meta["episode_index"].tolist():
            path = self.root / template.format(
                episode_chunk=ep // size, episode_index=ep, chunk_index=ep // size, file_index=ep
            )
            if not path.is_file():
                raise DatasetError(
                    f"data file `{path}` of episode {ep} (listed in meta/episodes.jsonl) not found; restore "
                    "it, or remove the episode from meta/episodes.jsonl"
                )
            files.append(path)
            lengths.append(pq.read_metadata(path).num_rows)
        rows = np.asarray(lengths, dtype=np.int64)
        keep = rows > 0  # an empty file is an episode without data: left out, with a warning
        files = [f for f, k in zip(files, keep, strict=True) if k]
        return files, rows[keep], meta["episode_index"][keep], rows[keep]

    def _scan_v3(self) -> tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]:
        """Data files hold runs of episodes; read each file's episode column once to count its rows."""
        files, column = sorted((self.root / "data").rglob("*.parquet")), self._raw("episode_index")
        runs, sizes, file_rows = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], []
        for path in files:
            if column not in (names := pq.read_schema(path).names):
                raise self._missing_column(column, names, path)
            e = pq.read_table(path, columns=[column]).column(0).to_numpy().astype(np.int64)
            cut = np.flatnonzero(np.diff(e)) + 1
            runs.append(e[np.r_[0, cut]] if e.size else e)
            sizes.append(np.diff(np.r_[0, cut, e.size]) if e.size else e)
            file_rows.append(e.size)
        runs, sizes = np.concatenate(runs), np.concatenate(sizes)
        new = np.r_[True, runs[1:] != runs[:-1]] if runs.size else np.zeros(0, bool)
        episodes = runs[new]  # an episode continued in the next file is one run
        if np.any(np.diff(episodes) <= 0):
            bad = int(episodes[np.flatnonzero(np.diff(episodes) <= 0)[0] + 1])
            raise DatasetError(
                f"rows of episode {bad} in `{self.root / 'data'}` are not stored in one run after the "
                "previous episode; sarm.data reads episodes in storage order and needs them sorted by "
                "episode_index"
            )
        lengths = np.bincount(np.cumsum(new) - 1, weights=sizes, minlength=episodes.size).astype(np.int64)
        return files, np.asarray(file_rows, np.int64), episodes, lengths

    def _reconcile(self, meta: dict, data_eps: np.ndarray, data_lengths: np.ndarray) -> None:
        """Take episodes and lengths from the data; warn where metadata or info.json disagree."""
        self.episodes, self.episode_lengths = data_eps, data_lengths
        self.episode_starts = np.concatenate([[0], np.cumsum(data_lengths)[:-1]]).astype(np.int64)
        self.num_episodes, self.num_frames = int(data_eps.size), int(data_lengths.sum())
        meta_eps, meta_len = meta["episode_index"], meta["length"]
        notes = []
        only_meta = np.setdiff1d(meta_eps, data_eps)
        if only_meta.size:
            notes.append(
                f"episodes {_listing(only_meta)} are in the episode metadata but have no data rows (left out)"
            )
        only_data = np.setdiff1d(data_eps, meta_eps)
        if only_data.size:
            notes.append(f"episodes {_listing(only_data)} have data rows but no episode metadata")
        common, in_meta, in_data = np.intersect1d(meta_eps, data_eps, return_indices=True)
        differ = (meta_len[in_meta] >= 0) & (meta_len[in_meta] != data_lengths[in_data])
        if differ.any():
            shown = ", ".join(
                f"episode {e}: length {m} in metadata, {d} rows in data"
                for e, m, d in zip(
                    common[differ][:20],
                    meta_len[in_meta][differ][:20],
                    data_lengths[in_data][differ][:20],
                    strict=True,
                )
            )
            notes.append(f"{int(differ.sum())} episode lengths disagree ({shown})")
        for key, actual in (("total_episodes", self.num_episodes), ("total_frames", self.num_frames)):
            if key in self.info and int(self.info[key]) != actual:
                notes.append(f"info.json says {key}={self.info[key]} but the data has {actual}")
        if notes:
            warnings.warn(f"`{self.root}`: " + "; ".join(notes) + "; using the data files", stacklevel=4)

    def _episode_tasks(self, meta: dict) -> list[str]:
        """First task text per episode: from the episode metadata, else via task_index and the tasks table."""
        by_episode = {int(e): t[0] for e, t in zip(meta["episode_index"], meta["tasks"], strict=True) if t}
        todo = [p for p, e in enumerate(self.episodes.tolist()) if e not in by_episode]
        if todo:
            first = self.column("task_index", self.episodes[todo])
            starts = np.concatenate([[0], np.cumsum(self.episode_lengths[todo])[:-1]])
            texts = self._task_table()
            for p, t in zip(todo, first[starts].tolist(), strict=True):
                if t not in texts:
                    raise DatasetError(
                        f"task_index {t} of episode {self.episodes[p]} is not in the tasks table of "
                        f"`{self.root}`"
                    )
                by_episode[int(self.episodes[p])] = texts[t]
        return [by_episode[e] for e in self.episodes.tolist()]

    def _task_table(self) -> dict[int, str]:
        meta = self.root / "meta"
        if (meta / "tasks.jsonl").is_file():
            rows = [
                json.loads(line) for line in (meta / "tasks.jsonl").read_text().splitlines() if line.strip()
            ]
            return {int(r["task_index"]): r["task"] for r in rows}
        if (meta / "tasks.parquet").is_file():
            t = pq.read_table(meta / "tasks.parquet")
            text = "task" if "task" in t.column_names else "__index_level_0__"
            return dict(zip(t["task_index"].to_pylist(), t[text].to_pylist(), strict=True))
        raise DatasetError(
            f"no meta/tasks.jsonl or meta/tasks.parquet under `{self.root}` to name the episodes' tasks"
        )

    def _locate_videos(self, camera: str, meta: dict) -> tuple[list[Path], np.ndarray, np.ndarray]:
        raw, table = self._cameras[camera][0], meta.get("table")
        shared = None
        if table is not None:  # v3.0: (chunk_index, file_index, from_timestamp) per episode
            cols = [f"videos/{raw}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
            has = set(cols) <= set(table.column_names)
            values = [table[c].to_pylist() for c in cols] if has else []
            episodes = meta["episode_index"].tolist() if has else []
            shared = {int(e): (c, f, float(t)) for e, c, f, t in zip(episodes, *values, strict=True)}
        template = self.info.get("video_path") or (V30_VIDEO if self._v3 else V21_VIDEO)
        size = int(self.info.get("chunks_size", 1000))
        return locate_videos(
            self.root, raw, self.episodes, template=template, chunks_size=size, shared=shared
        )

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
                f"episodes {_listing(bad)} are not in `{self.root}`; it holds {self.num_episodes} episodes "
                f"(episode_index {int(self.episodes.min(initial=0))}..{int(self.episodes.max(initial=-1))}; "
                "see `episodes`)"
            )
        return pos

    def frames_of(self, episode_index: int) -> slice:
        """The episode's rows in the concatenated order."""
        p = self.episode_position(episode_index)
        return slice(int(self.episode_starts[p]), int(self.episode_starts[p] + self.episode_lengths[p]))

    # -------------------------------------------------------------------------------------- columns

    def _missing_column(
        self, raw: str, available: list[str] | None = None, where: Any = None
    ) -> DatasetError:
        available = self._columns if available is None else available
        where = where or (self._files[0] if self._files else self.root)
        canonical = next((k for k, v in self._keys.items() if v == raw), raw)
        mapped = f" (mapped from {canonical!r} by keys=)" if canonical != raw else ""
        return DatasetError(
            f"column `{raw}`{mapped} not found in `{where}`; available: {available}. If the dataset names it "
            f"differently, pass keys={{{canonical!r}: <its name>}} to open_dataset"
        )

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
        data = _to_numpy(pq.read_table(path, columns=[raw]).column(0), raw, path)
        self._last = (file, raw, data)
        return data

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """The data files as one pyarrow Table (concatenated order); `columns` canonical or dataset names."""
        raw = None if columns is None else [self._raw(c) for c in columns]
        for c in raw or []:
            if c not in self._columns:
                raise self._missing_column(c)
        return pa.concat_tables(
            [pq.read_table(p, columns=raw) for p in self._files], promote_options="default"
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
            kind = pq.read_schema(self._files[0]).field(self.state_key).type
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
        path = self.root / "meta" / "stats.json"
        if path.is_file() and raw in (stats := json.loads(path.read_text())):
            return np.asarray(stats[raw]["mean"], np.float64), np.asarray(stats[raw]["std"], np.float64)
        path = self.root / "meta" / "episodes_stats.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            per_episode = {r["episode_index"]: r["stats"].get(raw) for r in rows}
            found = [per_episode.get(e) for e in self.episodes.tolist()]
            if all(found):
                n = [
                    np.ravel(s.get("count", [m]))[0] for s, m in zip(found, self.episode_lengths, strict=True)
                ]
                means = np.stack([np.asarray(s["mean"], np.float64) for s in found])
                stds = np.stack([np.asarray(s["std"], np.float64) for s in found])
                w = np.asarray(n, np.float64).reshape(-1, *[1] * (means.ndim - 1)) / np.sum(n)
                mean = (w * means).sum(0)
                return mean, np.sqrt(np.maximum((w * (stds**2 + means**2)).sum(0) - mean**2, 0.0))
        return self._data_stats(raw)

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

    # --------------------------------------------------------------------------------------- videos

    def _video(self, camera: str) -> tuple[list[Path], np.ndarray, np.ndarray]:
        if camera not in self._cameras:
            raw = [c for c, (r, _) in self._cameras.items() if r == camera]
            if not raw:
                raise DatasetError(f"camera {camera!r} not in `{self.root}`; cameras: {self.camera_keys}")
            camera = raw[0]
        if self._cameras[camera][1] != "video":
            raise NotImplementedError(
                f"camera {camera!r} is stored as images (dtype 'image'); sarm.data decodes only dtype "
                "'video' cameras. Encode the images to videos with LeRobot, or read them with table()"
            )
        return self._videos[camera]

    def video_path(self, camera: str, episode_index: int) -> Path:
        """The episode's video file (where it should be, if it is missing)."""
        return self._video(camera)[0][self.episode_position(episode_index)]

    def missing_videos(self, camera: str) -> np.ndarray:
        """Episodes whose video file for `camera` is not on disk (checked when the dataset was opened)."""
        return self.episodes[self._video(camera)[2]]

    def video_episodes(self, camera: str) -> np.ndarray:
        """Episodes that can be decoded. With missing_videos="error", a missing file raises here, up front."""
        missing = self._video(camera)[2]
        if missing.any() and self._missing_mode == "error":
            raise self._missing_error(camera)
        return self.episodes[~missing]

    def _missing_error(self, camera: str) -> MissingVideoError:
        paths, _, missing = self._video(camera)
        return MissingVideoError(
            f"video files of camera {camera!r} are missing for {int(missing.sum())} of {self.num_episodes} "
            f"episodes: {_listing(self.episodes[missing])} (e.g. `{paths[int(np.argmax(missing))]}`); "
            'restore the files, or pass missing_videos="skip" to open_dataset to leave those episodes out'
        )

    def decode(
        self, camera: str, episode_index: int, frames: Any = None, *, chunk: int = 64
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Decode frames of one episode: yields `(positions, images)`, int64 `(n,)`, uint8 `(n, H, W, 3)` RGB.

        `frames` are episode-local frame numbers (default all, `0..T-1`); they are sorted and made
        unique, and come back in increasing order, at most `chunk` per yield. The video is opened once,
        sought once and decoded forward; frame k is the decoded frame nearest to the episode's
        `timestamp[k]` (+ `from_timestamp` in v3.0). Checks (camera, episode, missing file) happen here,
        before the first frame is decoded; a frame without a decoded frame within `tolerance_s` raises
        DatasetError naming camera, episode, frame and the nearest time found.
        """
        paths, offsets, missing = self._video(camera)
        p = self.episode_position(episode_index)
        length = int(self.episode_lengths[p])
        local = np.arange(length) if frames is None else np.unique(np.asarray(frames, dtype=np.int64))
        if local.size and (local[0] < 0 or local[-1] >= length):
            raise ValueError(
                f"frames should lie in 0..{length - 1} for episode {episode_index}, but got {_listing(local)}"
            )
        if missing[p]:
            raise self._missing_error(camera)
        if "timestamps" in self.__dict__:  # already read for all frames
            times = self.timestamps[self.frames_of(episode_index)]
        else:  # only this episode's file: decoding never loads N timestamps
            times = self.column("timestamp", [episode_index]).astype(np.float64)
        wanted = times[local] + offsets[p]
        return self._decode(camera, int(episode_index), paths[p], local, wanted, chunk)

    def _decode(self, camera, episode, path, local, wanted, chunk) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        try:
            for idx, images in decode_at(path, wanted, tolerance_s=self.tolerance_s, chunk=chunk):
                yield local[idx], images
        except FrameNotFoundError as e:
            found = (
                "no frame was decoded"
                if e.nearest is None
                else f"the nearest decoded frame is at {e.nearest:.4f} s"
            )
            raise DatasetError(
                f"camera {camera!r}, episode {episode}: frame {int(local[e.position])} should be shown at "
                f"{e.expected:.4f} s in `{path}`, but {found} (tolerance_s={self.tolerance_s:.4g}); the "
                "video may be shorter than the episode or drop frames. Re-encode it, or raise tolerance_s in "
                "open_dataset"
            ) from None

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
