"""Write annotated episodes: LeRobot's columns into `meta/episodes`, or spans JSON files `sarm train` reads.

    write_to_dataset(root, results, heads={"sparse": names}, lengths={0: 120})  # v3.0, backed up
    write_spans_files("spans.json", results, heads=["sparse", "dense"])  # spans.json, spans.dense.json

Columns: `{head}_subtask_{names,start_times,end_times,start_frames,end_frames}`, as LeRobot's
`subtask_annotation.py` writes them (frames from seconds by `int(seconds * fps)`, see
`sarm.annotate.prompt`), plus `meta/temporal_proportions_{head}.json` (Eq. 1 over every annotated episode
of the dataset, in the given name order), which LeRobot's SARM reads. Episodes not in `results` keep
their columns. Spans files: `{episode: [[name, start_frame, end_frame], ...]}` (inclusive frames), the
sparse head in the given path and the dense head beside it with ".dense" before the suffix; an existing
file's other episodes are kept.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

from sarm.data.edit import EpisodesWritten, write_episode_columns
from sarm.labels.annotations import read_lerobot_annotations, read_spans
from sarm.labels.proportions import temporal_proportions

__all__ = ["spans_path", "write_json", "write_spans_files", "write_to_dataset"]

_FIELDS = ("names", "start_times", "end_times", "start_frames", "end_frames")


def write_json(path: str | os.PathLike, value, indent: int = 2) -> Path:
    """Write JSON through a temporary file (unique per process and thread) and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(value, indent=indent))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_to_dataset(
    root: str | os.PathLike,
    results: Mapping[int, dict],
    heads: Mapping[str, list[str]],
    lengths: Mapping[int, int],
) -> tuple[EpisodesWritten, list[Path]]:
    """Write the annotated `results` of `heads` ({head: names in order}) and the proportions files.

    Returns what `write_episode_columns` wrote and the proportions files written.
    """
    root = Path(root)
    annotated = {int(ep): r["heads"] for ep, r in results.items() if r.get("status") == "annotated"}
    columns = {
        f"{head}_subtask_{f}": {ep: h[head][f] for ep, h in sorted(annotated.items())}
        for head in heads
        for f in _FIELDS
    }
    written = write_episode_columns(root, columns)
    proportions = []
    for head, names in heads.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LeRobot's own end == length spans, clipped when read
            spans = read_lerobot_annotations(root, head)
        known = {e: (s, lengths[e]) for e, s in spans.items() if s and {x.name for x in s} <= set(names)}
        left_out = sorted(e for e, s in spans.items() if s and e not in known)
        if left_out:
            warnings.warn(
                f"meta/temporal_proportions_{head}.json leaves out episodes {left_out[:20]}, annotated "
                f"earlier with names other than {names}",
                stacklevel=2,
            )
        if not known:
            continue
        used = [n for n in names if any(x.name == n for s, _ in known.values() for x in s)]
        path = root / "meta" / f"temporal_proportions_{head}.json"
        write_json(path, temporal_proportions(known, names=used))
        proportions.append(path)
    return written, proportions


def spans_path(path: str | os.PathLike, head: str) -> Path:
    """Where a head's spans file goes: the path itself for "sparse", `<stem>.dense<suffix>` for "dense"."""
    path = Path(path)
    return path if head == "sparse" else path.with_name(f"{path.stem}.{head}{path.suffix or '.json'}")


def write_spans_files(path: str | os.PathLike, results: Mapping[int, dict], heads) -> list[Path]:
    """Write one spans JSON file per head (merged with an existing file's other episodes); returns them."""
    out = []
    for head in heads:
        target = spans_path(path, head)
        merged = {}
        if target.is_file():
            merged = {e: [list(s) for s in spans] for e, spans in read_spans(target).items() if spans}
        for ep, result in results.items():
            if result.get("status") == "annotated":
                h = result["heads"][head]
                merged[int(ep)] = [
                    list(x) for x in zip(h["names"], h["start_frames"], h["end_frames"], strict=True)
                ]
        write_json(target, {str(e): merged[e] for e in sorted(merged)})
        out.append(target)
    return out
