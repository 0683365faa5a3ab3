"""Per-frame labels of a set of episodes, as `sarm train` builds them: spans -> stage schemas per task
-> targets y = stage + tau -> Formula-2 progress, under the label policies.

    labels = label_episodes(episodes, lengths, tasks, annotations={"sparse": spans}, order="monotone")
    labels.targets["sparse"]     # float64 (N,) y = k + tau per frame of the episodes, NaN where unlabelled
    labels.progress("sparse")    # float64 (N,) Formula-2 progress of those targets, NaN where unlabelled

One implementation for training (`sarm.training.from_cache.prepare_training`) and for judging a reward
model against its labels (`sarm eval --annotations`), so both see the same labels. What it decides:
- stage schemas per head and task: proportions by Eq. 1 (`schema_from_annotations`, `method`) over the
  annotated episodes of each task; one task stores its schema under "*"; no annotations: one stage;
- spans go to canonical stages first (`stage_map`, `stages`: `sarm.labels.canonical`); spans that still
  go back in their task's stage order follow `order` ("error" names every such episode in one error,
  "monotone" and "allow" warn with the count); mistake spans and outcomes follow `mistakes` and
  `failures` (`sarm.labels.mistakes`); under failures="exclude" failed episodes are not labelled;
- an episode without spans for a multi-stage task is not labelled (`labelled` False, targets NaN).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sarm.labels.annotations import HEADS
from sarm.labels.mistakes import (
    FAILURE_POLICIES,
    MISTAKE_POLICIES,
    coerce_outcome,
    kept_frames,
    label_time_spans,
    validate_mistakes,
)
from sarm.labels.proportions import schema_from_annotations
from sarm.labels.schema import Span, StageSchema, TaskSchemas
from sarm.labels.select import spans_for_episodes

__all__ = ["EpisodeLabels", "check_policies", "label_episodes"]

Annotations = Mapping[int, Sequence[Span] | None]


@dataclass
class EpisodeLabels:
    """Labels of `episodes` (rows: the episodes' frames back to back, in the given order)."""

    episodes: np.ndarray  # int64 (E,) episode indices
    starts: np.ndarray  # int64 (E,) first row of each episode
    lengths: np.ndarray  # int64 (E,) frames of each episode
    tasks: list[str]  # (E,) task text of each episode
    schemas: dict[str, TaskSchemas]  # head -> stage schemas per task
    targets: dict[str, np.ndarray]  # head -> float64 (N,) y = k + tau, NaN where unlabelled
    labelled: np.ndarray  # bool (E,) episodes with labels on every head
    backwards: dict[str, list[int]]  # head -> episodes whose spans go back in their task's stage order
    excluded: list[int]  # failed episodes left unlabelled under failures="exclude"

    def progress(self, head: str = "sparse") -> np.ndarray:
        """float64 (N,) Formula-2 progress of `targets[head]` (each episode by its task's schema)."""
        y, out = self.targets[head], np.full(len(self.targets[head]), np.nan)
        for start, length, task in zip(self.starts.tolist(), self.lengths.tolist(), self.tasks, strict=True):
            rows = slice(start, start + length)
            out[rows] = self.schemas[head].schema_for(task).progress(y[rows])
        return out


def check_policies(mistakes, failures, mistake_spans, outcomes) -> None:
    """Policies that would change nothing for lack of records are errors, not silent no-ops."""
    for name, value, allowed in (
        ("mistakes", mistakes, MISTAKE_POLICIES),
        ("failures", failures, FAILURE_POLICIES),
    ):
        if value not in allowed:
            raise ValueError(f"{name} should be one of {list(allowed)}, but got {name}={value!r}")
    if mistakes == "hold" and not any((mistake_spans or {}).values()):
        raise ValueError(
            "mistakes='hold' (--mistakes hold) needs mistake spans, but no episode has one; add mistake_* "
            "columns or \"mistakes\" to the annotations (docs/labels.md), or use mistakes='ignore'"
        )
    if failures != "keep" and not any(v is not None for v in (outcomes or {}).values()):
        raise ValueError(
            f"failures={failures!r} (--failures {failures}) needs episode outcomes, but none is known; "
            "add an `outcome` column or pass an outcome file (--outcomes), or use failures='keep'"
        )


def _schemas(episodes, lengths, tasks, spans: Annotations, method: str, order) -> TaskSchemas:
    per_task = {}
    for task in sorted(set(tasks)):
        mine = {e: spans.get(e) for e, t in zip(episodes, tasks, strict=True) if t == task}
        names = (order or {}).get(task) or None  # canonical stage order, else by mean relative start
        per_task[task] = schema_from_annotations(mine, lengths, names=names, method=method)
    if len(per_task) == 1:
        return TaskSchemas.single_schema(next(iter(per_task.values())))
    return TaskSchemas(per_task)


def _clock(spans, marks, length: int) -> list[Span]:
    """The spans on the clock without mistake frames (the frames the order policy sees under hold)."""
    if not spans or not marks:
        return list(spans or [])
    return [Span(*s) for s in label_time_spans([tuple(s) for s in spans], kept_frames(marks, length))]


def label_episodes(
    episodes: Sequence[int],
    lengths: Sequence[int],
    tasks: Sequence[str],
    *,
    annotations: Mapping[str, Annotations] | None = None,
    method: str = "paper",
    where: str = "the dataset",
    stage_map=None,
    stages: str = "names",
    order: str = "error",
    mistakes: str = "ignore",
    failures: str = "keep",
    mistake_spans: Mapping[int, Sequence] | None = None,
    outcomes: Mapping[int, object] | None = None,
) -> EpisodeLabels:
    """Labels of `episodes` (with their `lengths` and task texts) from `annotations` ({head: {episode:
    spans or None}}; heads absent or empty get a single stage, the sparse head always exists). `where`
    names the episodes' home in messages. The policies are those of `prepare_training` (module
    docstring); bad records and policies without records raise ValueError."""
    check_policies(mistakes, failures, mistake_spans, outcomes)
    annotations = dict(annotations or {})
    unknown = sorted(set(annotations) - set(HEADS))
    if unknown:
        raise ValueError(f"annotations has unknown heads {unknown}; heads are {list(HEADS)}")
    episodes = [int(e) for e in episodes]
    lengths_arr = np.asarray(lengths, np.int64)
    length_of = dict(zip(episodes, lengths_arr.tolist(), strict=True))
    tasks = list(tasks)
    heads = ["sparse", *(["dense"] if annotations.get("dense") else [])]
    task_of = dict(zip(episodes, tasks, strict=True))
    canonical = {
        h: spans_for_episodes(
            annotations.get(h), task_of, head=h, where=where, stage_map=stage_map, stages=stages
        )
        for h in heads
    }
    spans = {h: c.spans for h, c in canonical.items()}
    schemas = {h: _schemas(episodes, length_of, tasks, spans[h], method, canonical[h].order) for h in heads}
    starts = np.concatenate([[0], np.cumsum(lengths_arr)[:-1]]).astype(np.int64)
    targets = {h: np.full(int(lengths_arr.sum()), np.nan) for h in heads}
    labelled = np.ones(len(episodes), bool)
    backwards: dict[str, list[int]] = {h: [] for h in heads}
    first_error, first_episode = None, None
    excluded: list[int] = []
    for position, episode in enumerate(episodes):
        length = int(lengths_arr[position])
        rows = slice(int(starts[position]), int(starts[position]) + length)
        outcome = coerce_outcome((outcomes or {}).get(episode), episode)
        if failures == "exclude" and outcome == "failure":
            labelled[position] = False
            excluded.append(episode)
            continue
        marks = validate_mistakes((mistake_spans or {}).get(episode), length, episode)
        policy = dict(mistakes=mistakes, mistake_spans=marks, failures=failures, outcome=outcome)
        for h in heads:
            schema: StageSchema = schemas[h].schema_for(tasks[position])
            mine = (spans.get(h) or {}).get(episode)
            if schema.num_stages > 1 and not mine:
                labelled[position] = False
                continue
            if schema.order_violation(_clock(mine, marks if mistakes == "hold" else [], length), episode):
                backwards[h].append(episode)
                if order == "error":  # every such episode is named in one error after the loop
                    try:
                        schema.targets(mine, length, episode, order="error", **policy)
                    except ValueError as err:
                        if first_error is None:
                            first_error, first_episode = f"{h} head: {err}", episode
                    continue
            targets[h][rows] = schema.targets(mine or [], length, episode, order=order, **policy)
    _report_order(backwards, order, first_error, first_episode)
    ids = np.asarray(episodes, np.int64)
    return EpisodeLabels(ids, starts, lengths_arr, tasks, schemas, targets, labelled, backwards, excluded)


def _report_order(backwards, order: str, first_error, first_episode) -> None:
    went_back = sorted({e for eps in backwards.values() for e in eps})
    if went_back and order == "error":
        others = [e for e in went_back if e != first_episode]
        raise ValueError(
            f"{len(went_back)} episode(s) have spans that go back in their task's stage order; "
            f"{first_error}{f' (also episodes {others[:10]})' if others else ''}"
        )
    if went_back:
        warnings.warn(
            f"{len(went_back)} episode(s) have spans that go back in their task's stage order: "
            f"{went_back[:10]}; order={order!r} "
            + ("holds the running maximum there" if order == "monotone" else "keeps the drops as labelled"),
            stacklevel=3,
        )
