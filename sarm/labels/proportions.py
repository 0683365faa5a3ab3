"""Temporal proportions of stages (SARM Eq. 1, or LeRobot's variant) and schemas built from annotations.

The proportion a_k of stage k is the share of an episode that stage takes, averaged over episodes; the
breakpoints of Formula 2 are their cumulative sums (`sarm.labels.schema.StageSchema`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sarm.labels.schema import StageSchema
from sarm.labels.spans import Span
from sarm.labels.spans import sorted_spans as _spans

__all__ = ["METHODS", "schema_from_annotations", "temporal_proportions"]

METHODS = ("paper", "lerobot")


def temporal_proportions(episodes, names=None, method: str = "paper") -> dict[str, float]:
    """Temporal proportions a_k of each stage (Eq. 1), ordered, summing to 1.

    Args:
        episodes: (spans, num_frames) pairs, as an iterable or a {episode: (spans, num_frames)} mapping
            (the keys name episodes in errors). Episodes with None or empty spans are unannotated and
            skipped. "paper" counts frames inclusively, L = end - start + 1; "lerobot" uses LeRobot's
            L = end - start (its spans share boundary frames: end_frame = int(end_s * fps)).
        names: the stage order. Default: by the mean relative start (start / num_frames) of each name's
            first occurrence over the episodes that contain it; ties by first appearance.
        method: "paper" (default): a_k = (1/M) * sum_i L_ik / T_i over all M annotated episodes with
            T_i = num_frames; a name repeated within an episode sums its occurrences; a stage missing
            from an episode contributes 0. Eq. 1 sums to 1 only when spans cover whole episodes, so the
            result is renormalised. "lerobot": LeRobot's `compute_temporal_proportions`: T_i = the sum
            of the episode's span durations, a repeated name keeps only its last occurrence's duration
            (T_i counts all), and a_k is the mean of L_ik / T_i over only the episodes containing k;
            then renormalised.

    Returns:
        {name: a_k}; {"task": 1.0} (single stage) when no episode is annotated and `names` is None.

    Raises:
        ValueError: a span naming a stage not in `names` (the message names episode and span), a name
            in `names` that never occurs (LeRobot would silently drop it), an unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"method should be one of {list(METHODS)}, but got method={method!r}")
    items = episodes.items() if isinstance(episodes, Mapping) else enumerate(episodes)
    annotated = []  # (episode, spans, num_frames)
    for ep, pair in items:
        try:
            spans, num_frames = pair
        except (TypeError, ValueError):
            raise ValueError(
                f"episode {ep!r} should be a (spans, num_frames) pair, but got {pair!r}"
            ) from None
        if spans is None or len(spans) == 0:
            continue
        if isinstance(num_frames, bool) or not isinstance(num_frames, int | np.integer) or num_frames < 1:
            raise ValueError(
                f"episode {ep!r}: num_frames should be a positive integer, but got {num_frames!r}"
            )
        spans = _spans(spans, ep)
        for s in spans:
            if s.start > s.end or s.start < 0 or s.end >= num_frames:
                raise ValueError(
                    f"span {tuple(s)} in episode {ep!r} is reversed or outside the episode's "
                    f"{num_frames} frames; check it with sarm.labels.annotations.validate_spans"
                )
        annotated.append((ep, spans, int(num_frames)))
    if not annotated:
        if names is not None:
            raise ValueError(
                f"no episode is annotated, so the stages {list(names)} never occur; annotate episodes "
                "or pass names=None for a single stage"
            )
        return {"task": 1.0}
    order = _stage_order(annotated) if names is None else _check_names(annotated, list(names))
    col = {name: i for i, name in enumerate(order)}
    share = np.zeros(len(order), np.float64)
    count = np.zeros(len(order), np.float64)
    for _ep, spans, num_frames in annotated:
        lengths = np.zeros(len(order), np.float64)
        for s in spans:
            if method == "paper":
                lengths[col[s.name]] += s.end - s.start + 1
            else:  # LeRobot: a repeated name overwrites
                lengths[col[s.name]] = s.end - s.start
        total = num_frames if method == "paper" else sum(s.end - s.start for s in spans)
        present = np.isin(np.arange(len(order)), [col[s.name] for s in spans])
        share += np.where(present, lengths / total, 0.0)
        count += present
    alpha = share / len(annotated) if method == "paper" else share / count
    alpha = alpha / alpha.sum()
    return {name: float(a) for name, a in zip(order, alpha, strict=True)}


def _stage_order(annotated) -> list[str]:
    rel, seen = {}, {}
    for _ep, spans, num_frames in annotated:
        firsts = {}
        for s in spans:
            firsts.setdefault(s.name, s.start / num_frames)
            seen.setdefault(s.name, len(seen))
        for name, r in firsts.items():
            rel.setdefault(name, []).append(r)
    return sorted(seen, key=lambda n: (float(np.mean(rel[n])), seen[n]))


def _check_names(annotated, names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError(f"names must be unique, but got {names}")
    occurring = set()
    for ep, spans, _n in annotated:
        for s in spans:
            if s.name not in names:
                raise ValueError(
                    f"span {tuple(s)} in episode {ep!r} names stage {s.name!r}, which is not in names "
                    f"{names}; add it to names or fix the annotation"
                )
            occurring.add(s.name)
    never = [n for n in names if n not in occurring]
    if never:
        raise ValueError(
            f"stage(s) {never} in names never occur in the {len(annotated)} annotated episode(s); "
            "remove them or annotate them (LeRobot silently drops such stages, shrinking K)"
        )
    return names


def schema_from_annotations(
    annotations: Mapping[int, Sequence[Span] | None],
    lengths: Mapping[int, int],
    names=None,
    method: str = "paper",
) -> StageSchema:
    """A StageSchema from per-episode spans and episode lengths (see `temporal_proportions`).

    Episodes with None or empty spans are unannotated and skipped; if none is annotated (and `names`
    is None) the result is `StageSchema.single()`.
    """
    episodes = {}
    for ep, spans in annotations.items():
        if not spans:
            continue
        if ep not in lengths:
            raise ValueError(
                f"episode {ep!r} is annotated but has no length in `lengths`; pass every annotated "
                "episode's number of frames (e.g. the `length` column of meta/episodes)"
            )
        episodes[ep] = (spans, lengths[ep])
    return StageSchema.from_proportions(temporal_proportions(episodes, names=names, method=method))
