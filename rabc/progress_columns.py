"""A progress file's columns as numpy arrays: opening, planning LeRobot's columns, streaming, converting.

`rabc.progress_io.read_progress` uses these for both layouts (LeRobot's `sarm_progress.parquet` and
the draft scores files planned by `rabc.score_files`); each column is read batch by batch into one
preallocated array, so 10^8 rows build no per-row Python object. Errors name the file, the column
and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

__all__ = [
    "decoded_metadata",
    "lerobot_plan",
    "open_source",
    "read_columns",
    "stage_number",
    "stage_prob_lists",
    "unreadable_parquet",
]

HEADS = ("sparse", "dense")
INDEX_COLUMNS = ("index", "episode_index", "frame_index")


def open_source(source, name: str):
    """(schema, rows, a function giving record batches of some columns) of a file or a table."""
    if isinstance(source, pa.Table):
        return source.schema, source.num_rows, lambda cols: source.select(cols).to_batches()
    if not Path(source).is_file():
        raise FileNotFoundError(f"progress file `{name}` does not exist; write one with `sarm progress`")
    try:
        file = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise unreadable_parquet(name, err, "progress") from err
    return (
        file.schema_arrow,
        file.metadata.num_rows,
        lambda cols: file.iter_batches(columns=cols, batch_size=1 << 22),
    )


def lerobot_plan(available: list[str], name: str, heads) -> dict[str, str]:
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
            f"{list(INDEX_COLUMNS)} and at least one of progress_sparse / progress_dense, or is a LeRobot "
            "scores file (write it with `sarm progress` or LeRobot's compute_rabc_weights)"
        )
    return {f"progress_{h}": f"progress_{h}" for h in wanted_heads}


def read_columns(batches, num_rows: int, name: str, wanted: dict[str, str], progress_bar: bool):
    """{our key: numpy column} for `wanted` ({our key: file column}), streamed batch by batch."""
    if num_rows == 0:
        raise ValueError(f"`{name}` has no rows; a progress file needs one row per frame")
    kinds = {
        k: np.int64 if k in INDEX_COLUMNS else bool if k.startswith("valid_") else np.float32 for k in wanted
    }
    out = {k: np.empty(num_rows, kind) for k, kind in kinds.items()}
    files = list(dict.fromkeys(wanted.values()))
    row = 0
    with tqdm(total=num_rows, desc="read progress", unit="row", disable=not progress_bar) as bar:
        try:
            for batch in batches(files):
                for key, column in wanted.items():
                    values = _column_to_numpy(batch.column(column), key, column, name)
                    out[key][row : row + batch.num_rows] = values
                row += batch.num_rows
                bar.update(batch.num_rows)
        except (pa.ArrowInvalid, OSError) as err:  # a corrupt data page behind an intact footer
            raise unreadable_parquet(name, err, "progress") from err
    return out


def stage_prob_lists(source, name: str, heads: list[str], available: list[str]) -> dict[str, np.ndarray]:
    """`stage_probs_<head>` list<float32> columns (written by `sarm progress --stage-probs`) as (N, K)."""
    out = {}
    for head in heads:
        column = f"stage_probs_{head}"
        if column not in available:
            continue
        data = (
            source.column(column)
            if isinstance(source, pa.Table)
            else pq.read_table(source, columns=[column])[0]
        )
        data = data.combine_chunks()
        valid = ~np.asarray(data.is_null().to_numpy(zero_copy_only=False), bool)
        flat = data.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        k = flat.size // max(int(valid.sum()), 1)
        if flat.size != k * valid.sum():
            raise ValueError(f"column `{column}` in `{name}` has rows of different lengths")
        probs = np.full((len(data), k), np.nan, np.float32)
        probs[valid] = flat.reshape(-1, k)
        out[column] = probs
    return out


def stage_number(key: str) -> int:
    """k of a `stage_probs_<head>/<k>` key."""
    return int(key.rpartition("/")[2])


def unreadable_parquet(name: str, err: Exception, kind: str) -> ValueError:
    """The one-line error for a file that is not a readable parquet file (corrupt, truncated, other)."""
    detail = " ".join(str(err).split())
    fix = "regenerate it with `sarm progress`" if kind == "progress" else "rewrite it with `rabc weights`"
    return ValueError(f"{kind} file `{name}` is not a readable parquet file ({detail}); {fix}")


def _column_to_numpy(column: pa.Array, key: str, name: str, source: str) -> np.ndarray:
    """One batch of a column as numpy: `key` is our field (the kind), `name` the file's column."""
    if key in INDEX_COLUMNS:
        if not pa.types.is_integer(column.type):
            raise ValueError(
                f"column `{name}` in `{source}` should hold integers, but has type {column.type}"
            )
        if column.null_count:
            raise ValueError(f"column `{name}` in `{source}` has {column.null_count} null values")
        return column.to_numpy()
    if key.startswith("valid_"):  # a scores file's validity mask; null counts as not valid
        if not (pa.types.is_boolean(column.type) or pa.types.is_integer(column.type)):
            raise ValueError(
                f"validity mask `{name}` in `{source}` should hold booleans, but has type {column.type}"
            )
        return column.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise ValueError(f"column `{name}` in `{source}` should hold floats, but has type {column.type}")
    return column.cast(pa.float32()).to_numpy(zero_copy_only=False)  # nulls become NaN


def decoded_metadata(raw) -> dict[str, str]:
    """Every schema metadata key and value as text (unknown keys too), without pyarrow's own schema."""
    return {
        k.decode(errors="replace"): v.decode(errors="replace")
        for k, v in (raw or {}).items()
        if k != b"ARROW:schema"
    }
