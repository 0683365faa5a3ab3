"""Read, validate and write progress files in LeRobot's `sarm_progress.parquet` schema.

The progress file is the interchange format between a reward model and RA-BC. LeRobot's
`compute_rabc_weights` writes it, and so do Robometer, TOPReward and our `sarm progress`:

    index          int64    global frame index in the dataset, strictly increasing
    episode_index  int64    episode of the frame; each episode's rows are contiguous
    frame_index    int64    frame inside its episode (index - frame_index is constant per episode)
    progress_sparse float32 normalised progress in [0, 1] (NaN = unknown), optional
    progress_dense  float32 same for the dense head, optional

plus free-form schema metadata (LeRobot writes `reward_model_path`).

`read_progress` also reads LeRobot's newer typed score files (`<root>/scores/<name>.parquet`, open PRs
#4553-#4555): their progress signals fill the same `ProgressTable`, a validity mask turns into NaN
progress (RA-BC's counted fallback), and `table.file_format` says which layout was read. The draft's
mapping lives in `rabc.score_files`, and nowhere else.

Everything here works on whole numpy columns: reading 10^8 rows builds no per-row Python object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rabc import score_files
from rabc.files import atomic_write
from rabc.progress_columns import (
    HEADS,
    INDEX_COLUMNS,
    decoded_metadata,
    lerobot_plan,
    open_source,
    read_columns,
    stage_number,
    stage_prob_lists,
)

__all__ = ["HEADS", "ProgressFormat", "ProgressTable", "episode_runs", "read_progress", "write_progress"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressFormat:
    """Which layout a progress table was read from, and what of it (printed by every command)."""

    kind: str = "lerobot"  # "lerobot": today's sarm_progress.parquet | "scores": LeRobot's typed scores file
    columns: dict[str, str] = field(default_factory=dict)  # head -> the file column read as its progress
    version: int | None = None  # scores: schema version
    key_prefix: str | None = (
        None  # scores: "lerobot.scores" (or the earlier draft's "lerobot.reward_scoring")
    )
    masked: int = 0  # scores: rows whose validity mask was False, read as NaN progress
    descriptors: dict = field(default_factory=dict)  # scores: the signal descriptors, as stored
    provenance: dict = field(default_factory=dict)  # scores: who scored what, as stored

    def __str__(self) -> str:
        if self.kind == "scores":
            return score_files.describe(self.key_prefix, self.version, self.columns, self.masked)
        return f"LeRobot sarm_progress layout ({', '.join(self.columns.values()) or 'no progress column'})"


@dataclass(frozen=True)
class ProgressTable:
    """Columns of a progress file as numpy arrays, validated (see `read_progress`)."""

    index: np.ndarray  # int64 (N,)
    episode_index: np.ndarray  # int64 (N,)
    frame_index: np.ndarray  # int64 (N,)
    progress: dict[str, np.ndarray]  # head ("sparse" | "dense") -> float32 (N,)
    metadata: dict[str, str] = field(default_factory=dict)  # every schema metadata key, unknown ones too
    source: str = "<table>"
    file_format: ProgressFormat = field(default_factory=ProgressFormat)
    # per head, when the file has them: "valid_<head>" bool (N,) (always read), and with
    # `read_progress(..., extras=True)` "stage_probs_<head>" float32 (N, K), "confidence_<head>" float32 (N,)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def heads(self) -> list[str]:
        return list(self.progress)

    @property
    def format(self) -> str:
        """ "lerobot" (today's `sarm_progress.parquet`) or "scores" (LeRobot's typed scores file)."""
        return self.file_format.kind

    def format_line(self) -> str:
        """`read <file>: <layout>`, the line every command prints after reading a progress file."""
        return f"read {self.source}: {self.file_format}"

    def column(self, head: str) -> np.ndarray:
        """The progress of one head, with an error that names what exists when it is absent."""
        if head not in HEADS:
            raise ValueError(f"head should be one of {list(HEADS)}, but got head={head!r}")
        if head not in self.progress:
            fix = "--format scores " if self.format == "scores" else ""
            available = list(self.file_format.columns.values()) or [f"progress_{h}" for h in self.progress]
            raise ValueError(
                f"column `progress_{head}` not found in `{self.source}`; available: {available}; compute it "
                f"with `sarm progress --head {head} {fix}`or choose head={self.heads[0]!r}"
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


def read_progress(
    source,
    heads=None,
    *,
    sort: bool = False,
    progress_bar: bool = False,
    extras: bool = False,
    score: str | None = None,
) -> ProgressTable:
    """Read and validate a progress file of either layout (or a `pyarrow.Table` with the same columns).

    Two layouts are read (`table.file_format` says which, `table.format_line()` prints it):
    LeRobot's `sarm_progress.parquet` (`progress_<head>` columns), and LeRobot's typed scores file
    `<root>/scores/<name>.parquet` (a draft of open PRs #4553-#4555, mapped by `rabc.score_files`):
    its progress signal per head, with the validity mask applied as NaN progress.

    Args:
        source: a progress file, a `pyarrow.Table`, or a directory when that is unambiguous: a dataset
            root holding one of `sarm_progress.parquet` / `scores/<name>.parquet`, or a `scores/` folder
            holding one file.
        heads: which progress heads to load (default: every head the file has).
        sort: sort rows by `index` first; without it, unsorted rows are an error.
        progress_bar: show a tqdm bar over the file's row groups (useful at 10^8 rows).
        extras: also load stage probabilities and confidence into `table.extras`, where the file has them.
        score: with a directory `source`, the score name to read (`<source>/scores/<score>.parquet`).

    Raises:
        ValueError: a missing column (the message names those present), a duplicate or unsorted
            `index`, an episode whose rows are not contiguous, an inconsistent `frame_index`, or a
            progress value outside [0, 1]. NaN progress is allowed (LeRobot writes NaN where its model
            failed) and counted by RA-BC as an explicit fallback.
    """
    for head in heads or ():
        if head not in HEADS:
            raise ValueError(f"head should be one of {list(HEADS)}, but got head={head!r}")
    if not isinstance(source, pa.Table):
        source = resolve_source(source, score)
    name = "<table>" if isinstance(source, pa.Table) else str(source)
    schema, num_rows, batches = open_source(source, name)
    prefix = score_files.detect(schema.metadata)
    if prefix is not None:
        plan = score_files.plan_read(schema, name, heads)
        wanted = {
            k: c for k, c in plan["columns"].items() if extras or not k.startswith(("confidence", "stage"))
        }
        fmt = dict(kind="scores", columns=plan["progress"], version=plan["version"], key_prefix=prefix)
        fmt |= dict(descriptors=plan["descriptors"], provenance=plan["provenance"])
    else:
        wanted = lerobot_plan(schema.names, name, heads)
        fmt = dict(kind="lerobot", columns={k.removeprefix("progress_"): c for k, c in wanted.items()})
    columns = read_columns(batches, num_rows, name, {**{c: c for c in INDEX_COLUMNS}, **wanted}, progress_bar)
    if extras and prefix is None:
        columns |= stage_prob_lists(
            source, name, [h for h in HEADS if f"progress_{h}" in wanted], schema.names
        )
    if sort:
        order = np.argsort(columns["index"], kind="stable")
        columns = {key: values[order] for key, values in columns.items()}
    progress = {h: columns.pop(f"progress_{h}") for h in HEADS if f"progress_{h}" in columns}
    invalid = np.zeros(num_rows, bool)
    for head, values in progress.items():
        if (valid := columns.get(f"valid_{head}")) is not None:
            values[~valid] = np.nan  # the validity mask -> unknown progress (RA-BC's counted fallback)
            invalid |= ~valid
    for head in progress:  # stage k columns of a scores file -> one (N, K) array
        stages = sorted((k for k in columns if k.startswith(f"stage_probs_{head}/")), key=stage_number)
        if stages:
            columns[f"stage_probs_{head}"] = np.stack([columns.pop(k) for k in stages], axis=1)
    extra = {k: columns.pop(k) for k in list(columns) if k not in INDEX_COLUMNS}
    metadata = decoded_metadata(schema.metadata)
    file_format = ProgressFormat(**fmt, masked=int(invalid.sum()))
    table = ProgressTable(
        **columns, progress=progress, metadata=metadata, source=name, file_format=file_format, extras=extra
    )
    _validate(table)
    log.info("%s", table.format_line())
    return table


def resolve_source(source, score: str | None = None) -> Path:
    """The progress file `source` names: itself, or the only one a dataset root or `scores/` folder holds."""
    path = Path(source)
    if score is not None:
        tries = [path / score_files.SCORES_DIR / f"{score}.parquet", path / f"{score}.parquet"]
        if found := [p for p in tries if p.is_file()]:
            return found[0]
        raise FileNotFoundError(f"score `{score}` not found: neither `{tries[0]}` nor `{tries[1]}` exists")
    if not path.is_dir():
        return path
    folder = path if path.name == score_files.SCORES_DIR else path / score_files.SCORES_DIR
    choices = [path / "sarm_progress.parquet"] if (path / "sarm_progress.parquet").is_file() else []
    if folder.is_dir():
        choices += sorted(p for p in folder.glob("*.parquet") if p.is_file() and not p.name.startswith("."))
    if len(choices) == 1:
        return choices[0]
    if not choices:
        raise FileNotFoundError(
            f"`{path}` is a directory without a progress file (looked for `sarm_progress.parquet` and "
            f"`{score_files.SCORES_DIR}/<name>.parquet`); pass the file, or write one with `sarm progress`"
        )
    raise ValueError(
        f"`{path}` holds {len(choices)} progress files: {[str(p) for p in choices]}; pass one of them"
    )


def write_progress(path, table: ProgressTable, metadata: dict[str, str] | None = None) -> Path:
    """Validate `table` and write it atomically in LeRobot's schema (temp file + rename).

    A table read from a scores file keeps its other metadata, without the scores layout's own keys."""
    _validate(table)
    arrays = {key: pa.array(getattr(table, key), pa.int64()) for key in INDEX_COLUMNS}
    for head, values in table.progress.items():
        arrays[f"progress_{head}"] = pa.array(values.astype(np.float32, copy=False), pa.float32())
    meta = {**table.metadata, **(metadata or {})}
    meta = {k: v for k, v in meta.items() if not k.startswith(tuple(p + "." for p in score_files.PREFIXES))}
    out = pa.table(arrays).replace_schema_metadata({k.encode(): str(v).encode() for k, v in meta.items()})
    return atomic_write_parquet(out, path)


def atomic_write_parquet(table: pa.Table, path) -> Path:
    """Write `table` to a temporary file beside `path`, then rename it into place (see `rabc.files`)."""
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


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
