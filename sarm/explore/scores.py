"""The episode table's columns beyond the dataset's own: outcome (known or predicted) and the scores of
`rabc episodes`, computed once from the progress table.

    columns = TableScores(progress_table, chunk_size=50, tasks={0: "pick", ...})
    columns.row(3)       # {"score": 0.71, "max_drop": 0.05, ..., "predicted_success": True}
    outcome_of(3, known={3: "failure"}, scores=columns)   # ("failure", "known")

Known outcomes come from the dataset's `outcome` column (`sarm.labels.records.read_outcomes`); an
episode without one is given the paper's rule (final progress > 0.8 and last-third mean > 0.6) as a
*predicted* outcome when progress is known. The scores need the chunk size (the RA-BC delta): from
`--chunk-size`, else the weights file's metadata; without it only the predicted outcome is shown.
"""

from __future__ import annotations

import json
import math

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
        self._position = {int(e): i for i, e in enumerate(episodes)}

    def row(self, episode: int) -> dict:
        """The shown score columns of one episode (NaN as None); {} when it has no scores."""
        i = self._position.get(int(episode))
        if self.scores is None or i is None:
            return {}
        out = {}
        for key in SHOWN:
            value = self.scores[key][i]
            value = value.item() if isinstance(value, np.generic) else value
            out[key] = None if isinstance(value, float) and math.isnan(value) else value
        if out["rank"] is not None:
            out["rank"] = int(out["rank"])
        return out


def outcome_of(
    episode: int, known: dict[int, str], scores: TableScores | None
) -> tuple[str | None, str | None]:
    """(outcome, where it comes from): ("failure", "known"), ("success", "predicted") or (None, None)."""
    if episode in known:
        return known[episode], "known"
    if scores is not None and episode in scores.predicted:
        return ("success" if scores.predicted[episode] else "failure"), "predicted"
    return None, None
