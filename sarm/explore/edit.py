"""Edits of one episode's labels from the page: checked by `sarm.labels`' own rules, saved into the
dataset's annotation columns through `sarm.data.edit`, or exported as a spans JSON.

An edit is the JSON the page posts: `{"spans": {head: [{"name", "start", "end"}, ...]}, "mistakes":
[{"kind", "start", "end"}, ...], "outcome": "success" | "partial" | "failure" | null, "order": "error" |
"monotone" | "allow"}` (frames inclusive, episode-relative; `order` as `sarm train --order`). It is
checked by `validate_spans` (reversed, outside the episode, overlapping), `validate_mistakes`,
`coerce_outcome` and `StageSchema.targets(order=...)` (spans out of the task's stage order), so the
page shows the message `sarm train` would give.

Routes (in `server._WRITE_ROUTES`; the server checks the token, Host and Origin before any of them):
    POST /api/episode/N/validate  -> 200 {"ok", "error", "labels"}: nothing is written
    POST /api/episode/N/save      the edit + "token" (from GET /api/episode/N) -> 200 {"token", "files",
                                  "backup", "labels"}; 400 for an invalid edit (nothing written); 409 when
                                  the episodes files changed on disk since the page read them
    POST /api/episode/N/export    -> 200 {"files", "contents"}: `meta/explore/spans.json` (and
                                  `spans.dense.json`), the format `sarm train --annotations` reads
Save writes LeRobot's `{head}_subtask_*` columns, `mistake_*` and `outcome` (`sarm.labels.records`)
with `write_episode_columns(..., token=, backup=True)`: atomic, the old files copied under
`meta/backups/`. Columns an edit leaves as they are (no spans before or after) are not written.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarm.annotate.write import spans_path, write_json
from sarm.data.edit import EpisodesToken, StaleEpisodesError, write_episode_columns
from sarm.data.errors import DatasetError
from sarm.explore.detail import HEADS, disk_state, label_progress, read_labels
from sarm.labels.annotations import read_spans, validate_spans
from sarm.labels.mistakes import coerce_outcome, validate_mistakes
from sarm.labels.records import episode_columns, read_mistakes, read_outcomes
from sarm.labels.schema import ORDERS, Span

__all__ = ["EXPORT", "Edit", "export", "parse_edit", "save", "validate"]

EXPORT = Path("meta") / "explore" / "spans.json"  # under the dataset root
_LOCK = threading.Lock()  # one save or export at a time (the server answers requests on threads)


@dataclass(frozen=True)
class Edit:
    """One episode's labels as the page sent them, validated and sorted."""

    episode: int
    spans: dict[str, list[Span]]
    mistakes: list
    outcome: str | None
    order: str


def _length(cat, episode: int) -> int:
    if episode not in set(cat.ds.episodes.tolist()):
        raise KeyError(f"episode {episode} is not in the dataset")
    return int(cat.ds.episode_lengths[cat.ds.episode_position(episode)])


def parse_edit(cat, episode: int, data: dict) -> Edit:
    """The edit in `data`, checked by sarm.labels (module docstring); ValueError with its message."""
    length = _length(cat, episode)
    spans = data.get("spans") or {}
    if not isinstance(spans, dict) or any(h not in HEADS for h in spans):
        raise ValueError(f'"spans" should map heads {list(HEADS)} to lists of spans, but got {spans!r}')
    checked = {h: validate_spans(v or [], length, episode=episode) for h, v in spans.items()}
    mistakes = validate_mistakes(data.get("mistakes") or [], length, episode=episode)
    outcome = data.get("outcome")
    outcome = coerce_outcome(None if outcome == "unknown" else outcome, episode)
    order = data.get("order", "error")
    if order not in ORDERS:
        raise ValueError(
            f"order should be one of {list(ORDERS)} (as `sarm train --order`), but got {order!r}"
        )
    return Edit(episode, checked, mistakes, outcome, order)


def _check(cat, episode: int, data: dict):
    edit = parse_edit(cat, episode, data)
    now = read_labels(cat, disk_state(cat)[0])
    labels, error = label_progress(cat, episode, edit.spans, now["spans"], edit.order)
    return edit, labels, error, now


def validate(cat, episode: int, data: dict) -> dict[str, Any]:
    """{"ok", "error" (sarm.labels' message or None), "labels" (label progress per head or None)}."""
    try:
        _, labels, error, _ = _check(cat, episode, data)
    except ValueError as err:
        return {"ok": False, "error": str(err), "labels": None}
    return {"ok": error is None, "error": error, "labels": labels}


def _token(text) -> EpisodesToken:
    try:
        files = json.loads(text)
        return EpisodesToken(tuple((str(a), int(b), int(c), str(d)) for a, b, c, d in files))
    except (TypeError, ValueError):
        raise ValueError(
            'the save has no valid "token" of the episodes files; reload the episode and edit again'
        ) from None


def _columns(cat, edit: Edit, now: dict) -> dict:
    ep = edit.episode
    spans = {
        h: {ep: [tuple(s) for s in v] or None}
        for h, v in edit.spans.items()
        if v or now["spans"].get(h, {}).get(ep)
    }
    mistakes = {ep: [tuple(m) for m in edit.mistakes] or None}
    return episode_columns(
        spans=spans,
        mistakes=mistakes if edit.mistakes or ep in now["mistakes"] else None,
        outcomes={ep: edit.outcome} if edit.outcome is not None or ep in now["outcomes"] else None,
        fps=cat.ds.fps,
    )


def save(cat, episode: int, data: dict) -> dict[str, Any]:
    """Write the edit into the dataset's annotation columns (module docstring); ValueError for an
    invalid edit or a dataset that cannot be edited, StaleEpisodesError when the files changed."""
    reason = disk_state(cat)[1]
    if reason is not None:
        raise ValueError(f"cannot save into the dataset: {reason}")
    token = _token(data.get("token"))
    with _LOCK:
        edit, labels, error, now = _check(cat, episode, data)
        if error is not None:
            raise ValueError(error)
        written = write_episode_columns(cat.root, _columns(cat, edit, now), token=token, backup=True)
        cat.spans = cat.read_annotations(cat.root)  # the table's `annotations` column
    rel = [f.relative_to(cat.root).as_posix() for f in written.files]
    backup = None if written.backup is None else written.backup.relative_to(cat.root).as_posix()
    return {"token": json.dumps(written.token.files), "files": rel, "backup": backup, "labels": labels}


def _triples(items) -> list[list]:
    return [list(x) for x in items]


def export(cat, episode: int, data: dict) -> dict[str, Any]:
    """Write `meta/explore/spans.json` (sparse spans, mistakes, outcomes) and, with dense spans,
    `spans.dense.json`: the labels as on disk, then the episodes an earlier export wrote, then this
    edit. Returns the files (relative to the root) and their contents (for the browser's download)."""
    with _LOCK:
        edit, _, error, now = _check(cat, episode, data)
        if error is not None:
            raise ValueError(error)
        target = cat.root / EXPORT
        per_head = {
            h: {e: _triples(Span.coerce(s) for s in v) for e, v in now["spans"].get(h, {}).items()}
            for h in HEADS
        }
        mistakes = {e: _triples(v) for e, v in now["mistakes"].items()}
        outcomes = dict(now["outcomes"])
        if target.is_file():  # an earlier export's episodes win over the dataset's
            for e, v in read_spans(target).items():
                per_head["sparse"][e] = _triples(v or [])
                mistakes.pop(e, None)
                outcomes.pop(e, None)
            mistakes.update({e: _triples(v) for e, v in read_mistakes(target).items()})
            outcomes.update(read_outcomes(target))
        dense = spans_path(target, "dense")
        if dense.is_file():
            per_head["dense"].update({e: _triples(v or []) for e, v in read_spans(dense).items()})
        for h, v in edit.spans.items():
            per_head[h][episode] = _triples(v)
        mistakes[episode] = _triples(edit.mistakes)
        outcomes[episode] = edit.outcome
        keys = sorted(set(per_head["sparse"]) | set(mistakes) | set(outcomes))
        sparse = {
            str(e): {
                "spans": per_head["sparse"].get(e) or None,
                "mistakes": mistakes.get(e) or [],
                "outcome": outcomes.get(e),
            }
            for e in keys
        }
        contents = {target.name: sparse}
        write_json(target, sparse)
        files = [target]
        if any(per_head["dense"].values()):
            contents[dense.name] = {str(e): v or None for e, v in sorted(per_head["dense"].items())}
            files.append(write_json(dense, contents[dense.name]))
    return {"files": [f.relative_to(cat.root).as_posix() for f in files], "contents": contents}


# ------------------------------------------------------------------------------------------- routes


def _route(work):
    def handle(request, match, body: bytes) -> None:
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError(f"the request body should be a JSON object, but is {type(data).__name__}")
            return request._json(work(request.server.catalog, int(match[1]), data))
        except KeyError as err:
            return request._error(404, str(err.args[0]))
        except StaleEpisodesError as err:
            return request._error(409, str(err))
        except (ValueError, DatasetError, OSError) as err:  # JSON errors are ValueErrors too
            return request._error(400, str(err))

    return handle


validate_route, save_route, export_route = _route(validate), _route(save), _route(export)
