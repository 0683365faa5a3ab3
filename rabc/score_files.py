"""LeRobot's typed score files, `<dataset root>/scores/<name>.parquet`: detect, plan a read, write.

DRAFT. Everything here follows LeRobot's *open* pull requests #4553-#4555 (typed reward-model
predictions, resumable offline dataset scoring, dataset score storage with `dataset.add_score()`), read
from their branches in September 2026. It is kept in this one module so that a change in the merged
format is a change here only. What the drafts fix (confirmed from their code):

    columns    index, episode_index, frame_index (int64), then one column per *signal*, sorted by name,
               each a 1-D bool / int / float column aligned with the frames (an episode may hold a subset
               of its frames); one row group per episode in the published file
    metadata   <prefix>.format = "lerobot.frame_signals"   <prefix>.schema_version = "1"
               <prefix>.provenance   canonical JSON object (who scored what)
               <prefix>.descriptors  canonical JSON {signal: {description, direction, bounds, unit,
                                     allow_nan}} (the earlier draft: missing_values "forbidden" | "nan")
               prefix "lerobot.scores" (PR #4555's storage); earlier drafts "lerobot.reward_scoring"
               (with an extra `.episode_indices` key)

What is *our reading* (the drafts name signals `reward.<model>.<signal>`, e.g. RoboMeter's
`reward.robometer.progress`, but no SARM scorer writes this layout yet): how signal names map to our
`ProgressTable` fields (`parse_signal`), and the names `write_scores` gives SARM's outputs:

    reward.<model>.<head>.progress                 progress of head "sparse" / "dense", in [0, 1]
    reward.<model>.<head>.valid                    validity mask: False -> the reader sets progress NaN
    reward.<model>.<head>.stage_confidence         the largest stage probability of the frame
    reward.<model>.<head>.stage_probability.<k>    probability of stage k

A name without a head (`reward.robometer.progress`) is the sparse head; `progress_sparse` and
`progress_dense` (LeRobot's legacy columns imported as signals) map as their names say. Metadata keys
this module does not know are kept (`ProgressTable.metadata`), never an error. docs/formats.md holds the
full mapping table.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rabc.files import atomic_write

__all__ = [
    "FORMAT",
    "PREFIXES",
    "SCHEMA_VERSION",
    "SCORES_DIR",
    "describe",
    "detect",
    "lerobot_view",
    "parse_signal",
    "plan_read",
    "signal_names",
    "write_scores",
]

log = logging.getLogger(__name__)

SCORES_DIR = "scores"  # <dataset root>/scores/<name>.parquet
FORMAT = "lerobot.frame_signals"
SCHEMA_VERSION = 1
PREFIXES = ("lerobot.scores", "lerobot.reward_scoring")  # newest first; `write_scores` writes the first
RESERVED = ("index", "episode_index", "frame_index")
DRAFT = "draft of LeRobot PRs #4553-#4555"
_HEADS = ("sparse", "dense")
_ROLES = {
    "progress": "progress",
    "valid": "valid",
    "valid_mask": "valid",
    "is_valid": "valid",
    "stage_confidence": "stage_confidence",
    "confidence": "stage_confidence",
    "stage_probability": "stage_probability",
    "stage_probabilities": "stage_probability",
}
_SIGNAL = re.compile(
    r"(?:(?P<prefix>.+?)\.)??(?:(?P<head>sparse|dense)\.)?(?P<role>"
    + "|".join(sorted(_ROLES, key=len, reverse=True))
    + r")(?:_(?P<suffix>sparse|dense))?(?:\.(?P<stage>\d+))?"
)
_FIX = "rewrite it with its producer (LeRobot's dataset.add_score, or `sarm progress --format scores`)"


def detect(metadata: Mapping[bytes, bytes] | None) -> str | None:
    """The key prefix ("lerobot.scores" or the earlier "lerobot.reward_scoring") of a scores file's
    metadata, or None for any other parquet file (e.g. today's `sarm_progress.parquet`)."""
    for prefix in PREFIXES:
        if f"{prefix}.format".encode() in (metadata or {}):
            return prefix
    return None


def parse_signal(name: str) -> tuple[str | None, str, str, int | None] | None:
    """(model prefix, head, role, stage) of a signal name we map, or None for a signal we only keep.

    >>> parse_signal("reward.sarm.dense.stage_probability.2")
    ('reward.sarm', 'dense', 'stage_probability', 2)
    >>> parse_signal("reward.robometer.progress"), parse_signal("reward.robometer.success_probability")
    (('reward.robometer', 'sparse', 'progress', None), None)
    """
    m = _SIGNAL.fullmatch(name)
    if m is None or (m["head"] and m["suffix"] and m["head"] != m["suffix"]):
        return None
    role = _ROLES[m["role"]]
    if (m["stage"] is not None) != (role == "stage_probability"):
        return None
    stage = None if m["stage"] is None else int(m["stage"])
    return m["prefix"], m["head"] or m["suffix"] or "sparse", role, stage


def plan_read(schema: pa.Schema, source: str, heads: Sequence[str] | None) -> dict[str, Any]:
    """What to read from a scores file (its schema detected by `detect`) to fill a `ProgressTable`.

    Returns {"columns": {our key: file column}, "heads", "prefix", "version", "signals" (all signal
    columns), "progress" (head -> signal), "descriptors", "provenance"}. Our keys: `progress_<head>`,
    `valid_<head>`, `confidence_<head>`, `stage_probs_<head>/<k>`.
    """
    meta = schema.metadata or {}
    prefix = detect(meta)
    found = _text(meta, f"{prefix}.format", source)
    if found != FORMAT:
        raise ValueError(
            f"`{source}` declares {prefix}.format = {found!r}, but this reader knows {FORMAT!r} (the "
            f"{DRAFT}); read it with the tool that wrote it, or {_FIX}"
        )
    raw_version = _text(meta, f"{prefix}.schema_version", source)
    if not raw_version.isdigit():
        raise ValueError(f"`{source}` has {prefix}.schema_version = {raw_version!r}, not an integer; {_FIX}")
    version = int(raw_version)
    if version > SCHEMA_VERSION:
        log.warning(
            "`%s` is scores schema v%d, newer than the v%d this reader knows; read by its v%d columns",
            source,
            version,
            SCHEMA_VERSION,
            SCHEMA_VERSION,
        )
    missing = [c for c in RESERVED if c not in schema.names]
    if missing:
        raise ValueError(
            f"`{source}` is a LeRobot scores file without the column(s) {missing}; available: "
            f"{schema.names}; {_FIX}"
        )
    signals = [n for n in schema.names if n not in RESERVED]
    groups: dict[tuple[str | None, str], dict[str, Any]] = {}
    for name in signals:
        parsed = parse_signal(name)
        if parsed is not None:
            model, head, role, stage = parsed
            slot = groups.setdefault((model, head), {})
            if role == "stage_probability":
                slot.setdefault(role, {})[stage] = name
            else:
                slot[role] = name
    progress = {}
    for head in _HEADS:
        owners = sorted((m or "", g) for (m, h), g in groups.items() if h == head and "progress" in g)
        if len(owners) > 1:
            raise ValueError(
                f"`{source}` holds {len(owners)} progress signals for the {head} head "
                f"({[g['progress'] for _, g in owners]}); a progress file gives one per head: keep one "
                "model's score per file (LeRobot writes one file per score name)"
            )
        if owners:
            progress[head] = owners[0][1]
    if not progress:
        raise ValueError(
            f"`{source}` is a LeRobot scores file ({prefix} v{version}) without a progress signal; its "
            f"signals: {signals}. RA-BC needs one named like `reward.<model>.progress` or "
            "`reward.<model>.<head>.progress` (e.g. from `sarm progress --format scores`)"
        )
    wanted = list(progress) if heads is None else list(heads)
    for head in wanted:
        if head not in progress:
            raise ValueError(
                f"no progress signal for the {head} head in `{source}` (scores file); its progress signals: "
                f"{[g['progress'] for g in progress.values()]}; compute it with `sarm progress --head "
                f"{head} --format scores` or choose head={next(iter(progress))!r}"
            )
    columns: dict[str, str] = {}
    for head in wanted:
        group = progress[head]
        columns[f"progress_{head}"] = group["progress"]
        if "valid" in group:
            columns[f"valid_{head}"] = group["valid"]
        if "stage_confidence" in group:
            columns[f"confidence_{head}"] = group["stage_confidence"]
        for k, name in sorted(group.get("stage_probability", {}).items()):
            columns[f"stage_probs_{head}/{k}"] = name
    return {
        "columns": columns,
        "heads": wanted,
        "prefix": prefix,
        "version": version,
        "signals": signals,
        "progress": {h: progress[h]["progress"] for h in wanted},
        "descriptors": _json(meta, f"{prefix}.descriptors", source),
        "provenance": _json(meta, f"{prefix}.provenance", source),
    }


def lerobot_view(table: pa.Table, source: str) -> pa.Table:
    """A scores table (or a filtered part of one) as today's layout: `progress_<head>` float32 with the
    validity mask applied as NaN, and `stage_probs_<head>` list<float32> (for readers of that layout)."""
    plan = plan_read(table.schema, source, None)
    columns = {c: table.column(c) for c in RESERVED}
    for head in plan["heads"]:
        names = plan["columns"]
        progress = table.column(names[f"progress_{head}"]).cast(pa.float32()).to_numpy(zero_copy_only=False)
        progress = np.array(progress, np.float32)
        if f"valid_{head}" in names:
            valid = table.column(names[f"valid_{head}"]).fill_null(False).to_numpy(zero_copy_only=False)
            progress[~valid.astype(bool)] = np.nan
        columns[f"progress_{head}"] = pa.array(progress)
        stages = [k for k in names if k.startswith(f"stage_probs_{head}/")]
        stages.sort(key=lambda k: int(k.rpartition("/")[2]))
        if stages:
            probs = np.stack(
                [table.column(names[k]).cast(pa.float32()).to_numpy(zero_copy_only=False) for k in stages], 1
            ).astype(np.float32)
            offsets = pa.array(np.arange(0, probs.size + 1, probs.shape[1], dtype=np.int32))
            columns[f"stage_probs_{head}"] = pa.ListArray.from_arrays(offsets, pa.array(probs.reshape(-1)))
    return pa.table(columns, metadata=table.schema.metadata)


def describe(prefix: str, version: int, progress: Mapping[str, str], masked: int = 0) -> str:
    """The one line commands print for a scores file they read."""
    draft = DRAFT if prefix == PREFIXES[0] else f"an earlier {DRAFT}"
    newer = f", newer than the v{SCHEMA_VERSION} this reader knows" if version > SCHEMA_VERSION else ""
    mask = f"; {masked} frame(s) marked invalid -> NaN progress" if masked else ""
    return (
        f"LeRobot scores file ({prefix} v{version}{newer}, {draft}; progress from "
        f"{', '.join(progress.values())}{mask})"
    )


def signal_names(model: str, head: str, num_stages: int) -> dict[str, str]:
    """Our key -> signal name for one head of `model` (our reading of the drafts' naming)."""
    base = f"reward.{model}.{head}"
    names = {
        f"progress_{head}": f"{base}.progress",
        f"valid_{head}": f"{base}.valid",
        f"confidence_{head}": f"{base}.stage_confidence",
    }
    names |= {f"stage_probs_{head}/{k}": f"{base}.stage_probability.{k}" for k in range(num_stages)}
    return names


def write_scores(
    path,
    episodes: Iterable[Mapping[str, np.ndarray]],
    *,
    model: str,
    num_stages: Mapping[str, int],
    provenance: Mapping[str, Any],
) -> Path:
    """Write a scores file atomically, one row group per episode, in the newest draft's layout.

    Each item of `episodes` holds `index`, `episode_index`, `frame_index` (T,) and per head of
    `num_stages` `progress_<head>` (T,) (NaN = not scored: written with valid False) and optionally
    `stage_probs_<head>` (T, K); confidence is the largest stage probability.
    """
    specs = {}  # signal name -> (our key, arrow type, descriptor)
    for head, k in num_stages.items():
        names = signal_names(model, head, k)
        for key, name in names.items():
            role = key.split("_" + head)[0]
            specs[name] = (
                key,
                pa.bool_() if role == "valid" else pa.float32(),
                _descriptor(model, head, key),
            )
    order = sorted(specs)
    meta = {
        f"{PREFIXES[0]}.format": FORMAT,
        f"{PREFIXES[0]}.schema_version": str(SCHEMA_VERSION),
        f"{PREFIXES[0]}.provenance": _canonical(dict(provenance), "provenance"),
        f"{PREFIXES[0]}.descriptors": _canonical({n: specs[n][2] for n in order}, "signal descriptors"),
    }
    fields = [pa.field(c, pa.int64()) for c in RESERVED] + [pa.field(n, specs[n][1]) for n in order]
    schema = pa.schema(fields, metadata=meta)

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema) as writer:
            for episode in episodes:
                columns = _episode_signals(episode, num_stages)
                arrays = [pa.array(np.asarray(episode[c], np.int64)) for c in RESERVED]
                arrays += [pa.array(columns[specs[n][0]], specs[n][1]) for n in order]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    return atomic_write(path, write)


def _episode_signals(episode: Mapping[str, np.ndarray], num_stages: Mapping[str, int]) -> dict:
    out = {}
    length = len(episode["index"])
    for head, k in num_stages.items():
        progress = np.asarray(episode[f"progress_{head}"], np.float32)
        probs = episode.get(f"stage_probs_{head}")
        probs = np.full((length, k), np.nan, np.float32) if probs is None else np.asarray(probs, np.float32)
        valid = np.isfinite(progress)
        out[f"progress_{head}"], out[f"valid_{head}"] = progress, valid
        confidence = np.full(length, np.nan, np.float32)
        scored = np.isfinite(probs).all(axis=1)
        confidence[scored] = probs[scored].max(axis=1)
        out[f"confidence_{head}"] = confidence
        out |= {f"stage_probs_{head}/{j}": probs[:, j] for j in range(k)}
    return out


def _descriptor(model: str, head: str, key: str) -> dict[str, Any]:
    """The newest draft's descriptor fields exactly (its reader refuses any other field)."""
    stage = key.rpartition("/")[2]
    what = {  # role -> (description, direction, bounds, allow_nan)
        "progress": ("normalised task progress", "higher", [0.0, 1.0], True),
        "valid": ("validity mask: false where the frame was not scored", "none", None, False),
        "confidence": ("largest stage probability", "higher", [0.0, 1.0], True),
        "stage_probs": (f"probability of stage {stage}", "none", [0.0, 1.0], True),
    }
    text, direction, bounds, allow_nan = what[key.split("_" + head)[0]]
    description = f"{model} {text} ({head} head)."
    return {
        "description": description,
        "direction": direction,
        "bounds": bounds,
        "unit": None,
        "allow_nan": allow_nan,
    }


def _canonical(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scores {what} must be JSON with finite numbers ({err})") from None


def _text(meta: Mapping[bytes, bytes], key: str, source: str) -> str:
    value = meta.get(key.encode())
    if value is None:
        raise ValueError(f"`{source}` is a LeRobot scores file without the metadata key `{key}`; {_FIX}")
    return value.decode(errors="replace")


def _json(meta: Mapping[bytes, bytes], key: str, source: str) -> dict[str, Any]:
    raw = meta.get(key.encode())
    if raw is None:
        return {}  # the strict drafts require it; a progress reader does without
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"metadata `{key}` of `{source}` is not valid JSON ({err}); {_FIX}") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"metadata `{key}` of `{source}` should be a JSON object, not {type(value).__name__}"
        )
    return value
