"""Read a dataset's JSON and parquet files so that a damaged one is a `DatasetError` naming it.

    info = read_json(root / "meta" / "info.json", dict)   # not JSON, or a list: DatasetError naming it
    rows = read_jsonl(root / "meta" / "episodes.jsonl")     # a bad line: DatasetError naming file and line
    table = read_parquet(path, columns=["episode_index"])   # not parquet: DatasetError naming the file

pyarrow's own errors (`ArrowInvalid: Parquet magic bytes not found in footer...`) do not say which file of
thousands is damaged; these wrappers do, and say to restore it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sarm.data.errors import DatasetError

__all__ = ["read_json", "read_jsonl", "read_parquet", "read_parquet_rows", "read_parquet_schema"]


def _error(message: str) -> Exception:
    return DatasetError(message)


def read_json(path: Path, kind: type | None = None) -> Any:
    """Parsed JSON file; `kind` (dict or list) is the type the top level must have."""
    try:
        value = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _error(
            f"`{path}` is not valid JSON ({e}); restore it from the dataset's source "
            "(LeRobot writes it with json.dump)"
        ) from None
    if kind is not None and not isinstance(value, kind):
        raise _error(
            f"`{path}` holds a JSON {type(value).__name__}, but a JSON {_names[kind]} is expected; "
            "restore it from the dataset's source"
        )
    return value


_names = {dict: "object ({...})", list: "list ([...])"}


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per non-empty line."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _error(f"`{path}` line {number} is not valid JSON ({e}); restore the file") from None
        if not isinstance(row, dict):
            raise _error(
                f"`{path}` line {number} is a JSON {type(row).__name__}, not an object; restore the file"
            )
        rows.append(row)
    return rows


def _damaged(path: Path, error: Exception) -> Exception:
    return _error(
        f"`{path}` is not a readable parquet file ({type(error).__name__}: {error}); it may be truncated "
        "or damaged: restore it from the dataset's source"
    )


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _damaged(path, e) from None


def read_parquet_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _damaged(path, e) from None


def read_parquet_rows(path: Path) -> int:
    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _damaged(path, e) from None
