"""From raw skills to a task's canonical stages, the same for every episode of the task.

BEHAVIOR episodes list ~27 skill segments ("move to" many times, not always in the same order), so the
raw skill names are not stages: numbered repeats ("move to #2") land at different positions in
different episodes and progress would go back. Two ways to stages that agree across a task's episodes
(docs/labels.md has a worked example):

- a stage map (`StageMap`): skill -> canonical stage, global and per task, e.g.
  `{"skills": {"move to": null, "pick up from": "pack"}, "tasks": {"<task text>": {...}}}` (a flat
  `{skill: stage}` object is the global map alone). A skill is looked up by its exact name ("move to #2"),
  then without the occurrence number ("move to"). A null stage merges the skill into the next mapped
  stage (navigation belongs to the stage it leads to; trailing nulls join the previous one).
  Consecutive spans of one stage merge into one span. A task's stage order is the order in which its
  stages first appear as values (the task's map first, then the global one).
- ordinal stages (`stages="ordinal"`): stage k is the k-th span (repeats numbered), which needs every
  annotated episode of a task to have the same sequence; episodes that differ are an error naming them.

`stages="names"` (default) keeps the span names as stages, ordered by mean relative start. Whatever the
stages, an episode whose spans still go back in its task's order is handled by `StageSchema.targets`'
`order` policy ("error" by default).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sarm.labels.annotations import number_repeats
from sarm.labels.spans import Span
from sarm.labels.spans import sorted_spans as _spans

__all__ = ["STAGE_MODES", "CanonicalSpans", "StageMap", "canonical_spans"]

STAGE_MODES = ("names", "ordinal")
_NUMBER = re.compile(r" #\d+$")


def _mapping(value, where: str) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} should be an object {{skill: stage or null}}, but is {value!r}")
    for skill, stage in value.items():
        if (
            not isinstance(skill, str)
            or not skill
            or not (stage is None or (isinstance(stage, str) and stage))
        ):
            raise ValueError(
                f"{where}: {skill!r} -> {stage!r} should map a skill name to a stage name or null "
                "(null merges the skill into the next stage)"
            )
    return dict(value)


class StageMap:
    """Skill name -> canonical stage name (or None: merged into the next stage), global and per task."""

    def __init__(
        self, skills: Mapping | None = None, tasks: Mapping | None = None, *, source: str = "<dict>"
    ):
        self.source = source
        self.skills = _mapping(skills or {}, f"stage map `{source}`: `skills`")
        if not isinstance(tasks or {}, Mapping):
            raise ValueError(f"stage map `{source}`: `tasks` should be an object {{task: {{skill: stage}}}}")
        self.tasks = {t: _mapping(m, f"stage map `{source}`: tasks[{t!r}]") for t, m in (tasks or {}).items()}
        if not self.skills and not self.tasks:
            raise ValueError(f"stage map `{source}` maps no skill; give {{skill: stage}} entries")

    @classmethod
    def load(cls, source) -> StageMap:
        """From a StageMap, a dict or a JSON file: `{"skills": {...}, "tasks": {task: {...}}}` or a flat
        `{skill: stage}` object (the global map)."""
        if isinstance(source, StageMap):
            return source
        name = "<dict>"
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(
                    f"stage map `{path}` does not exist; pass a JSON file {{skill: stage}} (`--stage-map`)"
                )
            try:
                source = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"stage map `{path}` is not valid JSON ({err})") from err
            name = str(path)
        if not isinstance(source, Mapping):
            raise ValueError(f"stage map `{name}` should be a JSON object, but is {type(source).__name__}")
        if set(source) <= {"skills", "tasks"} and all(isinstance(v, Mapping) for v in source.values()):
            return cls(source.get("skills"), source.get("tasks"), source=name)
        return cls(source, source=name)

    def for_task(self, task: str | None) -> dict[str, str | None]:
        """The skill -> stage mapping that applies to `task` (its own entries win over the global ones)."""
        return {**self.skills, **self.tasks.get(task, {})}

    def stage_order(self, task: str | None) -> list[str]:
        """The task's canonical stages, in the order they first appear as values (task map, then global)."""
        values = [*self.tasks.get(task, {}).values(), *self.skills.values()]
        return list(dict.fromkeys(v for v in values if v is not None))

    def stage_of(self, skill: str, task: str | None = None) -> tuple[bool, str | None]:
        """(found, stage) for a skill name, looked up as written, then without its " #n" number."""
        mapping = self.for_task(task)
        for key in (skill, _NUMBER.sub("", skill)):
            if key in mapping:
                return True, mapping[key]
        return False, None

    def apply(self, spans, task: str | None = None, episode=None) -> list[Span]:
        """One episode's spans in canonical stages (see the module docstring). Unmapped skills raise."""
        out: list[Span] = []
        pending: tuple[int, int] | None = None  # (start, end) of null-mapped spans waiting for a stage
        for s in sorted(_spans(spans, episode), key=lambda s: (s.start, s.end)):
            found, stage = self.stage_of(s.name, task)
            if not found:
                raise ValueError(_unmapped(self, [s.name], episode, task))
            if stage is None:
                pending = (s.start, s.end) if pending is None else (pending[0], max(pending[1], s.end))
                continue
            start = s.start if pending is None else min(pending[0], s.start)
            pending = None
            if out and out[-1].name == stage:  # consecutive spans of one stage (nulls between) merge
                out[-1] = Span(stage, out[-1].start, max(out[-1].end, s.end))
            else:
                out.append(Span(stage, start, s.end))
        if pending is not None:
            if not out:
                raise ValueError(
                    f"every skill of episode {episode!r} maps to null in stage map `{self.source}`, so it "
                    "has no stage; map at least one of its skills to a stage"
                )
            out[-1] = Span(out[-1].name, out[-1].start, max(out[-1].end, pending[1]))  # trailing nulls
        return out

    def to_dict(self) -> dict:
        return {"skills": dict(self.skills), "tasks": {t: dict(m) for t, m in self.tasks.items()}}


def _unmapped(stage_map: StageMap, skills, episode, task, first: bool = False) -> str:
    return (
        f"stage map `{stage_map.source}` has no stage for skill(s) {sorted(set(skills))} "
        f"({'first in ' if first else ''}episode {episode!r}, task {task!r}); add them to its `skills` "
        "(or the task's entry under `tasks`) as a stage name, or null to merge them into the next stage"
    )


@dataclass(frozen=True)
class CanonicalSpans:
    """Spans per episode in canonical stages, and each task's stage order (None: infer it from the data)."""

    spans: dict[int, list[Span] | None]
    order: dict[str, list[str]] | None


def canonical_spans(
    annotations: Mapping[int, list | None],
    tasks: Mapping[int, str],
    *,
    stage_map=None,
    stages: str = "names",
) -> CanonicalSpans:
    """Map every episode's spans to its task's canonical stages (module docstring).

    Args:
        annotations: {episode: spans or None (unannotated)}.
        tasks: {episode: task text} for every episode in `annotations` (the per-task keys of the stage
            map are these texts).
        stage_map: a `StageMap`, dict or JSON path; None keeps the span names.
        stages: "names" (span names are stages) or "ordinal" (the k-th span is stage k; every annotated
            episode of a task must have the same sequence).

    Raises:
        ValueError: an unknown mode, an episode without a task, skills the stage map lacks (all listed),
            a stage map task that matches no task, or (ordinal) episodes of one task whose sequences
            differ (naming them and the first difference).
    """
    if stages not in STAGE_MODES:
        raise ValueError(f"stages should be one of {list(STAGE_MODES)}, but got stages={stages!r}")
    missing = [e for e in annotations if e not in tasks]
    if missing:
        raise ValueError(f"episodes {missing[:10]} have spans but no task text; pass tasks for every episode")
    smap = None if stage_map is None else StageMap.load(stage_map)
    spans = {e: (None if s is None else _spans(s, e)) for e, s in annotations.items()}
    if smap is not None:
        unknown_tasks = sorted(set(smap.tasks) - set(tasks.values()))
        if unknown_tasks:
            raise ValueError(
                f"stage map `{smap.source}` has entries for task(s) {unknown_tasks} that no episode has; "
                f"tasks: {sorted(set(tasks.values()))}. Key `tasks` by the dataset's task text"
            )
        unmapped: dict[str, tuple] = {}
        for e, s in spans.items():
            for span in s or []:
                if not smap.stage_of(span.name, tasks[e])[0]:
                    unmapped.setdefault(span.name, (e, tasks[e]))
        if unmapped:
            e, task = next(iter(unmapped.values()))
            raise ValueError(_unmapped(smap, unmapped, e, task, first=True))
        spans = {e: (s if not s else smap.apply(s, tasks[e], e)) for e, s in spans.items()}
    if stages == "ordinal":
        spans = {e: (s if not s else number_repeats(s)) for e, s in spans.items()}
        return CanonicalSpans(spans, _ordinal_order(spans, tasks))
    if smap is None:
        return CanonicalSpans(spans, None)
    order = {}
    for task in sorted({tasks[e] for e in spans}):
        present = {x.name for e, s in spans.items() if tasks[e] == task for x in s or []}
        order[task] = [n for n in smap.stage_order(task) if n in present]
    return CanonicalSpans(spans, order)


def _ordinal_order(spans, tasks) -> dict[str, list[str]]:
    order = {}
    for task in sorted({tasks[e] for e in spans}):
        groups: dict[tuple[str, ...], list] = {}
        for e, s in spans.items():
            if tasks[e] == task and s:
                groups.setdefault(tuple(x.name for x in s), []).append(e)
        if len(groups) > 1:
            ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
            (common, most), (other, odd) = ranked[0], ranked[1]
            rest = [e for _, eps in ranked[1:] for e in eps]
            at = next((i for i, (a, b) in enumerate(zip(common, other, strict=False)) if a != b), None)
            diff = (
                f"at position {at}: {other[at]!r} instead of {common[at]!r}"
                if at is not None
                else f"in length: {len(other)} spans instead of {len(common)}"
            )
            raise ValueError(
                f"stages='ordinal' needs the same span sequence in every annotated episode of task {task!r}, "
                f"but episode(s) {rest[:10]}{' ...' if len(rest) > 10 else ''} differ from episode(s) "
                f"{most[:5]} (episode {odd[0]} {diff}); map skills to canonical stages (stage_map, "
                "`--stage-map`) or use stages='names'"
            )
        if groups:
            order[task] = list(next(iter(groups)))
    return order
