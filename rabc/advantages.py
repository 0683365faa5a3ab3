"""Offline-RL signals from progress: returns-to-go, chunk advantages and binarised advantage labels.

Progress p_t in [0, 1] is read as a potential. For frame t of an episode with last frame T:

    reward        r_t = p_{t+1} - p_t                      (r_T = 0: nothing follows the last frame)
    return-to-go  G_t = sum_{k=t..T} gamma^(k-t) r_k       (gamma = 1: G_t = p_T - p_t)
    advantage     A_t = (p_{min(t+N, T)} - p_t) - b(t)     (N = chunk size, the RA-BC delta of Eq. 8)
    label         1{A_t > q-quantile of A in t's baseline group}

The baseline b is the mean chunk delta of t's group: its task (`baseline="task"`; one group for the
whole file without `tasks`), its predicted stage (`baseline="stage"`: the argmax of the file's stage
probabilities, written by `sarm progress --stage-probs`), or 0 (`baseline="none"`). The label
thresholds are per group too, so each task (or stage) has about the same share of positive frames:
the advantage-conditioned recipe of RECAP / pi*0.6 (docs/rl.md), with progress in place of a learned
value function. Unknown progress (NaN, or a frame absent from the file) gives NaN values and no label
(null in the file), never a guess.

    adv = progress_advantages("sarm_progress.parquet", chunk_size=50, gamma=0.99)
    adv.write("advantages.parquet")      # index, episode_index, frame_index, return_to_go, ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from rabc.files import atomic_write
from rabc.formulas import group_rows, progress_deltas
from rabc.progress_io import ProgressTable, read_progress

__all__ = ["BASELINES", "COLUMNS", "Advantages", "discounted_returns", "progress_advantages"]

BASELINES = ("task", "stage", "none")
COLUMNS = ("index", "episode_index", "frame_index", "return_to_go", "advantage", "advantage_label")
METADATA_KEY = b"rabc.advantages"


@dataclass(frozen=True)
class Advantages:
    """Per-frame returns-to-go, advantages and labels, row-aligned with the progress file."""

    index: np.ndarray  # int64 (N,)
    episode_index: np.ndarray  # int64 (N,)
    frame_index: np.ndarray  # int64 (N,)
    return_to_go: np.ndarray  # float32 (N,), NaN where a later progress value is unknown
    advantage: np.ndarray  # float32 (N,), NaN where the chunk's progress is unknown
    advantage_label: np.ndarray  # bool (N,); meaningful only where `labelled`
    labelled: np.ndarray  # bool (N,): False where the advantage is NaN (null in the file)
    info: dict = field(default_factory=dict)  # settings, baselines and thresholds per group

    def __len__(self) -> int:
        return len(self.index)

    def to_arrow(self) -> pa.Table:
        columns = {
            "index": self.index,
            "episode_index": self.episode_index,
            "frame_index": self.frame_index,
            "return_to_go": self.return_to_go,
            "advantage": self.advantage,
            "advantage_label": pa.array(self.advantage_label, mask=~self.labelled),
        }
        table = pa.table(columns)
        return table.replace_schema_metadata({METADATA_KEY: json.dumps(self.info).encode()})

    def write(self, path) -> Path:
        """Write the columns of `COLUMNS` as parquet (atomically), the settings in its metadata."""
        path = Path(path)
        if path.suffix != ".parquet":
            raise ValueError(
                f"advantages `{path}`: write a .parquet file, not `{path.suffix or 'no suffix'}`"
            )
        import pyarrow.parquet as pq

        table = self.to_arrow()
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def discounted_returns(rewards: np.ndarray, episode_ends: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum_{k >= t} gamma^(k-t) r_k within each episode, for all rows at once.

    `episode_ends[i]` is the exclusive end row of row i's episode. A doubling scan: after pass s each
    G_t sums the rewards t .. t + 2^s - 1, so log2(longest episode) vector passes do it, with no power
    of gamma below gamma^(longest episode) (it underflows to 0 like the true weight, never to inf).
    NaN rewards make every earlier return of their episode NaN.
    """
    returns = np.asarray(rewards, np.float64).copy()
    rows = np.arange(len(returns))
    span = 1
    while True:
        ahead = rows + span
        inside = np.flatnonzero(ahead < episode_ends)
        if inside.size == 0:
            return returns
        returns[inside] += gamma**span * returns[ahead[inside]]  # the right side is read before the write
        span *= 2


def progress_advantages(
    progress,
    chunk_size: int,
    *,
    head: str = "sparse",
    gamma: float = 1.0,
    baseline: str = "task",
    tasks: Mapping[int, str] | None = None,
    quantile: float = 0.7,
) -> Advantages:
    """Returns-to-go, chunk advantages and labels from a progress file (see the module docstring).

    Args:
        progress: a progress file of either layout (LeRobot's `sarm_progress.parquet` or its scores file),
            a dataset root holding one, a `pyarrow.Table`, or a `ProgressTable`.
        chunk_size: N, the policy's action chunk in frames (as for RA-BC weights).
        gamma: discount of the return-to-go, in (0, 1].
        baseline: "task" (needs `tasks` to have more than one group), "stage" or "none".
        tasks: {episode_index: task}, for `baseline="task"`; without it all episodes form one group.
        quantile: frames whose advantage is above this quantile of their group's are labelled positive
            (0.7: about the top 30%).
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma should be in (0, 1], but got gamma={gamma}")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile should be in (0, 1), but got quantile={quantile}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline should be one of {list(BASELINES)}, but got baseline={baseline!r}")
    if isinstance(progress, ProgressTable):
        table = progress
    else:
        table = read_progress(progress, heads=[head], extras=baseline == "stage")
    p = table.column(head).astype(np.float64)
    _, starts, ends = table.episode_runs()
    row_end = np.repeat(ends, ends - starts)  # exclusive end row of each row's episode
    rewards = np.zeros(len(p))
    has_next = np.arange(len(p)) + 1 < row_end  # not the episode's last row
    step = np.zeros(len(p), bool)
    step[:-1] = has_next[:-1] & (table.frame_index[1:] == table.frame_index[:-1] + 1)
    rewards[:-1][step[:-1]] = np.diff(p)[step[:-1]]
    rewards[has_next & ~step] = np.nan  # the next frame is absent from the file: unknown
    rewards[np.isnan(p)] = np.nan  # r_T = 0 only when p_T is known
    returns = discounted_returns(rewards, row_end, gamma)

    deltas, _ = progress_deltas(table, head, chunk_size)
    groups, names = _groups(table, baseline, tasks, head)
    advantage = np.full(len(p), np.nan)
    label = np.zeros(len(p), bool)
    known = ~np.isnan(deltas)
    per_group = {}
    for g, name in enumerate(names):
        rows = np.flatnonzero((groups == g) & known)
        if rows.size == 0:
            continue
        base = float(np.mean(deltas[rows])) if baseline != "none" else 0.0
        advantage[rows] = deltas[rows] - base
        threshold = float(np.quantile(advantage[rows], quantile))
        label[rows] = advantage[rows] > threshold
        per_group[name] = {
            "baseline": base,
            "threshold": threshold,
            "frames": int(rows.size),
            "positive": int(label[rows].sum()),
        }
    info = {
        "source": str(table.source),
        "head": head,
        "chunk_size": int(chunk_size),
        "gamma": gamma,
        "baseline": baseline,
        "quantile": quantile,
        "groups": per_group,
    }
    return Advantages(
        index=table.index,
        episode_index=table.episode_index,
        frame_index=table.frame_index,
        return_to_go=returns.astype(np.float32),
        advantage=advantage.astype(np.float32),
        advantage_label=label,
        labelled=~np.isnan(advantage),
        info=info,
    )


def _groups(table: ProgressTable, baseline: str, tasks, head: str) -> tuple[np.ndarray, list[str]]:
    """Each row's baseline group (int32 codes) and the groups' names."""
    if baseline == "task" and tasks is not None:
        return group_rows(table, tasks)
    if baseline == "stage":
        probs = table.extras.get(f"stage_probs_{head}")
        if probs is None:
            raise ValueError(
                f"baseline='stage' needs stage probabilities, but `{table.source}` has no "
                f"`stage_probs_{head}` column: write them with `sarm progress --stage-probs`, or use "
                "baseline='task'"
            )
        unknown = np.isnan(probs).any(axis=1)
        stage = np.where(unknown, -1, np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1))
        return stage.astype(np.int32), [f"stage {k}" for k in range(probs.shape[1])]
    return np.zeros(len(table), np.int32), ["all"]
