"""Read stage annotations (LeRobot columns, BEHAVIOR-1K JSON, plain spans) into validated `Span` lists.

Every reader returns, per episode, a list of `Span(name, start, end)` with inclusive, episode-relative
frame indices sorted by start, or None for an unannotated episode. Validation (`validate_spans`)
refuses reversed spans, spans outside the episode, unknown stage names and overlaps of more than one
frame; one shared boundary frame (a skill ending at 619 and the next starting at 619) is allowed.
`validate_spans` and `number_repeats` live in `sarm.labels.spans` and import from here too.

Repeated skills become numbered stages (`number_repeats`): BEHAVIOR episodes repeat a skill name
("move to" the box, later "move to" the burner). Each occurrence after the first becomes its own
stage, numbered by occurrence within the episode: "move to", "move to #2", "move to #3". Across
episodes of one task the names line up by occurrence ("move to #2" is every episode's second move);
an episode with fewer repeats simply lacks the later stages (Eq. 1 counts it as 0 for them). The
second move may come at another point of another episode, though: then that episode goes back in the
task's stage order, which `StageSchema.targets(order=...)` refuses by default. Map skills to canonical
stages with `sarm.labels.canonical` (`StageMap`, ordinal stages; docs/labels.md).

Readers:
- `read_lerobot_annotations`: LeRobot's `{head}_subtask_{names,start_frames,end_frames}` columns in
  `meta/episodes/**/*.parquet` (codebase v3.0), legacy unprefixed columns for the sparse head.
- `read_behavior_annotations`: BEHAVIOR-1K `skill_annotation` JSON files.
- `read_spans`: `{episode: [[name, start, end], ...]}` from a dict or a JSON file (mistakes and
  outcomes of the same sources: `sarm.labels.records`).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sarm.labels.spans import Span, number_repeats, validate_spans

__all__ = [
    "BehaviorEpisode",
    "number_repeats",
    "read_behavior_annotations",
    "read_lerobot_annotations",
    "read_spans",
    "validate_spans",
]

HEADS = ("sparse", "dense")
_FIELDS = ("names", "start_frames", "end_frames")


# ---------------------------------------------------------------------------------------------- LeRobot


def read_lerobot_annotations(
    source, head: str = "sparse", *, clip_end: bool = True
) -> dict[int, list[Span] | None]:
    """Per-episode spans from LeRobot SARM annotation columns (`meta/episodes`, codebase v3.0).

    Args:
        source: a dataset root (reads every `meta/episodes/**/*.parquet`), one parquet file, a
            `pyarrow.Table` or a pandas DataFrame, with columns `episode_index`, `length` and
            `{head}_subtask_names`, `{head}_subtask_start_frames`, `{head}_subtask_end_frames` (list
            columns). For head "sparse" the legacy `subtask_*` columns are accepted too.
        head: "sparse" or "dense".
        clip_end: LeRobot writes `end_frame = int(end_seconds * fps)`, so a last subtask that ends with
            the episode has `end == length`, one past the last frame. With clip_end=True such ends
            become `length - 1` and the number of clipped spans is logged as a warning; anything
            further outside the episode is still an error. clip_end=False makes them errors too.

    Returns:
        {episode_index: spans}, sorted by episode; None for an episode whose lists are null or empty
        (unannotated) or that sits in a file without annotation columns.
    """
    if head not in HEADS:
        raise ValueError(f"head should be one of {list(HEADS)}, but got head={head!r}")
    tables = _lerobot_tables(source)
    wanted = [f"{head}_subtask_{f}" for f in _FIELDS]
    resolved = [(name, table, _annotation_columns(table.column_names, head, name)) for name, table in tables]
    if all(cols is None for _, _, cols in resolved):
        looked = wanted + ([f"subtask_{f}" for f in _FIELDS] if head == "sparse" else [])
        present = sorted({c for _, t, _ in resolved for c in t.column_names if "subtask_" in c})
        raise ValueError(
            f"no SARM annotation columns for head {head!r} in `{tables[0][0]}`"
            f"{f' (and {len(tables) - 1} more files)' if len(tables) > 1 else ''}; looked for {looked}, "
            f"subtask columns present: {present}. Annotate with LeRobot's `subtask_annotation.py`, or load "
            "your own spans with sarm.labels.annotations.read_spans"
        )
    out: dict[int, list[Span] | None] = {}
    clipped = [0]
    for name, table, cols in resolved:
        for required in ("episode_index", "length"):
            if required not in table.column_names:
                raise ValueError(
                    f"column `{required}` not found in `{name}`; available: {table.column_names}. "
                    "Pass LeRobot's meta/episodes table (codebase v3.0)"
                )
        episodes = table.column("episode_index").to_pylist()
        lengths = table.column("length").to_pylist()
        lists = [table.column(c).to_pylist() for c in cols] if cols else [[None] * len(episodes)] * 3
        for ep, length, ep_names, starts, ends in zip(episodes, lengths, *lists, strict=True):
            if ep in out:
                raise ValueError(f"episode {ep} appears twice in the episodes tables (again in `{name}`)")
            if clip_end and ends is not None and length is not None:
                clipped[0] += sum(e == length for e in ends)
                ends = [length - 1 if e == length else e for e in ends]
            out[ep] = _lerobot_episode(ep, length, ep_names, starts, ends, cols, name)
    if clipped[0]:
        warnings.warn(
            f"{clipped[0]} LeRobot span(s) ended one frame past their episode (end_frame == length); "
            "clipped to the last frame (clip_end=True)",
            stacklevel=2,
        )
    return dict(sorted(out.items()))


def _lerobot_tables(source) -> list[tuple[str, pa.Table]]:
    if isinstance(source, pa.Table):
        return [("<table>", source)]
    if type(source).__module__.split(".")[0] == "pandas":
        return [("<DataFrame>", pa.Table.from_pandas(source, preserve_index=False))]
    path = Path(source)
    if path.is_dir():
        files = sorted((path / "meta" / "episodes").rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(
                f"no `meta/episodes/**/*.parquet` under `{path}`; pass a LeRobot dataset root "
                "(codebase v3.0) or the episodes parquet file itself"
            )
        return [(str(f), _read_parquet(f)) for f in files]
    if not path.is_file():
        raise FileNotFoundError(f"`{path}` does not exist; pass a dataset root or an episodes parquet file")
    return [(str(path), _read_parquet(path))]


def _read_parquet(path: Path) -> pa.Table:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"`{path}` is not a readable parquet file ({err})") from err
    keep = [c for c in names if c in ("episode_index", "length") or "subtask_" in c]
    return pq.read_table(path, columns=keep)


def _annotation_columns(present, head: str, source: str) -> list[str] | None:
    candidates = [[f"{head}_subtask_{f}" for f in _FIELDS]]
    if head == "sparse":
        candidates.append([f"subtask_{f}" for f in _FIELDS])
    for cols in candidates:
        have = [c for c in cols if c in present]
        if len(have) == len(cols):
            return cols
        if have:
            missing = [c for c in cols if c not in present]
            raise ValueError(
                f"`{source}` has annotation column(s) {have} but lacks {missing}; the three columns "
                "come together (re-run the annotation, or drop the partial columns)"
            )
    return None


def _lerobot_episode(ep, length, names, starts, ends, cols, source) -> list[Span] | None:
    if names is None and starts is None and ends is None:
        return None
    sizes = [None if v is None else len(v) for v in (names, starts, ends)]
    if None in sizes or len(set(sizes)) != 1:
        raise ValueError(
            f"episode {ep} in `{source}` has mismatched annotation lists: "
            f"{dict(zip(cols, sizes, strict=True))} entries; names, start and end frames need one entry per "
            "subtask (re-annotate this episode)"
        )
    if sizes[0] == 0:
        return None
    if length is None:
        raise ValueError(f"episode {ep} in `{source}` has a null `length`; fix meta/episodes")
    try:
        return validate_spans(list(zip(names, starts, ends, strict=True)), length, episode=ep)
    except ValueError as err:
        raise ValueError(f"{err} (in `{source}`)") from None


# --------------------------------------------------------------------------------------------- BEHAVIOR


@dataclass(frozen=True)
class BehaviorEpisode:
    """One BEHAVIOR-1K annotation file: its task text, numbered spans and number of frames.

    `num_frames` is None when the file has no `meta_data.valid_duration` and no length was passed in
    (`read_behavior_annotations(num_frames=...)`): its spans are then checked against the episode's
    length where that is known (e.g. `sarm.training.from_cache.prepare_training`, from the cache)."""

    task: str
    spans: list[Span]
    num_frames: int | None


def read_behavior_annotations(
    path, *, relative_to_valid_start: bool = True, num_frames=None
) -> dict[str, BehaviorEpisode]:
    """Read BEHAVIOR-1K `skill_annotation` JSON (a file, or a directory of `*.json`), keyed by file stem.

    Each skill becomes one span per frame interval (`frame_duration` is [s, e] or [[s, e], ...]) named by
    its `skill_description` (several descriptions are joined with " + "); repeated names are numbered
    (`number_repeats`). Frames in the files are absolute in the recording. With
    `relative_to_valid_start` (default) they are shifted by `meta_data.valid_duration[0]` and the
    episode has `valid_duration[1] - valid_duration[0] + 1` frames (the end frame included), so frame 0
    is the first valid frame; otherwise frames stay absolute and the episode has `valid_duration[1] + 1`
    frames. Frames before the first skill are simply before the first span (stage 0, tau 0). A
    `task_duration` that disagrees with `valid_duration` only warns.

    A file without `meta_data` (or without `meta_data.valid_duration`) is read with its frames as the
    episode's own frames (no shift); its length comes from `num_frames`: one int for every file, or a
    mapping from file stem or episode number (the integer at the end of the stem) to length. A length
    that is not known leaves `num_frames=None` (see `BehaviorEpisode`).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"no `*.json` annotation files in `{path}`")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"`{path}` does not exist; pass a BEHAVIOR annotation JSON file or folder")
    return {
        f.stem: _behavior_episode(f, relative_to_valid_start, _known_length(num_frames, f.stem))
        for f in files
    }


def _known_length(num_frames, stem: str) -> int | None:
    if num_frames is None or _is_int(num_frames):
        return num_frames
    if not isinstance(num_frames, Mapping):
        raise ValueError(
            f"num_frames should be an int or a mapping {{file stem or episode: length}}, got {num_frames!r}"
        )
    if stem in num_frames:
        return num_frames[stem]
    match = re.search(r"(\d+)$", stem)
    return None if match is None else num_frames.get(int(match.group(1)))


def _behavior_episode(file: Path, relative: bool, known: int | None = None) -> BehaviorEpisode:
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"`{file}` is not valid JSON ({err})") from err
    task = _get(data, "task_name", str, file)
    meta = _get(data, "meta_data", dict, file) if "meta_data" in data else {}
    if "valid_duration" in meta:
        valid = _get(meta, "valid_duration", list, file, "meta_data.valid_duration")
        if len(valid) != 2 or not all(_is_int(v) for v in valid) or valid[0] > valid[1]:
            raise ValueError(
                f"`{file}`: meta_data.valid_duration should be [first, last] integer frames, but is {valid!r}"
            )
        first, last = valid
        offset, num_frames = (first, last - first + 1) if relative else (0, last + 1)
        duration = meta.get("task_duration")
        if duration is not None and duration not in (last - first, last - first + 1):
            warnings.warn(
                f"`{file}`: meta_data.task_duration = {duration!r} disagrees with valid_duration {valid} "
                f"({last - first + 1} frames inclusive); using valid_duration",
                stacklevel=3,
            )
    else:  # no valid_duration: the frames are the episode's own, its length comes from the caller
        offset, num_frames = 0, known
    skills = _get(data, "skill_annotation", list, file)
    raw = []
    for i, skill in enumerate(skills):
        where = f"skill_annotation[{i}]"
        if not isinstance(skill, dict):
            raise ValueError(f"`{file}`: {where} should be an object, but is {type(skill).__name__}")
        desc = _get(skill, "skill_description", (list, str), file, f"{where}.skill_description")
        desc = [desc] if isinstance(desc, str) else desc
        if not desc or not all(isinstance(d, str) and d for d in desc):
            raise ValueError(
                f"`{file}`: {where}.skill_description should be a non-empty list of strings, but is {desc!r}"
            )
        name = " + ".join(desc)
        frames = _get(skill, "frame_duration", list, file, f"{where}.frame_duration")
        for s, e in _intervals(frames, file, where):
            raw.append(Span(name, s - offset, e - offset))
    try:
        spans = validate_spans(raw, num_frames, episode=file.stem)
    except ValueError as err:
        raise ValueError(f"{err} (in `{file}`, frames shifted by {offset})") from None
    return BehaviorEpisode(task=task, spans=number_repeats(spans), num_frames=num_frames)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _intervals(frames, file, where) -> list[tuple[int, int]]:
    if len(frames) == 2 and all(_is_int(v) for v in frames):
        return [tuple(frames)]
    if frames and all(isinstance(f, list) and len(f) == 2 and all(_is_int(v) for v in f) for f in frames):
        return [tuple(f) for f in frames]
    raise ValueError(
        f"`{file}`: {where}.frame_duration should be [start, end] or a list of [start, end] integer "
        f"intervals, but is {frames!r}"
    )


def _get(obj: dict, key: str, kind, file, label: str | None = None):
    if key not in obj:
        raise ValueError(f"`{file}` lacks the key `{label or key}`; is this a BEHAVIOR-1K annotation file?")
    value = obj[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValueError(f"`{file}`: `{label or key}` should be a {names}, but is {type(value).__name__}")
    return value


# ------------------------------------------------------------------------------------------ plain spans


def read_spans(source, num_frames: Mapping[int, int] | None = None) -> dict[int, list[Span] | None]:
    """Spans per episode from `{episode: [[name, start, end], ...]}` (or span dicts), a dict or JSON file.

    Episode keys may be ints or strings of ints (JSON). A null value marks an unannotated episode
    (returned as None). An episode may also map to an object `{"spans": [...], "mistakes": [...],
    "outcome": ...}` (`sarm.labels.records`); this reader takes its "spans" (absent: None).
    With `num_frames` ({episode: length}) the spans are also checked against each episode's length.
    """
    name = "<dict>"
    if not isinstance(source, Mapping):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"spans file `{path}` does not exist")
        try:
            source = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"`{path}` is not valid JSON ({err})") from err
        name = str(path)
        if not isinstance(source, dict):
            raise ValueError(f"`{path}` should hold an object {{episode: [[name, start, end], ...]}}")
    out: dict[int, list[Span] | None] = {}
    for key, spans in source.items():
        try:
            ep = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"episode key {key!r} in `{name}` is not an integer episode index") from None
        if isinstance(spans, Mapping):  # {"spans": [...], "mistakes": [...], "outcome": ...}
            spans = spans.get("spans")
        if spans is None:
            out[ep] = None
            continue
        if not isinstance(spans, list | tuple):
            raise ValueError(f"episode {ep} in `{name}` should map to a list of spans, but got {spans!r}")
        length = None
        if num_frames is not None:
            if ep not in num_frames:
                raise ValueError(f"episode {ep} in `{name}` has no entry in num_frames; pass its length")
            length = num_frames[ep]
        try:
            out[ep] = validate_spans(spans, length, episode=ep)
        except ValueError as err:
            raise ValueError(f"{err} (in `{name}`)") from None
    return dict(sorted(out.items()))
