"""Mistake spans and episode outcomes: what lets labels say "this was a mistake" (docs/labels.md).

A human annotator's stage spans are the running maximum of the stage: they keep tau rising through a
pause, a fumble or a drop, and a failed episode's last stage still ramps to its end. Two more facts
per episode let the labels tell the truth:

- mistake spans `Mistake(kind, start, end)`: inclusive, episode-relative frames of a pause, a fumble,
  a regression...; `kind` is a free label ("pause", "drop_regrasp", "fumble");
- an outcome: "success", "failure" or "partial" (the task half done); `True` / `False` read as
  success / failure.

What the labels do with them are two policies, beside the stage-order policy (`StageSchema.targets`):

- `mistakes` ("ignore" default, "hold"): under "hold" the mistake frames leave the episode's clock.
  Progress holds flat at its value when the mistake began, and after the mistake it resumes from
  there: each stage's tau runs over the stage's frames that are not mistakes, so it still reaches 1
  at the stage's end. A stage span that lies entirely inside a mistake disappears.
- `failures` ("keep" default, "truncate", "exclude"): under "truncate" an episode whose outcome is not
  a success has an unfinished stage, which does not progress: progress is capped at that stage's
  start. The unfinished stage is the stage of the span that ends the episode (its last frame), or,
  when the last span ends earlier, the stage after it. A single-stage (linear) label of such an
  episode is 0 throughout. Under "exclude" episodes with outcome "failure" leave reward-model
  training (`sarm.training.from_cache.prepare_training` lists them); "partial" episodes stay, since
  their finished stages are good labels.

This module holds the records and their checks; `StageSchema.targets` applies the policies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "FAILURE_POLICIES",
    "MISTAKE_POLICIES",
    "OUTCOMES",
    "Mistake",
    "check_frames",
    "coerce_outcome",
    "kept_frames",
    "label_time_spans",
    "labelled_triple",
    "validate_mistakes",
]

MISTAKE_POLICIES = ("ignore", "hold")
FAILURE_POLICIES = ("keep", "truncate", "exclude")
OUTCOMES = ("success", "failure", "partial")
UNFINISHED = ("failure", "partial")  # outcomes whose last stage `failures="truncate"` treats as unfinished


def _where(episode) -> str:
    return "" if episode is None else f" in episode {episode!r}"


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def labelled_triple(item, what: str, label: str, episode=None) -> tuple:
    """(label, start, end) of a record given as a (label, start, end) sequence or a {label, "start",
    "end"} dict, with a non-empty string label; `what` ("span", "mistake") names it in the errors."""
    if isinstance(item, Mapping):
        missing = [k for k in (label, "start", "end") if k not in item]
        if missing:
            raise ValueError(
                f"{what} {dict(item)!r}{_where(episode)} lacks key(s) {missing}; "
                f'write {what}s as {{"{label}": str, "start": int, "end": int}}'
            )
        value, start, end = item[label], item["start"], item["end"]
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 3:
        value, start, end = item
    else:
        raise ValueError(
            f"{what} {item!r}{_where(episode)} is not a ({label}, start, end) triple or a "
            f'{{"{label}", "start", "end"}} dict'
        )
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} {item!r}{_where(episode)} needs a non-empty string {label}, got {value!r}")
    return value, start, end


class Mistake(NamedTuple):
    """One mistake: a free `kind` label and inclusive, episode-relative frames."""

    kind: str
    start: int
    end: int

    @classmethod
    def coerce(cls, item, episode=None) -> Mistake:
        """A `Mistake` from a Mistake, a (kind, start, end) sequence or a {"kind", "start", "end"} dict
        ("name" is accepted for "kind")."""
        if isinstance(item, Mapping) and "kind" not in item and "name" in item:
            item = {**item, "kind": item["name"]}
        kind, start, end = labelled_triple(item, "mistake", "kind", episode)
        if not (_is_int(start) and _is_int(end)):
            raise ValueError(
                f"mistake {item!r}{_where(episode)}: start and end should be integer frame indices, but got "
                f"{start!r} and {end!r}"
            )
        return cls(kind, int(start), int(end))


def check_frames(what: str, item: tuple, num_frames: int | None, episode=None) -> None:
    """Refuse a (label, start, end) record that is reversed or, with `num_frames`, outside the episode;
    `what` ("span", "mistake") names it in the message."""
    _, start, end = item
    if start > end:
        raise ValueError(
            f"{what} {tuple(item)}{_where(episode)} is reversed (start {start} > end {end}); ends are "
            "inclusive frame indices, so swap them"
        )
    if num_frames is not None and (start < 0 or end >= num_frames):
        raise ValueError(
            f"{what} {tuple(item)}{_where(episode)} lies outside the episode's frames 0..{num_frames - 1}; "
            f"{what}s use episode-relative, inclusive frame indices"
        )


def validate_mistakes(mistakes, num_frames: int | None, episode=None) -> list[Mistake]:
    """Coerce, sort and check one episode's mistakes: not reversed, inside frames 0..num_frames - 1
    (None skips that check). Mistakes may overlap each other and any stage span."""
    out = sorted((Mistake.coerce(m, episode) for m in mistakes or ()), key=lambda m: (m.start, m.end))
    for m in out:
        check_frames("mistake", m, num_frames, episode)
    return out


def coerce_outcome(value, episode=None) -> str | None:
    """ "success", "failure", "partial" or None (unknown) from those strings (any case), True / False,
    1 / 0 or None."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or (_is_int(value) and value in (0, 1)):
        return "success" if value else "failure"
    if isinstance(value, str) and value.strip().lower() in OUTCOMES:
        return value.strip().lower()
    raise ValueError(
        f"outcome {value!r}{_where(episode)} should be one of {list(OUTCOMES)}, true / false, or null "
        "(unknown)"
    )


def kept_frames(mistakes: Sequence[Mistake], num_frames: int) -> np.ndarray:
    """bool (num_frames,): True for the frames outside every mistake (the episode's clock under hold)."""
    kept = np.ones(num_frames, bool)
    for m in mistakes:
        kept[max(m.start, 0) : max(m.end + 1, 0)] = False
    return kept


def label_time_spans(spans, kept: np.ndarray) -> list[tuple[str, int, int]]:
    """Stage spans moved onto the clock of the kept frames: a span keeps its frames that are not
    mistakes, renumbered 0..kept.sum() - 1; a span with none left is dropped. `spans` are (name,
    start, end) triples inside the episode."""
    before = np.concatenate([[0], np.cumsum(kept)])  # before[f] = kept frames < f
    out = []
    for name, start, end in spans:
        s, e = int(before[max(start, 0)]), int(before[min(end + 1, kept.size)]) - 1
        if e >= s:
            out.append((name, s, e))
    return out
