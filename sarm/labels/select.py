"""Match annotations to the episodes that will be labelled (a feature cache, a dataset), loudly.

Spans for episodes that are not there, or annotations in which no episode has a span, would otherwise
train on nothing (or on a single linear stage) without a word. `spans_for_episodes` warns with counts
when some annotated episodes are missing, and raises when none is there or no span exists at all; it
then maps the spans to canonical stages (`sarm.labels.canonical`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from sarm.labels.canonical import CanonicalSpans, canonical_spans

__all__ = ["spans_for_episodes"]


def _few(items, n: int = 10) -> str:
    items = list(items)
    return f"{items[:n]}{f' (and {len(items) - n} more)' if len(items) > n else ''}"


def spans_for_episodes(
    annotations: Mapping[int, list | None] | None,
    tasks: Mapping[int, str],
    *,
    head: str = "sparse",
    where: str = "the dataset",
    stage_map=None,
    stages: str = "names",
) -> CanonicalSpans:
    """The annotations of the episodes in `tasks` ({episode: task text}), in canonical stages.

    Args:
        annotations: {episode: spans or None}; None or {} means no annotations (a single stage).
        tasks: the episodes that will be labelled and their task texts.
        head: named in messages.
        where: names the episodes' home in messages (e.g. "the feature cache `features/`").
        stage_map, stages: see `sarm.labels.canonical.canonical_spans`.

    Raises:
        ValueError: annotations that list episodes but not a single span; annotated episodes of which
            none is in `tasks` (naming both sides). Some annotated episodes missing only warn (counted).
    """
    annotations = dict(annotations or {})
    if not annotations:
        return CanonicalSpans({}, None)
    annotated = [e for e, s in annotations.items() if s]
    if not annotated:
        raise ValueError(
            f"the {head} annotations list {len(annotations)} episode(s) {_few(sorted(annotations))} but not "
            "a single span (all null or empty), so there is nothing to label; fix the annotation source, "
            "or pass no annotations for a single stage (`--annotations none` in `sarm train`)"
        )
    outside = sorted(e for e in annotated if e not in tasks)
    if len(outside) == len(annotated):
        raise ValueError(
            f"none of the {len(annotated)} episode(s) with {head} spans {_few(outside)} is in {where} "
            f"(its episodes: {_few(sorted(tasks))}); extract their features (`sarm features`) or fix the "
            "episode numbers (a BEHAVIOR file's episode is the number at the end of its name)"
        )
    if outside:
        warnings.warn(
            f"{len(outside)} of {len(annotated)} episode(s) with {head} spans are not in {where} and are "
            f"ignored: {_few(outside)}",
            stacklevel=2,
        )
    kept = {e: s for e, s in annotations.items() if e in tasks}
    return canonical_spans(kept, {e: tasks[e] for e in kept}, stage_map=stage_map, stages=stages)
