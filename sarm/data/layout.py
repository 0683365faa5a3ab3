"""Read LeRobot's on-disk layout: info.json, the episode metadata, the data files' episodes and the tasks.

    info, version = read_info(root)                      # meta/info.json, codebase version checked
    meta = read_episodes(root, version)                  # episode_index, length, tasks (+ v3.0 table)
    files, file_rows, episodes, lengths = scan_v3(root, "episode_index", keys={})

These are the pieces `sarm.data.LeRobotDataset` is built from when a dataset is opened; each takes the
dataset root and plain values, and raises `DatasetError` naming the file and the fix. The data files are
the truth: `reconcile` warns where `meta/episodes` or info.json totals disagree with them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sarm.data.errors import DatasetError, MissingVideoError, VideoDecodeError
from sarm.data.files import read_json, read_jsonl, read_parquet, read_parquet_rows, read_parquet_schema
from sarm.data.video import V21_VIDEO, V30_VIDEO, locate_videos

__all__ = [
    "SUPPORTED_VERSIONS",
    "DatasetError",
    "MissingVideoError",
    "VideoDecodeError",
    "camera_features",
    "column_to_numpy",
    "episode_tasks",
    "episode_videos",
    "listing",
    "meta_stats",
    "missing_column",
    "read_episodes",
    "read_info",
    "reconcile",
    "resolve_root",
    "scan_v2",
    "scan_v3",
    "task_table",
]

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
_V21_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_root(source: str | os.PathLike, revision: str | None) -> Path:
    """A local dataset root, or the snapshot folder of a Hub dataset repo id (see `open_dataset`)."""
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


def listing(values: Any) -> str:
    return str([int(v) for v in np.asarray(values).reshape(-1)])


def column_to_numpy(column: pa.ChunkedArray | pa.Array, name: str, path: Path) -> np.ndarray:
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


def missing_column(raw: str, available: list[str], where: Any, keys: Mapping[str, str]) -> DatasetError:
    """The error for a data column `raw` not in `where`, with the `keys=` mapping that would fix it."""
    canonical = next((k for k, v in keys.items() if v == raw), raw)
    mapped = f" (mapped from {canonical!r} by keys=)" if canonical != raw else ""
    return DatasetError(
        f"column `{raw}`{mapped} not found in `{where}`; available: {available}. If the dataset names it "
        f"differently, pass keys={{{canonical!r}: <its name>}} to open_dataset"
    )


def read_info(root: Path) -> tuple[dict, str]:
    """Parsed meta/info.json and its codebase version, one of `SUPPORTED_VERSIONS`."""
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(
            f"`{root}` is not a LeRobot dataset root: `{info_path}` not found; pass the folder "
            "that holds meta/ and data/ (for a Hub dataset, its snapshot folder)"
        )
    info: dict = read_json(info_path, dict)
    version = str(info.get("codebase_version"))
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            f"`{info_path}` has codebase_version {version!r}; supported: "
            f"{list(SUPPORTED_VERSIONS)}. Convert the dataset with LeRobot's conversion scripts"
        )
    return info, version


def read_episodes(root: Path, version: str) -> dict[str, Any]:
    """Episode metadata: `episode_index`, `length` (int64 arrays), `tasks` and, for v3.0, the table."""
    if version != "v3.0":
        path = root / "meta" / "episodes.jsonl"
        if not path.is_file():
            raise DatasetError(f"`{path}` not found; a {version} dataset lists its episodes there")
        rows = read_jsonl(path)
        if any("episode_index" not in r for r in rows):
            raise DatasetError(f"`{path}` has a line without `episode_index`; restore the file")
        rows = sorted(rows, key=lambda r: r["episode_index"])
        return {
            "episode_index": np.array([r["episode_index"] for r in rows], dtype=np.int64),
            "length": np.array([r.get("length", -1) for r in rows], dtype=np.int64),
            "tasks": [r.get("tasks") or None for r in rows],
        }
    paths = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not paths:
        raise DatasetError(
            f"no `meta/episodes/**/*.parquet` under `{root}`; a v3.0 dataset lists its episodes there"
        )
    tables = []
    for p in paths:
        names = [n for n in read_parquet_schema(p).names if not n.startswith(("stats/", "meta/"))]
        tables.append(read_parquet(p, columns=names))
    table = pa.concat_tables(tables, promote_options="default").sort_by("episode_index")
    has = set(table.column_names)
    return {
        "episode_index": table["episode_index"].to_numpy().astype(np.int64),
        "length": table["length"].to_numpy().astype(np.int64) if "length" in has else np.full(len(table), -1),
        "tasks": table["tasks"].to_pylist() if "tasks" in has else [None] * len(table),
        "table": table,
    }


def scan_v2(root: Path, info: dict, meta: dict) -> tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]:
    """One data file per episode; its row count is the episode's length."""
    template, size = info.get("data_path", _V21_DATA), int(info.get("chunks_size", 1000))
    files, lengths = [], []
    for ep in meta["episode_index"].tolist():
        path = root / template.format(
            episode_chunk=ep // size, episode_index=ep, chunk_index=ep // size, file_index=ep
        )
        if not path.is_file():
            raise DatasetError(
                f"data file `{path}` of episode {ep} (listed in meta/episodes.jsonl) not found; restore "
                "it, or remove the episode from meta/episodes.jsonl"
            )
        files.append(path)
        lengths.append(read_parquet_rows(path))
    rows = np.asarray(lengths, dtype=np.int64)
    keep = rows > 0  # an empty file is an episode without data: left out, with a warning
    files = [f for f, k in zip(files, keep, strict=True) if k]
    return files, rows[keep], meta["episode_index"][keep], rows[keep]


def scan_v3(
    root: Path, column: str, keys: Mapping[str, str]
) -> tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]:
    """Data files hold runs of episodes; read each file's episode column once to count its rows."""
    files = sorted((root / "data").rglob("*.parquet"))
    runs, sizes, file_rows = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], []
    for path in files:
        if column not in (names := read_parquet_schema(path).names):
            raise missing_column(column, names, path, keys)
        e = read_parquet(path, columns=[column]).column(0).to_numpy().astype(np.int64)
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
            f"rows of episode {bad} in `{root / 'data'}` are not stored in one run after the "
            "previous episode; sarm.data reads episodes in storage order and needs them sorted by "
            "episode_index"
        )
    lengths = np.bincount(np.cumsum(new) - 1, weights=sizes, minlength=episodes.size).astype(np.int64)
    return files, np.asarray(file_rows, np.int64), episodes, lengths


def reconcile(root: Path, info: dict, meta: dict, data_eps: np.ndarray, data_lengths: np.ndarray) -> None:
    """Warn where the episode metadata or info.json disagree with the data's episodes and lengths.

    Called from `LeRobotDataset.__init__`: the warning points at the caller of `open_dataset`.
    """
    num_episodes, num_frames = int(data_eps.size), int(data_lengths.sum())
    meta_eps, meta_len = meta["episode_index"], meta["length"]
    notes = []
    only_meta = np.setdiff1d(meta_eps, data_eps)
    if only_meta.size:
        notes.append(
            f"episodes {listing(only_meta)} are in the episode metadata but have no data rows (left out)"
        )
    only_data = np.setdiff1d(data_eps, meta_eps)
    if only_data.size:
        notes.append(f"episodes {listing(only_data)} have data rows but no episode metadata")
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
    for key, actual in (("total_episodes", num_episodes), ("total_frames", num_frames)):
        if key in info and int(info[key]) != actual:
            notes.append(f"info.json says {key}={info[key]} but the data has {actual}")
    if notes:
        warnings.warn(f"`{root}`: " + "; ".join(notes) + "; using the data files", stacklevel=4)


def camera_features(
    root: Path, info: dict, keys: Mapping[str, str], columns: list[str]
) -> dict[str, tuple[str, str]]:
    """{canonical name: (dataset name, dtype)} of info.json's features of dtype "video" or "image".

    Every `keys` value must name a data column or a camera.
    """
    cameras = {k: f for k, f in info.get("features", {}).items() if f.get("dtype") in ("video", "image")}
    unknown = {c: v for c, v in keys.items() if v not in columns and v not in cameras}
    if unknown:
        raise DatasetError(
            f"keys={unknown} names columns that `{root}` does not have; data columns: "
            f"{columns}, cameras: {list(cameras)}"
        )
    inverse = {v: k for k, v in keys.items()}
    return {inverse.get(raw, raw): (raw, feature["dtype"]) for raw, feature in cameras.items()}


def episode_tasks(
    root: Path,
    meta: dict,
    episodes: np.ndarray,
    lengths: np.ndarray,
    task_index: Callable[[np.ndarray], np.ndarray],
) -> list[str]:
    """First task text per episode: from the episode metadata, else via task_index and the tasks table.

    `task_index(episodes)` reads that column for those episodes (concatenated order).
    """
    by_episode = {int(e): t[0] for e, t in zip(meta["episode_index"], meta["tasks"], strict=True) if t}
    todo = [p for p, e in enumerate(episodes.tolist()) if e not in by_episode]
    if todo:
        first = task_index(episodes[todo])
        starts = np.concatenate([[0], np.cumsum(lengths[todo])[:-1]])
        texts = task_table(root)
        for p, t in zip(todo, first[starts].tolist(), strict=True):
            if t not in texts:
                raise DatasetError(
                    f"task_index {t} of episode {episodes[p]} is not in the tasks table of `{root}`"
                )
            by_episode[int(episodes[p])] = texts[t]
    return [by_episode[e] for e in episodes.tolist()]


def task_table(root: Path) -> dict[int, str]:
    """{task_index: task text} from meta/tasks.jsonl (v2.x) or meta/tasks.parquet (v3.0)."""
    meta = root / "meta"
    if (meta / "tasks.jsonl").is_file():
        rows = read_jsonl(meta / "tasks.jsonl")
        return {int(r["task_index"]): r["task"] for r in rows}
    if (meta / "tasks.parquet").is_file():
        t = read_parquet(meta / "tasks.parquet")
        text = "task" if "task" in t.column_names else "__index_level_0__"
        return dict(zip(t["task_index"].to_pylist(), t[text].to_pylist(), strict=True))
    raise DatasetError(
        f"no meta/tasks.jsonl or meta/tasks.parquet under `{root}` to name the episodes' tasks"
    )


def episode_videos(
    root: Path,
    info: dict,
    version: str,
    raw: str,
    episodes: np.ndarray,
    meta: dict,
    videos_dir: Path | None = None,
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Per episode: video path, `from_timestamp` offset and whether the file is missing (`locate_videos`;
    `videos_dir` stands for the dataset's `videos/` folder)."""
    table = meta.get("table")
    shared = None
    if table is not None:  # v3.0: (chunk_index, file_index, from_timestamp) per episode
        cols = [f"videos/{raw}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
        has = set(cols) <= set(table.column_names)
        values = [table[c].to_pylist() for c in cols] if has else []
        listed = meta["episode_index"].tolist() if has else []
        shared = {int(e): (c, f, float(t)) for e, c, f, t in zip(listed, *values, strict=True)}
    template = info.get("video_path") or (V30_VIDEO if version == "v3.0" else V21_VIDEO)
    size = int(info.get("chunks_size", 1000))
    return locate_videos(
        root, raw, episodes, template=template, chunks_size=size, shared=shared, videos_dir=videos_dir
    )


def meta_stats(
    root: Path, raw: str, episodes: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """float64 `(mean, std)` of column `raw` from meta/stats.json, else pooled over meta/episodes_stats.jsonl.

    None when neither file has it (for every one of `episodes`, in the pooled case).
    """
    path = root / "meta" / "stats.json"
    if path.is_file() and raw in (stats := read_json(path, dict)):
        return np.asarray(stats[raw]["mean"], np.float64), np.asarray(stats[raw]["std"], np.float64)
    path = root / "meta" / "episodes_stats.jsonl"
    if path.is_file():
        rows = read_jsonl(path)
        per_episode = {r["episode_index"]: r["stats"].get(raw) for r in rows}
        found = [per_episode.get(e) for e in episodes.tolist()]
        if all(found):
            n = [np.ravel(s.get("count", [m]))[0] for s, m in zip(found, lengths, strict=True)]
            means = np.stack([np.asarray(s["mean"], np.float64) for s in found])
            stds = np.stack([np.asarray(s["std"], np.float64) for s in found])
            w = np.asarray(n, np.float64).reshape(-1, *[1] * (means.ndim - 1)) / np.sum(n)
            mean = (w * means).sum(0)
            return mean, np.sqrt(np.maximum((w * (stds**2 + means**2)).sum(0) - mean**2, 0.0))
    return None
