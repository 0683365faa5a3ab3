"""Curation from the page: the episodes marked drop become the same JSON as `rabc curate` writes.

    POST /api/curation           {"drop": {episode: why}, "name": "drop.json"} -> writes EXPORT_DIR/name,
                                 answers {"path": ..., "result": {...}}
    POST /api/curation/download  the same body -> the JSON itself, written nowhere (the page saves it)

The result is `rabc.curation.curate` with the rule `manual` (`why` is the page's reason: "picked",
or the filter that chose the episode), plus "progress" and "chunk_size" as `rabc curate` adds them, so
`rabc weights PROGRESS --chunk-size N --drop-episodes drop.json` reads it. Without a chunk size (no
scores) the episodes come from the dataset. Exports go only to EXPORT_DIR (`--export-dir`, default
the dataset root): `name` is a plain `*.json` file name, and a symlink there is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rabc.curation import curate
from rabc.episodes import EpisodeScores
from rabc.files import atomic_write

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}\.json$")


def curation_result(catalog, drop, repo_id: str = "<repo_id>") -> dict:
    """`rabc curate`'s JSON for the hand-picked `drop` ({episode: why} or a list of episodes)."""
    if isinstance(drop, list):
        drop = dict.fromkeys(drop, "")
    if not isinstance(drop, dict):
        raise ValueError('"drop" should be an object {episode: reason} or a list of episode indices')
    try:
        picked = {int(e): str(why or "") for e, why in drop.items()}
    except (TypeError, ValueError):
        raise ValueError('"drop" holds something that is not an episode index') from None
    scores = catalog.scores.scores if catalog.scores is not None else None
    if scores is None:  # no chunk size: the dataset's episodes, no scores (only `manual` uses them)
        episodes = np.asarray(catalog.ds.episodes, np.int64)
        scores = EpisodeScores(episode_index=episodes, score=np.full(episodes.size, np.nan))
    result = curate(scores, [], repo_id=repo_id, manual=picked)
    progress = catalog.files.get("progress")
    return {
        "progress": None if progress is None else str(progress),
        "chunk_size": catalog.chunk_size,
        **result,
    }


def export_path(export_dir: Path, name) -> Path:
    """`export_dir / name` for a plain `*.json` name; ValueError for anything that could leave it."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"export name {name!r} should be a plain file name ending in .json (letters, digits, _ . -), "
            "written into the export directory (--export-dir)"
        )
    root = Path(export_dir).resolve()
    path = root / name
    if path.is_symlink() or path.resolve().parent != root:
        raise ValueError(f"export `{name}` is a symlink or leaves the export directory; choose another name")
    return path


def curation_route(handler, match, body: bytes) -> None:
    """The write route: `POST /api/curation[/download]` (token, Host and Origin already checked)."""
    server = handler.server
    try:
        request = json.loads(body or b"{}")
        if not isinstance(request, dict):
            raise ValueError('the request body should be a JSON object with a "drop" key')
        result = curation_result(server.catalog, request.get("drop", {}), server.repo_id)
        if match[1]:
            return handler._json(result)
        path = export_path(server.export_dir, request.get("name", "drop.json"))
        text = json.dumps(result, indent=1)
        atomic_write(path, lambda tmp: tmp.write_text(text))
    except ValueError as err:  # json.JSONDecodeError is one
        return handler._error(400, str(err))
    except OSError as err:
        return handler._error(500, f"cannot write the export: {err}")
    return handler._json({"path": str(path), "result": result})
