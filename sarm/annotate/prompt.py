"""The prompt a VLM gets for one episode, and the strict reading of its answer into frame spans.

    text = instructions(task="fold the towel", names=["grab", "fold"], duration_s=12.0)
    subtasks = parse_answer(answer)                    # [(name, start_s, end_s), ...] or AnswerError
    spans = spans_from_seconds(subtasks, names, fps=30, num_frames=360, episode=3)

The answer contract is `{"subtasks": [{"name": str, "start": seconds, "end": seconds}, ...]}`: bare,
inside a ```json fence, or with prose around it. Every check fails with an `AnswerError` whose message is
written for the model (it goes back into the conversation on a retry) and for the failure report.

Seconds become frames as LeRobot's `subtask_annotation.py` does: `frame = int(seconds * fps)` (truncation;
a 1e-9 guard keeps 2.3 s at 10 fps on frame 23, where `2.3 * 10` is 22.999999999999996). LeRobot lets a
last subtask end at `int(duration * fps) == length`, one past the last frame; here such an end becomes the
last frame, so every written span lies inside its episode (`sarm.labels` rules).
"""

from __future__ import annotations

import json
import math
import re

from sarm.labels.annotations import validate_spans
from sarm.labels.schema import Span

__all__ = [
    "ANSWER_FORMAT",
    "AnswerError",
    "instructions",
    "parse_answer",
    "retry_message",
    "spans_from_seconds",
]

ANSWER_FORMAT = '{"subtasks": [{"name": str, "start": seconds, "end": seconds}, ...]}'
_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_KEYS = ("name", "start", "end")


class AnswerError(ValueError):
    """A VLM answer that is not valid: the message says what is wrong, in words the model can act on."""


def instructions(task: str, names: list[str], duration_s: float) -> str:
    """The system text: the task, the subtask names in order, the episode's length and the JSON asked for."""
    listed = "\n".join(f"{i}. {name}" for i, name in enumerate(names, start=1))
    example = {"subtasks": [{"name": n, "start": 0.0, "end": 0.0} for n in names[:2]]}
    return (
        "You segment one video of a robot demonstration into subtasks.\n"
        f"Task: {task}\n"
        f"The video lasts {duration_s:.2f} seconds. You see frames sampled from it, each labelled with "
        "its time in seconds from the start of the video.\n"
        f"Subtasks, in the order they happen (use these names exactly, each exactly once):\n{listed}\n"
        "A subtask starts at the first moment the robot clearly begins it and ends when it is visibly "
        "completed; the next subtask starts where the previous one ends. Do not split the video into "
        "equal parts: place every boundary where the video shows it.\n"
        f"Answer with JSON of this form, times in seconds (numbers, between 0 and {duration_s:.2f}):\n"
        f"{ANSWER_FORMAT}\n"
        f"For example: {json.dumps(example)}"
    )


def retry_message(error: str) -> str:
    """The user turn that sends a rejected answer's error back to the model."""
    return f"That answer is not valid: {error}. Answer again with only the JSON {ANSWER_FORMAT}."


def _candidates(text: str):
    yield text.strip()
    for block in _FENCE.findall(text):
        yield block.strip()
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        yield value


def _find_object(text: str) -> dict:
    for candidate in _candidates(text):
        if isinstance(candidate, str):
            try:
                candidate = json.loads(candidate)
            except json.JSONDecodeError:
                continue
        if isinstance(candidate, dict) and "subtasks" in candidate:
            return candidate
    raise AnswerError(
        f'no JSON object with a "subtasks" key was found in the answer; expected {ANSWER_FORMAT}'
    )


def _seconds(value, key: str, i: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AnswerError(
            f"subtasks[{i}].{key} is {json.dumps(value)}, but it must be a number of seconds (such as 4.5)"
        )
    if value < 0:
        raise AnswerError(f"subtasks[{i}].{key} is {value}, but times start at 0 seconds")
    return float(value)


def parse_answer(text: str) -> list[tuple[str, float, float]]:
    """The subtasks of an answer, as (name, start seconds, end seconds), in the order given.

    Strict: the object has only the key "subtasks", a non-empty list of objects with exactly the keys
    name (a string), start and end (numbers of seconds, not strings such as "00:05").
    """
    obj = _find_object(text)
    extra = sorted(set(obj) - {"subtasks"})
    if extra:
        raise AnswerError(f'the JSON has extra keys {extra}; only "subtasks" is allowed')
    items = obj["subtasks"]
    if not isinstance(items, list) or not items:
        raise AnswerError('"subtasks" must be a non-empty list of {"name", "start", "end"} objects')
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != set(_KEYS):
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise AnswerError(
                f'subtasks[{i}] has {keys}, but it must have exactly the keys "name", "start", "end"'
            )
        if not isinstance(item["name"], str):
            raise AnswerError(f"subtasks[{i}].name is {json.dumps(item['name'])}, but it must be a string")
        out.append((item["name"], _seconds(item["start"], "start", i), _seconds(item["end"], "end", i)))
    return out


def spans_from_seconds(
    subtasks: list[tuple[str, float, float]],
    names: list[str],
    *,
    fps: float,
    num_frames: int,
    tolerance_s: float = 0.0,
    episode=None,
) -> list[Span]:
    """Check the subtasks against the episode and turn them into inclusive frame spans.

    Each name of `names` must appear exactly once, in that order, with start <= end, starts not going
    back, inside the video (an end up to `tolerance_s` past the end is read as the end); after the
    conversion to frames, `validate_spans` allows at most one shared boundary frame between neighbours.
    """
    got = [name for name, _, _ in subtasks]
    unknown = [n for n in got if n not in names]
    if unknown:
        raise AnswerError(f"unknown subtask names {unknown}; use exactly these names: {names}")
    if got != list(names):
        raise AnswerError(
            f"the subtasks are {got}, but they must be each of {names} exactly once, in this order"
        )
    duration = num_frames / fps
    spans = []
    for i, (name, start, end) in enumerate(subtasks):
        if start > end:
            raise AnswerError(f"subtask {name!r} starts at {start:g} s after it ends ({end:g} s)")
        if end > duration + tolerance_s or start >= duration:
            raise AnswerError(
                f"subtask {name!r} ({start:g} s to {end:g} s) lies beyond the end of the video at "
                f"{duration:.2f} s"
            )
        if i and start < subtasks[i - 1][1]:
            raise AnswerError(f"subtask {name!r} starts at {start:g} s, before the previous subtask starts")
        first, last = int(start * fps + 1e-9), min(int(end * fps + 1e-9), num_frames - 1)
        spans.append(Span(name, first, last))
    try:
        return validate_spans(spans, num_frames, names=names, episode=episode)
    except ValueError as err:
        raise AnswerError(
            f"the subtasks overlap ({err}); each subtask must start where the previous ends"
        ) from None
