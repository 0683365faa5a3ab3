"""`Catalog`: what `sarm explore` shows of one dataset, as JSON-ready dicts (no HTTP here).

It reads the dataset (`sarm.data`), optional progress (`rabc.progress_io`) and weights parquets, and the
annotation spans (`sarm.labels`), once at start, and answers the episode list and one episode's detail.
`files` is the set of files the server may send: the dataset's own files (under its root), the progress
and the weights file, nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from sarm.data import open_dataset
from sarm.explore.detail import episode_labels
from sarm.explore.scores import (
    TableScores,
    known_outcomes,
    predicted_outcomes,
    static_columns,
    weights_chunk_size,
)
from sarm.labels.annotations import read_lerobot_annotations

HEADS = ("sparse", "dense")


def _per_episode(episode_index: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(episode_index, kind="stable")
    eps, starts = np.unique(episode_index[order], return_index=True)
    ordered = values[order]  # once: indexing inside the loop made this O(episodes x frames)
    return {int(e): ordered[s:t] for e, s, t in zip(eps, starts, [*starts[1:], order.size], strict=True)}


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

    read_annotations = staticmethod(_annotations)  # {head: {episode: [span dicts]}} of a source, now

    def __init__(self, dataset, progress=None, weights=None, annotations=None, chunk_size: int | None = None):
        self.ds = open_dataset(dataset) if isinstance(dataset, str | os.PathLike) else dataset
        self.root = Path(self.ds.root).resolve()
        self.chunk_size = chunk_size if chunk_size is not None else weights_chunk_size(weights)
        self.progress: dict[str, dict[int, np.ndarray]] = {}
        self.scores: TableScores | None = None
        self._static: tuple | None = None  # the table's unchanging columns, as JSON, predicted outcomes
        self.files = {"progress": None, "weights": None}
        self.progress_format: str | None = None  # `read <file>: <layout>`, for the command to print
        if progress is not None:
            from rabc.progress_io import read_progress

            table = read_progress(progress, sort=True)
            self.progress_format = table.format_line()
            self.progress = {h: _per_episode(table.episode_index, table.column(h)) for h in table.heads}
            self.files["progress"] = Path(table.source).resolve()
            tasks = dict(zip(self.ds.episodes.tolist(), self.ds.tasks, strict=True))
            self.scores = TableScores(table, self.chunk_size, tasks, weights)
        self.weights: dict[int, np.ndarray] = {}
        if weights is not None:
            table = pq.read_table(weights, columns=["episode_index", "weight"])
            ep = table["episode_index"].to_numpy()
            self.weights = _per_episode(ep, table["weight"].to_numpy().astype(np.float32))
            self.files["weights"] = Path(weights).resolve()
        self.annotations = self.root if annotations is None else annotations
        self.annotation_source = None if annotations is None else Path(annotations)
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

    def episode_columns(self) -> dict[str, list]:
        """The episode table by column (each a list in dataset order): episode_index, task, length,
        final_/mean_<head> progress, the scores of `rabc episodes` (with a chunk size), mean_weight, then
        outcome (known, else predicted), outcome_source ("known" / "predicted" / None) and annotations
        (the heads with spans). Outcomes and annotations are read again on each call; the rest once."""
        return {**self._static_columns()[0], **self._changing_columns()}

    def episode_columns_json(self) -> str:
        """`json.dumps(episode_columns())`, with the unchanging columns serialised once (10^4 episodes)."""
        changing = json.dumps(self._changing_columns(), allow_nan=False)
        return f"{self._static_columns()[1][:-1]}, {changing[1:]}"

    def _static_columns(self) -> tuple[dict[str, list], str, list]:
        if self._static is None:
            columns = static_columns(self)
            self._static = columns, json.dumps(columns, allow_nan=False), predicted_outcomes(self)
        return self._static

    def _changing_columns(self) -> dict[str, list]:
        static, _, predicted = self._static_columns()
        known, episodes = known_outcomes(self.annotations), static["episode_index"]
        return {
            "outcome": [known.get(ep, p) for ep, p in zip(episodes, predicted, strict=True)],
            "outcome_source": [
                "known" if ep in known else None if p is None else "predicted"
                for ep, p in zip(episodes, predicted, strict=True)
            ],
            "annotations": [sorted(h for h, spans in self.spans.items() if ep in spans) for ep in episodes],
        }

    def episodes(self) -> list[dict[str, Any]]:
        """One row per episode, the columns of `episode_columns`."""
        columns = self.episode_columns()
        keys = list(columns)
        return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]

    def episode(self, episode: int) -> dict[str, Any]:
        """One episode: fps, length, task, videos (file and from/to timestamps), progress per head,
        weights, and its labels read from disk now (`sarm.explore.detail.episode_labels`: spans per
        head, mistakes, outcome, label progress, stage probabilities, the episodes token for a save).
        KeyError for an episode not in the dataset."""
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
            "chunk_size": self.chunk_size,
            **episode_labels(self, episode),
        }
