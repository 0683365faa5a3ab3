"""Read, validate and write progress files in LeRobot's `sarm_progress.parquet` schema.

The progress file is the interchange format between a reward model and RA-BC. LeRobot's
`compute_rabc_weights` writes it, and so do Robometer, TOPReward and our `sarm progress`:

    index          int64    global frame index in the dataset, strictly increasing
    episode_index  int64    episode of the frame; each episode's rows are contiguous
    frame_index    int64    frame inside its episode (index - frame_index is constant per episode)
    progress_sparse float32 normalised progress in [0, 1] (NaN = unknown), optional
    progress_dense  float32 same for the dense head, optional

plus free-form schema metadata (LeRobot writes `reward_model_path`).

Everything here works on whole numpy columns: reading 10^8 rows builds no per-row Python object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from rabc.files import atomic_write

__all__ = ["HEADS", "ProgressTable", "episode_runs", "read_progress", "write_progress"]

HEADS = ("sparse", "dense")
INDEX_COLUMNS = ("index", "episode_index", "frame_index")


@dataclass(frozen=True)
class ProgressTable:
    """Columns of a progress file as numpy arrays, validated (see `read_progress`)."""

    index: np.ndarray  # int64 (N,)
    episode_index: np.ndarray  # int64 (N,)
    frame_index: np.ndarray  # int64 (N,)
    progress: dict[str, np.ndarray]  # head ("sparse" | "dense") -> float32 (N,)
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "<table>"

    def __len__(self) -> int:
        return len(self.index)

    @property
    def heads(self) -> list[str]:
        return list(self.progress)

    def column(self, head: str) -> np.ndarray:
        """The progress of one head, with an error that names what exists when it is absent."""
        if head not in HEADS:
            raise ValueError(f"head should be one of {list(HEADS)}, but got head={head!r}")
        if head not in self.progress:
            raise ValueError(
                f"column `progress_{head}` not found in `{self.source}`; available: "
                f"{[f'progress_{h}' for h in self.progress]}; compute it with `sarm progress --head {head}` "
                f"or choose head={self.heads[0]!r}"
            )
        return self.progress[head]

    def episode_runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(episode ids, first row, one-past-last row) of each episode, in file order."""
        return episode_runs(self.episode_index)


def episode_runs(episode_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(episode ids, first row, one-past-last row) of each run of equal `episode_index` values."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(episode_index)) + 1]).astype(np.int64)
    ends = np.concatenate([starts[1:], [len(episode_index)]]).astype(np.int64)
    return episode_index[starts], starts, ends


def read_progress(source, heads=None, *, sort: bool = False, progress_bar: bool = False) -> ProgressTable:
    """Read and validate a progress parquet file (or a `pyarrow.Table` with the same columns).

    Args:
        source: path to a `sarm_progress.parquet`-style file, or a `pyarrow.Table`.
        heads: which progress heads to load (default: every `progress_*` column present).
        sort: sort rows by `index` first; without it, unsorted rows are an error.
        progress_bar: show a tqdm bar over the file's row groups (useful at 10^8 rows).

    Raises:
        ValueError: a missing column (the message names those present), a duplicate or unsorted
            `index`, an episode whose rows are not contiguous, an inconsistent `frame_index`, or a
            progress value outside [0, 1]. NaN progress is allowed (LeRobot writes NaN where its model
            failed) and counted by RA-BC as an explicit fallback.
    """
    name = "<table>" if isinstance(source, pa.Table) else str(source)
    columns = _read_columns(source, name, heads, progress_bar)
    if sort:
        order = np.argsort(columns["index"], kind="stable")
        columns = {key: values[order] for key, values in columns.items()}
    progress = {h: columns.pop(f"progress_{h}") for h in HEADS if f"progress_{h}" in columns}
    metadata = {} if isinstance(source, pa.Table) else _file_metadata(source)
    table = ProgressTable(**columns, progress=progress, metadata=metadata, source=name)
    _validate(table)
    return table


def write_progress(path, table: ProgressTable, metadata: dict[str, str] | None = None) -> Path:
    """Validate `table` and write it atomically in LeRobot's schema (temp file + rename)."""
    _validate(table)
    arrays = {key: pa.array(getattr(table, key), pa.int64()) for key in INDEX_COLUMNS}
    for head, values in table.progress.items():
        arrays[f"progress_{head}"] = pa.array(values.astype(np.float32, copy=False), pa.float32())
    meta = {**table.metadata, **(metadata or {})}
    out = pa.table(arrays).replace_schema_metadata({k.encode(): str(v).encode() for k, v in meta.items()})
    return atomic_write_parquet(out, path)


def atomic_write_parquet(table: pa.Table, path) -> Path:
    """Write `table` to a temporary file beside `path`, then rename it into place (see `rabc.files`)."""
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _read_columns(source, name: str, heads, progress_bar: bool) -> dict[str, np.ndarray]:
    if isinstance(source, pa.Table):
        schema, batches, num_rows = source.schema, source.to_batches(), source.num_rows
    else:
        if not Path(source).is_file():
            raise FileNotFoundError(f"progress file `{name}` does not exist; write one with `sarm progress`")
        try:
            file = pq.ParquetFile(source)
        except (pa.ArrowInvalid, OSError) as err:
            raise unreadable_parquet(name, err, "progress") from err
        schema, num_rows = file.schema_arrow, file.metadata.num_rows
        batches = None
    available = schema.names
    wanted_heads = [h for h in HEADS if f"progress_{h}" in available] if heads is None else list(heads)
    for head in wanted_heads:
        if head not in HEADS:
            raise ValueError(f"head should be one of {list(HEADS)}, but got head={head!r}")
    wanted = list(INDEX_COLUMNS) + [f"progress_{h}" for h in wanted_heads]
    missing = [c for c in wanted if c not in available]
    if missing or not wanted_heads:
        missing = missing or ["progress_sparse or progress_dense"]
        raise ValueError(
            f"column(s) {missing} not found in `{name}`; available: {available}. A progress file needs "
            f"{list(INDEX_COLUMNS)} and at least one of progress_sparse / progress_dense "
            "(write it with `sarm progress` or LeRobot's compute_rabc_weights)"
        )
    if num_rows == 0:
        raise ValueError(f"`{name}` has no rows; a progress file needs one row per frame")
    out = {c: np.empty(num_rows, np.int64 if c in INDEX_COLUMNS else np.float32) for c in wanted}
    if batches is None:
        batches = file.iter_batches(columns=wanted, batch_size=1 << 22)
    row = 0
    with tqdm(total=num_rows, desc="read progress", unit="row", disable=not progress_bar) as bar:
        try:
            for batch in batches:
                for c in wanted:
                    out[c][row : row + batch.num_rows] = _column_to_numpy(batch.column(c), c, name)
                row += batch.num_rows
                bar.update(batch.num_rows)
        except (pa.ArrowInvalid, OSError) as err:  # a corrupt data page behind an intact footer
            raise unreadable_parquet(name, err, "progress") from err
    return out


def unreadable_parquet(name: str, err: Exception, kind: str) -> ValueError:
    """The one-line error for a file that is not a readable parquet file (corrupt, truncated, other)."""
    detail = " ".join(str(err).split())
    fix = "regenerate it with `sarm progress`" if kind == "progress" else "rewrite it with `rabc weights`"
    return ValueError(f"{kind} file `{name}` is not a readable parquet file ({detail}); {fix}")


def _column_to_numpy(column: pa.Array, name: str, source: str) -> np.ndarray:
    if name in INDEX_COLUMNS:
        if not pa.types.is_integer(column.type):
            raise ValueError(
                f"column `{name}` in `{source}` should hold integers, but has type {column.type}"
            )
        if column.null_count:
            raise ValueError(f"column `{name}` in `{source}` has {column.null_count} null values")
        return column.to_numpy()
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise ValueError(f"column `{name}` in `{source}` should hold floats, but has type {column.type}")
    return column.cast(pa.float32()).to_numpy(zero_copy_only=False)  # nulls become NaN


def _file_metadata(path) -> dict[str, str]:
    raw = pq.read_schema(path).metadata or {}
    return {
        k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items() if k != b"ARROW:schema"
    }


def _validate(t: ProgressTable) -> None:
    n = len(t.index)
    for key in INDEX_COLUMNS:
        values = getattr(t, key)
        if values.shape != (n,):
            raise ValueError(f"column `{key}` has shape {values.shape}, expected ({n},) like `index`")
    for head, values in t.progress.items():
        if values.shape != (n,):
            raise ValueError(
                f"column `progress_{head}` has shape {values.shape}, expected ({n},) like `index`"
            )
    if n == 0:
        raise ValueError(f"`{t.source}` has no rows; a progress file needs one row per frame")
    step = np.diff(t.index)
    if (bad := np.flatnonzero(step <= 0)).size:
        i = int(bad[0])
        kind = "duplicate" if step[i] == 0 else "unsorted"
        raise ValueError(
            f"{kind} `index` in `{t.source}`: row {i + 1} has index {t.index[i + 1]} after {t.index[i]} "
            f"({int((step == 0).sum())} duplicates, {int((step < 0).sum())} decreasing steps); "
            + ("drop the repeated frames" if kind == "duplicate" else "pass sort=True (CLI: --sort)")
        )
    if t.index[0] < 0 or t.frame_index.min() < 0:
        raise ValueError(f"`index` and `frame_index` in `{t.source}` must be non-negative")
    episodes = t.episode_runs()[0]
    if len(np.unique(episodes)) != len(episodes):
        ids, counts = np.unique(episodes, return_counts=True)
        raise ValueError(
            f"episode(s) {ids[counts > 1][:5].tolist()} in `{t.source}` have rows that are not contiguous "
            "(interleaved with other episodes' rows); rows must be grouped by episode in `index` order"
        )
    offset = t.index - t.frame_index
    if (bad := np.flatnonzero((np.diff(offset) != 0) & (np.diff(t.episode_index) == 0))).size:
        row = int(bad[0]) + 1
        raise ValueError(
            f"`frame_index` in `{t.source}` is inconsistent with `index` in episode {t.episode_index[row]} "
            f"at row {row} (index {t.index[row]}, frame_index {t.frame_index[row]}): inside an episode "
            "index - frame_index must be constant"
        )
    for head, values in t.progress.items():
        outside = (values < 0) | (values > 1)  # NaN compares False: allowed here, counted later
        if (bad := np.flatnonzero(outside)).size:
            row = int(bad[0])
            raise ValueError(
                f"{bad.size} value(s) of `progress_{head}` in `{t.source}` lie outside [0, 1] (first: "
                f"{values[row]} at index {t.index[row]}, episode {t.episode_index[row]}); progress must be "
                "normalised: rescale or clip your reward model's output to [0, 1]"
            )
