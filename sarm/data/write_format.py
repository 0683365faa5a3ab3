"""What `sarm.data.writer` writes into a LeRobot v3.0 dataset: file paths, info.json's features,
the Arrow types of the data columns, a per-frame column's and an episode's annotations' checks,
meta/tasks.parquet, file numbering and sizes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sarm.labels.annotations import HEADS, validate_spans
from sarm.labels.schema import Span

__all__ = [
    "DATA_PATH",
    "DEFAULT_FEATURES",
    "DTYPES",
    "EPISODES_PATH",
    "SPAN_FIELDS",
    "arrow_array",
    "arrow_type",
    "episode_spans",
    "frame_column",
    "info_features",
    "next_file",
    "size_mb",
    "tasks_table",
]

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
DTYPES = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}
DEFAULT_FEATURES = dict(
    timestamp="float32", frame_index="int64", episode_index="int64", index="int64", task_index="int64"
)
SPAN_FIELDS = dict(
    names=pa.string(),
    start_frames=pa.int64(),
    end_frames=pa.int64(),
    start_times=pa.float64(),
    end_times=pa.float64(),
)


def info_features(
    vectors: list[tuple[str, Mapping]], cameras: Mapping, fps: int, codec: str
) -> dict[str, dict]:
    """info.json's features: the vectors (state, action, extras), the cameras, then LeRobot's defaults."""
    keys = [*(n for n, _ in vectors), *cameras, *DEFAULT_FEATURES]
    bad = sorted({k for k in keys if keys.count(k) > 1 or "/" in k or not k})
    if bad:
        raise ValueError(f"feature names {bad} are repeated, empty or contain '/'; rename them")
    features = {}
    for name, ft in [*vectors, *((n, {"dtype": d, "shape": (1,)}) for n, d in DEFAULT_FEATURES.items())]:
        shape = tuple(ft.get("shape", ()))
        if ft.get("dtype") not in DTYPES or len(shape) != 1 or int(shape[0]) <= 0:
            raise ValueError(
                f"extra feature {name!r} should be {{'dtype': one of {list(DTYPES)}, 'shape': (k,)}}, "
                f"but got {dict(ft)!r}"
            )
        names = None if ft.get("names") is None else list(ft["names"])
        features[name] = {"dtype": ft["dtype"], "shape": [int(shape[0])], "names": names}
    for key, (h, w) in cameras.items():
        if h <= 0 or w <= 0 or h % 2 or w % 2:
            raise ValueError(
                f"camera {key!r} has size {h}x{w}; yuv420p video needs positive even height and width, "
                "so crop or pad the images by a pixel"
            )
        info = {"video.height": h, "video.width": w, "video.codec": codec, "video.pix_fmt": "yuv420p"}
        info |= {"video.fps": fps, "video.channels": 3, "has_audio": False, "is_depth_map": False}
        names = ["height", "width", "channels"]
        features[key] = {"dtype": "video", "shape": [h, w, 3], "names": names, "info": info}
    return {k: features[k] for k in keys}  # LeRobot's order: its default columns come last


def arrow_type(ft: Mapping[str, Any]) -> pa.DataType:
    base = DTYPES[ft["dtype"]]
    return base if ft["shape"] == [1] else pa.list_(base, ft["shape"][0])


def arrow_array(x: np.ndarray, kind: pa.DataType) -> pa.Array:
    if pa.types.is_fixed_size_list(kind):
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), kind.value_type), kind.list_size)
    return pa.array(x.reshape(-1), kind)


def frame_column(name: str, x: Any, ft: Mapping[str, Any], length: int | None = None) -> np.ndarray:
    """`x` as `(T,)` (shape (1,)) or `(T, k)` of the feature's dtype; raises ValueError naming the problem."""
    x, (width,), dtype = np.asarray(x), ft["shape"], np.dtype(ft["dtype"])
    if x.ndim == 1 and width == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != width or not len(x):
        raise ValueError(f"`{name}` should have shape (T, {width}) with T >= 1 frames, but got {x.shape}")
    if not np.can_cast(x.dtype, dtype, casting="same_kind"):
        raise ValueError(f"`{name}` should hold {dtype} values, but got dtype {x.dtype}; convert it first")
    if length is not None and len(x) != length:
        raise ValueError(
            f"`{name}` has {len(x)} frames but the state has {length}; every per-frame array of an episode "
            "needs one row per frame"
        )
    x = x.astype(dtype)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(
            f"`{name}` is not finite (as {dtype}) at frame {int(bad[0])} ({bad.size} frames in all); fix or "
            "drop those frames"
        )
    return x[:, 0] if width == 1 else x


def episode_spans(annotations: Mapping[str, Any] | None, length: int, ep: int) -> dict[str, list[Span]]:
    """{head: validated spans} of `add_episode`'s `annotations`, {head: (names, start_frames, end_frames)}."""
    spans = {}
    for head, value in (annotations or {}).items():
        if head not in HEADS:
            raise ValueError(f"annotation head should be one of {list(HEADS)}, but got {head!r}")
        lists = (
            isinstance(value, tuple | list) and len(value) == 3 and all(hasattr(v, "__len__") for v in value)
        )
        if not lists or len({len(v) for v in value}) != 1:
            raise ValueError(
                f"annotations[{head!r}] should be (names, start_frames, end_frames), three lists of one "
                f"length, but got {value!r}"
            )
        spans[head] = validate_spans(list(zip(*value, strict=True)), length, episode=ep)
    return spans


def tasks_table(tasks: Mapping[str, int]) -> pa.Table:
    """meta/tasks.parquet as pandas writes it: `task` is the DataFrame index, which LeRobot finds tasks by."""
    columns = [
        {"name": n, "field_name": n, "pandas_type": p, "numpy_type": t, "metadata": None}
        for n, p, t in (("task_index", "int64", "int64"), ("task", "unicode", "object"))
    ]
    pandas = {"index_columns": ["task"], "column_indexes": [], "columns": columns, "attributes": {}}
    pandas |= {"creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": list(tasks)})
    return table.replace_schema_metadata({"pandas": json.dumps(pandas)})


def next_file(at: tuple[int, int], chunks_size: int = 1000) -> tuple[int, int]:
    return (at[0] + 1, 0) if at[1] == chunks_size - 1 else (at[0], at[1] + 1)


def size_mb(path: Path) -> float:
    """The file's size in MiB (0 for a file not yet written): when to close a data or video file."""
    return path.stat().st_size / 2**20 if path.is_file() else 0.0
