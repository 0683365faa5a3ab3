"""One episode's labels for the episode view and its editor, read fresh from disk (no HTTP here).

`episode_labels` reads the annotation columns at the moment the page opens the episode, after taking
the staleness token of the dataset's `meta/episodes` files (`sarm.data.edit.episodes_token`): a save
with that token (`sarm.explore.edit`) is refused when anything wrote the files in between. It gives the
stage spans per head, the mistake spans and the outcome (`sarm.labels.records`), the task's stage names
(for the editor's select), the label progress as `sarm train` builds it from the spans (Eq. 1
proportions over the task's annotated episodes, `StageSchema.targets`, Formula 2), and the stacked
stage probabilities of the progress file when `sarm progress --stage-probs` wrote them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from sarm.data.edit import episodes_token
from sarm.data.errors import DatasetError
from sarm.labels.proportions import schema_from_annotations
from sarm.labels.records import read_mistakes, read_outcomes

HEADS = ("sparse", "dense")


def disk_state(cat) -> tuple[str | None, str | None]:
    """(the episodes token as an opaque string for the page, None) when saving into the dataset is
    possible, else (None, why not). The token's mtimes do not fit a JS number, so it stays a string."""
    source = getattr(cat, "annotation_source", None)
    if source is not None and Path(source).resolve() != cat.root:
        return None, (
            f"the annotations were read from `{source}` (--annotations), not from the dataset: save to a "
            "spans JSON, or start `sarm explore` without --annotations to edit the dataset's columns"
        )
    try:
        return json.dumps(episodes_token(cat.root).files), None
    except DatasetError as err:
        return None, str(err)


def read_labels(cat, token: str | None) -> dict[str, Any]:
    """Every episode's labels as on disk: {"spans": {head: {ep: [dict]}}, "mistakes": {ep: [...]},
    "outcomes": {ep: str}, "error": the first damaged record's message or None, "schemas": a memo};
    the dataset's own columns, or the --annotations source. Read again only when `token` (take it
    first, `disk_state`) differs from the last read's; None (a source that is not edited) reads once."""
    stamp = token or "static"
    cached = getattr(cat, "_labels", None)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    source = getattr(cat, "annotation_source", None) or cat.root
    out: dict[str, Any] = {
        "spans": cat.read_annotations(source),
        "mistakes": {},
        "outcomes": {},
        "error": None,
        "schemas": {},  # (head, task) -> the schema of the labels as on disk
    }
    for key, read in (("mistakes", read_mistakes), ("outcomes", read_outcomes)):
        try:
            out[key] = read(source)
        except FileNotFoundError:  # no meta/episodes parquet (v2.1): no such records
            pass
        except ValueError as err:  # damaged records: shown, the rest still works
            out["error"] = out["error"] or str(err)
    cat._labels = (stamp, out)
    return out


def _lengths(cat) -> dict[int, int]:
    return dict(zip(cat.ds.episodes.tolist(), cat.ds.episode_lengths.tolist(), strict=True))


def _task_spans(cat, episode: int, per_episode: Mapping[int, list], spans) -> dict[int, list]:
    """The spans of the episodes of `episode`'s task, with `episode`'s replaced by `spans`."""
    tasks = dict(zip(cat.ds.episodes.tolist(), cat.ds.tasks, strict=True))
    task = tasks[episode]
    out = {e: s for e, s in per_episode.items() if tasks.get(e) == task and e != episode}
    out[episode] = spans
    return out


def _schema(cat, episode: int, head: str, all_spans, spans, memo: dict | None):
    """The stage schema of `episode`'s task as `sarm train` builds it (Eq. 1 over the task's annotated
    episodes) with `episode`'s spans replaced by `spans`; `memo` (spans as on disk only) keeps it."""
    key = (head, cat.ds.tasks[cat.ds.episode_position(episode)])
    if memo is not None and key in memo:
        return memo[key]
    per = _task_spans(cat, episode, all_spans.get(head, {}), spans)
    schema = schema_from_annotations(per, _lengths(cat)) if any(per.values()) else None
    if memo is not None:
        memo[key] = schema
    return schema


def label_progress(cat, episode: int, spans_by_head, all_spans, order: str = "error", memo=None):
    """({head: per-frame label progress or None}, first error or None): the labels `sarm train` builds
    from the spans (default names order, `order` as `--order`). On an error (spans out of the stage
    order under "error") the labels are those of the spans as written (order "allow"). `memo`: only
    when the spans are those on disk."""
    length = _lengths(cat)[episode]
    out, error = {}, None
    for head, spans in spans_by_head.items():
        if not spans:
            out[head] = None
            continue
        schema = _schema(cat, episode, head, all_spans, spans, memo)
        try:
            y = schema.targets(spans, length, episode, order=order)
        except ValueError as err:
            error = error or f"{head} head: {err}"
            y = schema.targets(spans, length, episode, order="allow")
        out[head] = [float(v) for v in schema.progress(y)]
    return out, error


def stage_names(cat, episode: int, head: str, all_spans, memo=None) -> list[str]:
    """The task's stage names for `head`, in the order `sarm train` gives them (mean relative start over
    the task's annotated episodes), then the names of `meta/temporal_proportions_<head>.json`."""
    schema = _schema(cat, episode, head, all_spans, all_spans.get(head, {}).get(episode), memo)
    names = [] if schema is None else list(schema.names)
    file = cat.root / "meta" / f"temporal_proportions_{head}.json"
    try:
        extra = list(json.loads(file.read_text())) if file.is_file() else []
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        extra = []
    return names + [n for n in extra if isinstance(n, str) and n not in names]


def stage_probs(cat, episode: int) -> dict[str, list]:
    """{head: per-frame stage probabilities (a list of K floats, or None)} from the progress file's
    `stage_probs_<head>` columns; {} when it has none."""
    path = cat.files.get("progress")
    if path is None:
        return {}
    columns = [n for n in pq.read_schema(path).names if n.startswith("stage_probs_")]
    if not columns:
        return {}
    table = pq.read_table(
        path, columns=["frame_index", *columns], filters=[("episode_index", "=", int(episode))]
    )
    order = np.argsort(table.column("frame_index").to_numpy(), kind="stable")
    out = {}
    for column in columns:
        rows = table.column(column).take(order).to_pylist()
        out[column.removeprefix("stage_probs_")] = [
            None if r is None else [None if not math.isfinite(p) else float(p) for p in r] for r in rows
        ]
    return out


def episode_labels(cat, episode: int) -> dict[str, Any]:
    """What the episode view and its editor need of `episode`'s labels (module docstring)."""
    token, reason = disk_state(cat)  # first the token, then the read
    labels = read_labels(cat, token)
    heads = list(labels["spans"]) or ["sparse"]
    spans = {h: labels["spans"].get(h, {}).get(episode, []) for h in heads}
    memo = labels["schemas"]
    try:
        progress, error = label_progress(cat, episode, spans, labels["spans"], memo=memo)
    except ValueError as err:  # spans on disk that the labels cannot use
        progress, error = {}, str(err)
    kinds = sorted({m.kind for marks in labels["mistakes"].values() for m in marks})
    return {
        "spans": spans,
        "mistakes": [m._asdict() for m in labels["mistakes"].get(episode, [])],
        "outcome": labels["outcomes"].get(episode),
        "labels": progress,
        "label_error": error,
        "stage_names": {h: stage_names(cat, episode, h, labels["spans"], memo) for h in heads},
        "mistake_kinds": kinds,
        "stage_probs": stage_probs(cat, episode),
        "read_error": labels["error"],
        "token": token,
        "read_only": reason,
    }
