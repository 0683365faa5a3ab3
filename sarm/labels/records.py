"""Mistake spans and outcomes on disk: LeRobot episode columns, spans JSON and outcome files.

The episode columns (codebase v3.0 `meta/episodes/**/*.parquet`, one row per episode):

| column | type | meaning |
|---|---|---|
| `{sparse,dense}_subtask_{names,start_frames,end_frames}` | list<string> / list<int64> | stage spans |
| `{sparse,dense}_subtask_{start,end}_times` | list<double> | the same in seconds (`frame / fps`) |
| `mistake_names` | list<string> | each mistake's kind, a free label ("pause", "drop_regrasp") |
| `mistake_start_frames`, `mistake_end_frames` | list<int64> | its inclusive, episode-relative frames |
| `outcome` | string | "success", "failure", "partial", or null (unknown) |

LeRobot reads the episodes table whole (`load_episodes` keeps every column but `stats/*`) and looks its
own columns up by name, so it carries the four extra columns and never reads them; its SARM code reads
only the `*_subtask_*` columns. `episode_columns` builds any set of them for
`sarm.data.episodes.write_episode_columns`; `COLUMN_TYPES` gives their arrow types.

Spans JSON (`sarm.labels.annotations.read_spans`) stays `{episode: [[name, start, end], ...] | null}`;
an episode may instead map to an object `{"spans": [...], "mistakes": [[kind, start, end], ...],
"outcome": "failure"}` (every key optional). An outcome file is `{episode: "success" | "failure" |
"partial" | true | false | null}`. `read_mistakes` and `read_outcomes` read any of these sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sarm.labels.mistakes import Mistake, coerce_outcome, validate_mistakes

__all__ = [
    "COLUMN_TYPES",
    "MISTAKE_COLUMNS",
    "OUTCOME_COLUMN",
    "episode_columns",
    "read_mistakes",
    "read_outcomes",
]

MISTAKE_COLUMNS = ("mistake_names", "mistake_start_frames", "mistake_end_frames")
OUTCOME_COLUMN = "outcome"
_SUBTASK = dict(
    names=pa.list_(pa.string()),
    start_frames=pa.list_(pa.int64()),
    end_frames=pa.list_(pa.int64()),
    start_times=pa.list_(pa.float64()),
    end_times=pa.list_(pa.float64()),
)
COLUMN_TYPES: dict[str, pa.DataType] = {
    **{f"{head}_subtask_{field}": t for head in ("sparse", "dense") for field, t in _SUBTASK.items()},
    "mistake_names": pa.list_(pa.string()),
    "mistake_start_frames": pa.list_(pa.int64()),
    "mistake_end_frames": pa.list_(pa.int64()),
    OUTCOME_COLUMN: pa.string(),
}


def episode_columns(
    *,
    spans: Mapping[str, Mapping[int, list | None]] | None = None,
    mistakes: Mapping[int, list | None] | None = None,
    outcomes: Mapping[int, object] | None = None,
    fps: float | None = None,
) -> dict[str, dict[int, object]]:
    """{column: {episode: value}} for the episode columns above, from spans per head ({head: {episode:
    [(name, start, end), ...] or None}}), mistakes ({episode: [(kind, start, end), ...] or None}) and
    outcomes ({episode: outcome or None}). With `fps`, the spans' `*_times` columns too. None clears an
    episode's value (null lists: unannotated)."""
    out: dict[str, dict[int, object]] = {}
    for head, per_episode in (spans or {}).items():
        if head not in ("sparse", "dense"):
            raise ValueError(f"spans head should be 'sparse' or 'dense', but got {head!r}")
        fields = ["names", "start_frames", "end_frames"] + (["start_times", "end_times"] if fps else [])
        for field in fields:
            out[f"{head}_subtask_{field}"] = {}
        for ep, items in per_episode.items():
            rows = None if items is None else [tuple(s) for s in items]
            values = [None] * 3 if rows is None else [[r[i] for r in rows] for i in range(3)]
            if fps:
                values += [None] * 2 if rows is None else [[r[i] / fps for r in rows] for i in (1, 2)]
            for field, value in zip(fields, values, strict=True):
                out[f"{head}_subtask_{field}"][int(ep)] = value
    if mistakes is not None:
        for column in MISTAKE_COLUMNS:
            out[column] = {}
        for ep, items in mistakes.items():
            marks = None if items is None else validate_mistakes(items, None, episode=ep)
            for i, column in enumerate(MISTAKE_COLUMNS):
                out[column][int(ep)] = None if marks is None else [m[i] for m in marks]
    if outcomes is not None:
        out[OUTCOME_COLUMN] = {int(ep): coerce_outcome(v, ep) for ep, v in outcomes.items()}
    return out


# ------------------------------------------------------------------------------------------------ read


def _episodes_tables(path: Path, columns) -> list[tuple[str, pa.Table]]:
    files = sorted((path / "meta" / "episodes").rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no `meta/episodes/**/*.parquet` under `{path}`; pass a v3.0 dataset root")
    out = []
    for file in files:
        try:
            names = pq.read_schema(file).names
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(f"`{file}` is not a readable parquet file ({err})") from err
        keep = [c for c in ("episode_index", "length", *columns) if c in names]
        out.append((str(file), pq.read_table(file, columns=keep)))
    return out


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"`{path}` is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(
            f"`{path}` should hold an object {{episode: ...}}, but holds a {type(data).__name__}"
        )
    return data


def _episode_key(key, source) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ValueError(f"episode key {key!r} in `{source}` is not an integer episode index") from None


def _source(source) -> tuple[str, dict | Path]:
    if isinstance(source, Mapping):
        return "<dict>", dict(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"`{path}` does not exist; pass a dataset root, an episodes parquet or JSON")
    return str(path), (_json(path) if path.suffix == ".json" else path)


def read_mistakes(source, num_frames: Mapping[int, int] | None = None) -> dict[int, list[Mistake]]:
    """{episode: validated mistakes} from a v3.0 dataset root or episodes parquet (`mistake_*` columns),
    a spans JSON file or dict (episodes given as objects with "mistakes"). Episodes without mistakes
    are left out; a source without any mistake record gives {}. `num_frames` ({episode: length}; the
    parquet's `length` column otherwise) checks that each mistake lies inside its episode."""
    name, data = _source(source)
    out: dict[int, list[Mistake]] = {}
    if isinstance(data, Path):
        for file, table in _episodes_tables(data, MISTAKE_COLUMNS):
            have = [c for c in MISTAKE_COLUMNS if c in table.column_names]
            if not have:
                continue
            if len(have) < 3:
                missing = [c for c in MISTAKE_COLUMNS if c not in have]
                raise ValueError(
                    f"`{file}` has mistake column(s) {have} but lacks {missing}; they come together"
                )
            rows = zip(
                *(table.column(c).to_pylist() for c in ("episode_index", *MISTAKE_COLUMNS)), strict=True
            )
            lengths = table.column("length").to_pylist() if "length" in table.column_names else None
            for i, (ep, kinds, starts, ends) in enumerate(rows):
                if kinds is None and starts is None and ends is None:
                    continue
                sizes = [None if v is None else len(v) for v in (kinds, starts, ends)]
                if None in sizes or len(set(sizes)) != 1:
                    raise ValueError(
                        f"episode {ep} in `{file}` has mismatched mistake lists ({sizes} entries); give one "
                        "kind, start and end frame per mistake"
                    )
                length = (num_frames or {}).get(ep, None if lengths is None else lengths[i])
                marks = _checked(list(zip(kinds, starts, ends, strict=True)), length, ep, file)
                if marks:
                    out[int(ep)] = marks
        return dict(sorted(out.items()))
    for key, value in data.items():
        ep = _episode_key(key, name)
        if isinstance(value, Mapping) and value.get("mistakes"):
            if not isinstance(value["mistakes"], list):
                raise ValueError(
                    f'episode {ep} in `{name}`: "mistakes" should be a list of [kind, start, end]'
                )
            out[ep] = _checked(value["mistakes"], (num_frames or {}).get(ep), ep, name)
    return dict(sorted(out.items()))


def _checked(items, length, ep, where) -> list[Mistake]:
    try:
        return validate_mistakes(items, length, episode=ep)
    except ValueError as err:
        raise ValueError(f"{err} (in `{where}`)") from None


def read_outcomes(source) -> dict[int, str]:
    """{episode: "success" | "failure" | "partial"} from a v3.0 dataset root or episodes parquet (the
    `outcome` column, strings or booleans), an outcome JSON `{episode: outcome}`, or a spans JSON
    (episodes given as objects with "outcome"). Unknown (null) outcomes are left out."""
    name, data = _source(source)
    out: dict[int, str] = {}
    if isinstance(data, Path):
        for file, table in _episodes_tables(data, (OUTCOME_COLUMN,)):
            if OUTCOME_COLUMN not in table.column_names:
                continue
            pairs = zip(
                table.column("episode_index").to_pylist(),
                table.column(OUTCOME_COLUMN).to_pylist(),
                strict=True,
            )
            for ep, value in pairs:
                try:
                    outcome = coerce_outcome(value, ep)
                except ValueError as err:
                    raise ValueError(f"{err} (in `{file}`)") from None
                if outcome is not None:
                    out[int(ep)] = outcome
        return dict(sorted(out.items()))
    for key, value in data.items():
        ep = _episode_key(key, name)
        if isinstance(value, list):  # plain spans: no outcome
            continue
        value = value.get("outcome") if isinstance(value, Mapping) else value
        try:
            outcome = coerce_outcome(value, ep)
        except ValueError as err:
            raise ValueError(f"{err} (in `{name}`)") from None
        if outcome is not None:
            out[ep] = outcome
    return dict(sorted(out.items()))
