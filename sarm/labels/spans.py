"""Stage spans: `Span(name, start, end)`, one stage occurrence with inclusive, episode-relative frames;
coercing them from tuples and dicts, checking one episode's spans (`validate_spans`) and numbering
repeated skills (`number_repeats`: "move to", "move to #2", ...). The readers in
`sarm.labels.annotations` return lists of them; `sarm.labels.schema.StageSchema` labels frames by them.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from sarm.labels.mistakes import check_frames, labelled_triple

__all__ = ["Span", "number_repeats", "sorted_spans", "validate_spans"]


def _where(episode) -> str:
    return "" if episode is None else f" in episode {episode!r}"


class Span(NamedTuple):
    """One stage occurrence: inclusive frame indices inside one episode (0-based, episode-relative)."""

    name: str
    start: int
    end: int

    @classmethod
    def coerce(cls, item, episode=None) -> Span:
        """A `Span` from a Span, a (name, start, end) sequence or a {"name", "start", "end"} dict."""
        name, start, end = labelled_triple(item, "span", "name", episode)
        for key, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(
                    f"span {item!r}{_where(episode)}: {key} frame should be an integer frame index, "
                    f"but got {value!r}; convert timestamps to frames first (frame = int(seconds * fps))"
                )
        return cls(name, int(start), int(end))


def sorted_spans(spans, episode=None) -> list[Span]:
    """Coerced spans, stably sorted by start."""
    return sorted((Span.coerce(s, episode) for s in spans), key=lambda s: s.start)


def validate_spans(spans, num_frames: int | None, names=None, episode=None) -> list[Span]:
    """Coerce, sort (by start, then end) and check one episode's spans.

    Args:
        spans: `Span`s, (name, start, end) tuples or {"name", "start", "end"} dicts.
        num_frames: frames in the episode (spans must lie in [0, num_frames - 1]); None skips that check.
        names: the known stage names; None accepts any name.
        episode: named in error messages.

    Raises:
        ValueError: naming the episode and the span, for a non-integer frame, a reversed span, a span
            outside the episode, an unknown name, or two spans overlapping by more than one frame.
    """
    out = sorted((Span.coerce(s, episode) for s in spans), key=lambda s: (s.start, s.end))
    known = None if names is None else list(names)
    for s in out:
        check_frames("span", s, num_frames, episode)
        if known is not None and s.name not in known:
            raise ValueError(
                f"span {tuple(s)}{_where(episode)} names an unknown stage {s.name!r}; known stages: {known}"
            )
    for prev, nxt in itertools.pairwise(out):
        if nxt.start < prev.end:
            raise ValueError(
                f"spans {tuple(prev)} and {tuple(nxt)}{_where(episode)} overlap by "
                f"{prev.end - nxt.start + 1} frames; at most one shared boundary frame is allowed "
                f"(start the second span at {prev.end} or later)"
            )
    return out


def number_repeats(spans) -> list[Span]:
    """Rename repeated stage names by occurrence: "move to", "move to #2", "move to #3" (sorted by start).

    Raises ValueError when a generated name collides with a name already in the episode.
    """
    out = sorted((Span.coerce(s) for s in spans), key=lambda s: s.start)
    originals = {s.name for s in out}
    seen: dict[str, int] = {}
    renamed = []
    for s in out:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            name = f"{s.name} #{seen[s.name]}"
            if name in originals:
                raise ValueError(
                    f"numbering the repeated stage {s.name!r} gives {name!r}, which the episode already "
                    "uses; rename one of them"
                )
            s = Span(name, s.start, s.end)
        renamed.append(s)
    return renamed
