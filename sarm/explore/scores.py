"""The episode table's columns beyond the dataset's own: outcome (known or predicted) and the scores of
`rabc episodes`, computed once from the progress table.

    columns = TableScores(progress_table, chunk_size=50, tasks={0: "pick", ...})
    columns.columns(episodes)    # {"final_sparse": [...], "score": [...], "max_drop": [...], ...}
    columns.predicted            # {episode: True / False}: the paper's rule

Known outcomes come from the dataset's `outcome` column (`sarm.labels.records.read_outcomes`); an
episode without one is given the paper's rule (final progress > 0.8 and last-third mean > 0.6) as a
*predicted* outcome when progress is known. The scores need the chunk size (the RA-BC delta): from
`--chunk-size`, else the weights file's metadata; without it only the predicted outcome is shown.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from rabc.episodes import COLUMNS, EpisodeScores, score_episodes
from rabc.metrics import paper_rule
from rabc.progress_io import ProgressTable
from sarm.labels.records import read_outcomes

# columns of `rabc episodes` the table shows (task and the frame count are the dataset's own)
SHOWN = tuple(c for c in COLUMNS if c not in ("episode_index", "task", "num_frames"))


def weights_chunk_size(path) -> int | None:
    """The chunk size a `rabc weights` file was computed with (its parquet metadata), or None."""
    if path is None:
        return None
    try:
        meta = json.loads((pq.read_schema(path).metadata or {}).get(b"rabc", b"null"))
    except (OSError, ValueError):
        return None
    size = meta.get("chunk_size") if isinstance(meta, dict) else None
    return int(size) if isinstance(size, int | float) and size > 0 else None


def known_outcomes(source) -> dict[int, str]:
    """{episode: outcome} from the `outcome` column of `source` (dataset root, parquet or JSON); {} when
    the source has none (a v2.1 dataset has no episodes parquet)."""
    try:
        return read_outcomes(source)
    except FileNotFoundError:
        return {}


def _scoring_weights(path, table: ProgressTable):
    """The weights file as `RABCWeights` when it was written by `rabc weights` for this table, else None."""
    if path is None:
        return None
    from rabc.weights import RABCWeights

    try:
        w = RABCWeights.load(path)
    except (OSError, ValueError):
        return None
    return w if len(w) == len(table) and np.array_equal(w.index, table.index) else None


class TableScores:
    """Per-episode scores of a progress table (`rabc.episodes.score_episodes`), looked up by episode.

    `scores` is the `EpisodeScores` (None without a chunk size); `predicted` {episode: bool} the
    paper's rule, known whenever progress is.
    """

    def __init__(self, table: ProgressTable, chunk_size: int | None, tasks=None, weights_path=None):
        self.head = "sparse" if "sparse" in table.heads else table.heads[0]
        self.chunk_size = chunk_size
        self.scores: EpisodeScores | None = None
        episodes, starts, ends = table.episode_runs()
        if tasks is not None and any(int(e) not in tasks for e in episodes):
            tasks = None  # progress of episodes the dataset lacks: rank over all episodes instead
        if chunk_size is not None:
            weights = _scoring_weights(weights_path, table)
            self.scores = score_episodes(table, chunk_size, head=self.head, tasks=tasks, weights=weights)
            success = self.scores["predicted_success"]
        else:
            success = paper_rule(table.column(self.head), starts, ends)[0]
        has = np.add.reduceat(np.isfinite(table.column(self.head)), starts) > 0
        self.predicted = {
            int(e): bool(s) for e, s, known in zip(episodes, success, has, strict=True) if known
        }
        self._episodes = episodes
        self._summaries = {}  # final_<head>, mean_<head>: the last and mean known progress
        for head in table.heads:
            p = table.column(head)
            finite = np.isfinite(p)
            count = np.add.reduceat(finite, starts)
            last = np.maximum.reduceat(np.where(finite, np.arange(p.size), -1), starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.add.reduceat(np.where(finite, p, 0.0).astype(np.float64), starts) / count
            self._summaries[f"final_{head}"] = np.where(count > 0, p[np.maximum(last, 0)], np.nan)
            self._summaries[f"mean_{head}"] = mean

    def columns(self, episodes: np.ndarray) -> dict[str, list]:
        """{column: values in the order of `episodes`}: final_/mean_ per head, then the scores (with a
        chunk size); None where the progress file has no (known) value."""
        where = np.searchsorted(self._episodes, episodes)
        where = np.minimum(where, self._episodes.size - 1)
        found = self._episodes[where] == episodes
        arrays = dict(self._summaries)
        if self.scores is not None:
            arrays |= {key: self.scores[key] for key in SHOWN}
        out = {}
        for key, values in arrays.items():
            if key == "rank":
                values = np.where(np.isnan(values), -1, values).astype(np.int64)
                out[key] = [
                    int(v) if v >= 0 and ok else None for v, ok in zip(values[where], found, strict=True)
                ]
            elif values.dtype.kind == "f":
                out[key] = [
                    v if ok else None for v, ok in zip(float32_list(values[where]), found, strict=True)
                ]
            else:
                out[key] = [v.item() if ok else None for v, ok in zip(values[where], found, strict=True)]
        return out


def float32_list(values: np.ndarray) -> list[float | None]:
    """Floats at float32 precision (the progress and weights are float32), written shortest: "0.5263158"
    rather than "0.5263158082962036" in the JSON; NaN as None."""
    text = np.asarray(values, np.float64).astype(np.float32).astype(str)
    return [None if t == "nan" else float(t) for t in text.tolist()]


def static_columns(catalog) -> dict[str, list]:
    """The columns that do not change while the page runs: task, length, progress summaries, scores and
    the weights file's mean weight per episode (over the scores' recomputed one)."""
    episodes = np.asarray(catalog.ds.episodes, np.int64)
    out = {
        "episode_index": episodes.tolist(),
        "task": list(catalog.ds.tasks),
        "length": np.asarray(catalog.ds.episode_lengths).tolist(),
    }
    if catalog.scores is not None:
        out |= catalog.scores.columns(episodes)
    if catalog.weights:
        means = {e: float(w.mean(dtype=np.float64)) if w.size else np.nan for e, w in catalog.weights.items()}
        out["mean_weight"] = float32_list(np.array([means.get(e, np.nan) for e in out["episode_index"]]))
    return out


def predicted_outcomes(catalog) -> list[str | None]:
    """Per dataset episode: "success" / "failure" by the paper's rule where progress is known, else None."""
    predicted = {} if catalog.scores is None else catalog.scores.predicted
    return [
        None if e not in predicted else "success" if predicted[e] else "failure"
        for e in catalog.ds.episodes.tolist()
    ]
