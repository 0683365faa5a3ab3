"""Set per-episode columns of a v3.0 dataset's `meta/episodes/**/*.parquet`, atomically, with a backup.

    written = write_episode_columns(root, {3: {"sparse_subtask_names": ["grab", "fold"], ...}},
                                    types={"sparse_subtask_names": pa.list_(pa.string()), ...})
    written.files, written.backup          # the rewritten parquet files; where their originals were copied

Rows are found by their `episode_index` (LeRobot's `subtask_annotation.py` uses the global episode index
as a row label of each file, which is only right while all episodes sit in one file). Episodes not named
keep their values; a new column is null for them. Everything is prepared before anything is written:
each touched file is read, its new table built, and an episode that no file holds is an error. Then the
originals are copied to `meta/backup/episodes-<UTC time>/` (same relative paths) and each file is
replaced through a temporary file and a rename; just before its rename a file is checked unchanged on
disk (size, mtime and content hash as read), so a concurrent edit is refused instead of overwritten.
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

__all__ = ["ColumnsWritten", "write_episode_columns"]


@dataclass(frozen=True)
class ColumnsWritten:
    files: list[Path]
    backup: Path | None


def _signature(path: Path) -> tuple[int, int, str]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _unchanged(path: Path, signature: tuple, saved: Path | None) -> None:
    if _signature(path) != signature:
        raise DatasetError(
            f"`{path}` changed on disk while the new columns were prepared (another program wrote it); it "
            f"was left as it is now{f', the original is in `{saved}`' if saved else ''}. Run again when "
            "nothing else writes the dataset"
        )


def _replace(table: pa.Table, name: str, values: list, kind: pa.DataType) -> pa.Table:
    column = pa.array(values, type=kind)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), pa.field(name, kind), column)
    return table.append_column(pa.field(name, kind), column)


def write_episode_columns(
    root: str | os.PathLike,
    values: Mapping[int, Mapping[str, Any]],
    types: Mapping[str, pa.DataType],
    *,
    backup: bool = True,
) -> ColumnsWritten:
    """Write `values` ({episode_index: {column: value}}) into the episodes parquet files of `root`.

    Every column named in `values` needs its arrow type in `types`; existing values of that column are
    cast to it. Returns the files rewritten and the backup folder (None when nothing was written or
    `backup=False`). Raises DatasetError for a dataset without `meta/episodes` parquet files, an episode
    no file holds, or a file that changed on disk while this ran.
    """
    root = Path(root)
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise DatasetError(
            f"no `meta/episodes/**/*.parquet` under `{root}`; episode columns live there in codebase v3.0 "
            "datasets (for v2.1 write the annotations to a spans file instead)"
        )
    wanted = {int(e): dict(v) for e, v in values.items()}
    missing_types = sorted({c for v in wanted.values() for c in v} - set(types))
    if missing_types:
        raise ValueError(f"columns {missing_types} have no arrow type in `types`")
    plans, found = [], set()
    for path in files:
        signature = _signature(path)
        table = pq.read_table(path)
        if "episode_index" not in table.column_names:
            raise DatasetError(
                f"`{path}` has no `episode_index` column; restore it from the dataset's source"
            )
        episodes = table.column("episode_index").to_pylist()
        here = [e for e in episodes if e in wanted]
        if not here:
            continue
        found.update(here)
        for name in sorted({c for e in here for c in wanted[e]}):
            old = table.column(name).to_pylist() if name in table.column_names else [None] * len(episodes)
            new = [
                wanted[e][name] if e in wanted and name in wanted[e] else v
                for e, v in zip(episodes, old, strict=True)
            ]
            table = _replace(table, name, new, types[name])
        plans.append((path, signature, table))
    absent = sorted(set(wanted) - found)
    if absent:
        raise DatasetError(
            f"episodes {absent[:20]} are in no `meta/episodes` file of `{root}`; nothing was written"
        )
    if not plans:
        return ColumnsWritten([], None)
    for path, signature, _ in plans:
        _unchanged(path, signature, None)
    saved = None
    if backup:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        saved = root / "meta" / "backup" / f"episodes-{stamp}"
        n = 1
        while saved.exists():
            n += 1
            saved = saved.with_name(f"episodes-{stamp}-{n}")
        for path, _, _ in plans:
            target = saved / path.relative_to(root / "meta" / "episodes")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for path, signature, table in plans:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(table, tmp)
            _unchanged(path, signature, saved)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return ColumnsWritten([p for p, _, _ in plans], saved)
