"""Write episode columns into a v3.0 dataset's `meta/episodes` parquet: atomic, backed up, and refused
when the files changed since they were read.

    token = episodes_token(root)                          # when the editor reads the dataset
    cols = episode_columns(mistakes={60: [("drop", 40, 55)]}, outcomes={60: "failure"})  # sarm.labels.records
    written = write_episode_columns(root, cols, token=token)  # .token: the files' token as now written
    written.files, written.backup                            # the rewritten files; where originals went

`columns` is any `{column: {episode_index: value}}`: annotation columns (`sarm.labels.records`:
`{sparse,dense}_subtask_*`, `mistake_*`, `outcome`) or others. Episodes not named keep their value; a
new column is null for them. Types come from `COLUMN_TYPES`, else the existing column's type, else
arrow's inference. Every file holding a named episode is rewritten whole through a temporary file and
an atomic rename, after a copy of the old file is kept under `meta/backups/episodes-<UTC time>/` (outside
`meta/episodes/`, so neither LeRobot nor `sarm.data` reads it as episodes). With `token`, a file whose
size, modification time or SHA-256 differs from the token's (or a file added or removed) refuses the
whole write with `StaleEpisodesError` before anything is written: another writer (the explorer, a VLM
annotator, a person) changed it, so read again and reapply the edits. Damaged files are a
`DatasetError` naming them. Writes by two processes at once are not locked against each other; the
token check catches the later one unless both read the same state and write within one rename.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sarm.data.errors import DatasetError
from sarm.data.files import read_json, read_parquet
from sarm.labels.records import COLUMN_TYPES

__all__ = [
    "EpisodesToken",
    "EpisodesWritten",
    "StaleEpisodesError",
    "episodes_token",
    "write_episode_columns",
]

_PROTECTED = ("episode_index", "length", "tasks", "dataset_from_index", "dataset_to_index")


class StaleEpisodesError(DatasetError):
    """The episodes files changed on disk since the token was taken; nothing was written."""


@dataclass(frozen=True)
class EpisodesToken:
    """What the episodes files were when read: (path relative to the root, size, mtime_ns, sha256)."""

    files: tuple[tuple[str, int, int, str], ...]


@dataclass(frozen=True)
class EpisodesWritten:
    """What `write_episode_columns` did: the files' token after the write, the files it rewrote, and the
    folder holding copies of their originals (None without a backup or when nothing was rewritten)."""

    token: EpisodesToken
    files: list[Path]
    backup: Path | None


def _files(root: Path) -> list[Path]:
    info = root / "meta" / "info.json"
    if not info.is_file():
        raise DatasetError(f"`{root}` has no meta/info.json; pass the root of a LeRobot dataset")
    version = read_json(info, dict).get("codebase_version")
    if version != "v3.0":
        raise DatasetError(
            f"`{root}` is codebase {version!r}; writing episode columns needs v3.0 "
            "(meta/episodes/*.parquet): convert it with LeRobot's convert_dataset_v21_to_v30"
        )
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise DatasetError(
            f"`{root}` has no meta/episodes/**/*.parquet; restore it from the dataset's source"
        )
    return files


def _fingerprint(root: Path, path: Path) -> tuple[str, int, int, str]:
    stat = path.stat()
    return (
        str(path.relative_to(root)),
        stat.st_size,
        stat.st_mtime_ns,
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def episodes_token(root) -> EpisodesToken:
    """The token of `root`'s episodes files as they are now (take it when reading the dataset)."""
    root = Path(root)
    return EpisodesToken(tuple(_fingerprint(root, f) for f in _files(root)))


def _check_token(token: EpisodesToken, now: EpisodesToken, root: Path) -> None:
    if token == now:
        return
    old, new = {f[0]: f for f in token.files}, {f[0]: f for f in now.files}
    for rel in sorted(set(old) | set(new)):
        a, b = old.get(rel), new.get(rel)
        if a == b:
            continue
        what = (
            "appeared"
            if a is None
            else "was removed"
            if b is None
            else f"changed (size {a[1]} -> {b[1]} bytes)"
            if a[1] != b[1]
            else "changed (modified or rewritten)"
        )
        raise StaleEpisodesError(
            f"`{root / rel}` {what} since the dataset was read; nothing was written: read the dataset "
            "again (another editor or annotator wrote it) and reapply the edits"
        )


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _column(table: pa.Table, name: str, values: Mapping[int, Any], episodes: list) -> pa.Array:
    present = name in table.column_names
    old = table.column(name).to_pylist() if present else [None] * table.num_rows
    merged = [values.get(ep, old[i]) for i, ep in enumerate(episodes)]
    kind = COLUMN_TYPES.get(name) or (table.schema.field(name).type if present else None)
    try:
        return pa.array(merged, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"values for episode column `{name}` do not fit its type {kind} ({err})") from None


def write_episode_columns(
    root, columns: Mapping[str, Mapping[int, Any]], *, token: EpisodesToken | None = None, backup: bool = True
) -> EpisodesWritten:
    """Set `columns` ({column: {episode_index: value}}) in `root`'s meta/episodes files (module
    docstring); returns the files' new token, the files rewritten and the backup folder. Refuses
    columns LeRobot uses to find data (`episode_index`, `length`, `tasks`, `dataset_{from,to}_index`),
    `stats/*` and `data/`, `videos/` or `meta/` columns, and episodes that are not in the dataset."""
    root = Path(root)
    files = _files(root)
    now = EpisodesToken(tuple(_fingerprint(root, f) for f in files))
    if token is not None:
        _check_token(token, now, root)
    bad = [c for c in columns if c in _PROTECTED or c.split("/")[0] in ("stats", "data", "videos", "meta")]
    if bad:
        raise ValueError(
            f"episode columns {bad} locate the dataset's data and cannot be written; write others"
        )
    tables = [read_parquet(f) for f in files]
    where = {}
    for file, table in zip(files, tables, strict=True):
        if "episode_index" not in table.column_names:
            raise DatasetError(
                f"`{file}` has no `episode_index` column; restore it from the dataset's source"
            )
        for ep in table.column("episode_index").to_pylist():
            where[ep] = file
    named = {int(ep) for values in columns.values() for ep in values}
    missing = sorted(named - set(where))
    if missing:
        raise ValueError(f"episodes {missing[:10]} are not in `{root}` (it has {len(where)} episodes)")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backups = root / "meta" / "backups" / f"episodes-{stamp}"
    for n in range(2, 10_000):  # a second write within the same second keeps the first one's backup
        if not backups.exists():
            break
        backups = root / "meta" / "backups" / f"episodes-{stamp}-{n}"
    rewritten = []
    for file, table in zip(files, tables, strict=True):
        episodes = table.column("episode_index").to_pylist()
        if not named & set(episodes):
            continue
        for name, values in columns.items():
            array = _column(table, name, {int(k): v for k, v in values.items()}, episodes)
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        if backup:
            target = backups / file.relative_to(root / "meta" / "episodes")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
        _write_atomic(table, file)
        rewritten.append(file)
    return EpisodesWritten(episodes_token(root), rewritten, backups if backup and rewritten else None)
