"""`Catalog`: what `sarm explore` shows of one dataset, as JSON-ready dicts (no HTTP here).

It reads the dataset (`sarm.data`), optional progress (`rabc.progress_io`) and weights parquets, and the
annotation spans (`sarm.labels`), once at start, and answers the episode list and one episode's detail.
`files` is the set of files the server may send: the dataset's own files (under its root), the progress
and the weights file, nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from sarm.data import open_dataset
from sarm.explore.scores import TableScores, known_outcomes, outcome_of, weights_chunk_size
from sarm.labels.annotations import read_lerobot_annotations

HEADS = ("sparse", "dense")


def _per_episode(episode_index: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(episode_index, kind="stable")
    eps, starts = np.unique(episode_index[order], return_index=True)
    return {
        int(e): values[order][s:t] for e, s, t in zip(eps, starts, [*starts[1:], order.size], strict=True)
    }


def _annotations(source) -> dict[str, dict[int, list]]:
    found = {}
    for head in HEADS:
        try:
            spans = read_lerobot_annotations(source, head)
        except (ValueError, KeyError, FileNotFoundError):  # no columns for this head
            continue
        found[head] = {int(e): [s._asdict() for s in v] for e, v in spans.items() if v}
    return found


class Catalog:
    """The episodes of `dataset` with their progress per head, weights and annotation spans."""

    def __init__(self, dataset, progress=None, weights=None, annotations=None, chunk_size: int | None = None):
        self.ds = open_dataset(dataset) if isinstance(dataset, str | os.PathLike) else dataset
        self.root = Path(self.ds.root).resolve()
        self.chunk_size = chunk_size if chunk_size is not None else weights_chunk_size(weights)
        self.progress: dict[str, dict[int, np.ndarray]] = {}
        self.scores: TableScores | None = None
        self.files = {"progress": None, "weights": None}
        if progress is not None:
            from rabc.progress_io import read_progress

            table = read_progress(progress, sort=True)
            self.progress = {h: _per_episode(table.episode_index, table.column(h)) for h in table.heads}
            self.files["progress"] = Path(progress).resolve()
            tasks = dict(zip(self.ds.episodes.tolist(), self.ds.tasks, strict=True))
            self.scores = TableScores(table, self.chunk_size, tasks, weights)
        self.weights: dict[int, np.ndarray] = {}
        if weights is not None:
            table = pq.read_table(weights, columns=["episode_index", "weight"])
            ep = table["episode_index"].to_numpy()
            self.weights = _per_episode(ep, table["weight"].to_numpy().astype(np.float32))
            self.files["weights"] = Path(weights).resolve()
        self.annotations = self.root if annotations is None else annotations
        self.spans = _annotations(self.annotations)

    def _video(self, camera: str, episode: int) -> dict[str, Any]:
        paths, offsets, missing = self.ds._video(camera)
        pos = self.ds.episode_position(episode)
        path = Path(paths[pos])
        start = float(offsets[pos]) if offsets is not None else 0.0
        length = int(self.ds.episode_lengths[pos])
        try:
            rel = path.resolve().relative_to(self.root).as_posix()
        except ValueError:  # --videos-dir outside the root: not served
            rel = None
        return {
            "camera": camera,
            "file": rel if not bool(missing[pos]) else None,
            "from_timestamp": start,
            "to_timestamp": start + length / self.ds.fps,
        }

    def episodes(self) -> list[dict[str, Any]]:
        """One row per episode: index, task, length, outcome (known, else predicted), annotations present,
        progress and weight summaries, and the scores of `rabc episodes` (with a chunk size)."""
        known = known_outcomes(self.annotations)
        rows = []
        for pos, ep in enumerate(self.ds.episodes.tolist()):
            outcome, source = outcome_of(ep, known, self.scores)
            row: dict[str, Any] = {
                "episode_index": int(ep),
                "task": self.ds.tasks[pos],
                "length": int(self.ds.episode_lengths[pos]),
                "outcome": outcome,
                "outcome_source": source,
                "annotations": sorted(h for h, spans in self.spans.items() if ep in spans),
            }
            for head, per in self.progress.items():
                values = per.get(int(ep))
                known_values = values[np.isfinite(values)] if values is not None else np.empty(0)
                row[f"final_{head}"] = float(known_values[-1]) if known_values.size else None
                row[f"mean_{head}"] = float(known_values.mean()) if known_values.size else None
            if self.scores is not None:
                row.update(self.scores.row(ep))
            if self.weights:  # the weights file's own mean, over the scores' recomputed one
                w = self.weights.get(int(ep))
                row["mean_weight"] = float(w.mean()) if w is not None and w.size else None
            rows.append(row)
        return rows

    def episode(self, episode: int) -> dict[str, Any]:
        """One episode: fps, length, task, videos (file and from/to timestamps), progress per head,
        weights and annotation spans per head. KeyError for an episode not in the dataset."""
        if episode not in set(self.ds.episodes.tolist()):
            raise KeyError(f"episode {episode} is not in the dataset")
        pos = self.ds.episode_position(episode)

        def listed(values):
            return None if values is None else [None if not np.isfinite(v) else float(v) for v in values]

        return {
            "episode_index": episode,
            "task": self.ds.tasks[pos],
            "length": int(self.ds.episode_lengths[pos]),
            "fps": self.ds.fps,
            "videos": [self._video(c, episode) for c in self.ds._videos],
            "progress": {h: listed(per.get(episode)) for h, per in self.progress.items()},
            "weights": listed(self.weights.get(episode)) if self.weights else None,
            "spans": {h: spans.get(episode, []) for h, spans in self.spans.items()},
            "chunk_size": self.chunk_size,
        }
