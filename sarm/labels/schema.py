"""Stage-aware labels (SARM, arXiv 2509.25358, Formula 1-2): stages, proportions and targets.

A demonstration is cut into K named stages, each an inclusive frame span `Span(name, start, end)`.
A frame f inside the span of stage k gets the compact target

    y = k + tau,    tau = (f - start) / (end - start)  in [0, 1]          (1.0 when end == start)

which the model regresses. At inference y is mapped to normalised progress with the dataset prior
(Formula 2, `sarm.labels.normalise`): breakpoints P = [0, a_1, a_1 + a_2, ..., 1] from the temporal
proportions a_k (Eq. 1, `sarm.labels.proportions.temporal_proportions`), progress(y) = P[k] +
(y - k) (P[k+1] - P[k]), so a stage's start maps to P[k] and its end to P[k+1] whatever its length.

Edge rules, identical to LeRobot 0.6.1 (`find_stage_and_tau`); spans are sorted by start:
- K == 1 (single stage): tau = clip(f / max(N - 1, 1), 0, 1), stage 0: linear progress; spans ignored.
- before the first span's start: stage 0, tau 0.0.
- after the last span's end: stage K - 1, tau 0.999.
- inside a span (ends inclusive; the first span in order wins, which decides a frame shared by two
  spans: it is the end of the earlier one, y = k + 1, the same progress as the later one's start).
- in a gap between spans: the previous span's stage with tau 1.0.
- `targets` caps y at K - 1 + 0.999 where stage >= K - 1 and tau >= 1 (the last span's end frame), so
  the last frame's progress is P[K-1] + 0.999 * a_K (0.9995 for a_K = 0.5), never exactly 1. A
  consequence: inside a last span longer than 1000 frames the frames with tau > 0.999 score higher
  than the span's (capped) end frame.
- spans=[] with K > 1 gives (0, 0.0) everywhere, as in LeRobot; the readers in `sarm.labels.annotations`
  return None for an unannotated episode, and `stage_and_tau(None, ...)` refuses it (K > 1): skip
  such episodes rather than train them toward zero progress.

Stage order (`targets(..., order=...)`): spans sorted by start must name strictly increasing stages;
otherwise progress would go back (a name repeated in one episode, or stages in another order than the
schema's). `order` decides what happens then (docs/labels.md):
- "error" (default): a ValueError naming the episode, both spans and their stages.
- "monotone": the running maximum of y over the episode's frames: where the spans go back, y holds
  the highest value reached so far (a "running maximum of the stage"), so progress never decreases.
- "allow": the labels as written, progress goes back where the spans do (LeRobot's behaviour; for
  deliberate regressions, e.g. a drop and regrasp labelled on purpose).
Mistakes and failures (`targets(..., mistakes=, mistake_spans=, failures=, outcome=)`, the policies of
`sarm.labels.mistakes`): "hold" takes mistake frames off the episode's clock, "truncate" caps a failed
episode at the start of its unfinished stage; the order policy applies to the spans on that clock.
`stage_and_tau` always gives the raw per-frame rule above. Repeated skills: BEHAVIOR episodes repeat
a skill ("move to" three times); `sarm.labels.annotations.number_repeats` renames the later occurrences
"move to #2", "move to #3", and `sarm.labels.canonical` maps skills to a task's canonical stages.

Deliberate differences from LeRobot: a span name that is not in the schema is an error (LeRobot maps it
to stage 0 or to the span's position); NaN stays NaN in `progress` (LeRobot's tensor path gives 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from sarm.labels.mistakes import (
    FAILURE_POLICIES,
    MISTAKE_POLICIES,
    UNFINISHED,
    coerce_outcome,
    kept_frames,
    label_time_spans,
    validate_mistakes,
)
from sarm.labels.normalise import breakpoints as _breakpoints
from sarm.labels.normalise import progress as _progress
from sarm.labels.normalise import targets_from_progress as _targets_from_progress
from sarm.labels.spans import Span
from sarm.labels.spans import sorted_spans as _spans

__all__ = ["ORDERS", "Span", "StageSchema", "TaskSchemas"]

ORDERS = ("error", "monotone", "allow")  # what `targets` does with spans that go back in stage order
LAST_TAU = 0.999  # LeRobot's tau after the last span and its cap on y at the end of the last stage


def _where(episode) -> str:
    return "" if episode is None else f" in episode {episode!r}"


@dataclass(frozen=True)
class StageSchema:
    """The stages of one task for one head (sparse or dense): ordered names and temporal proportions.

    The order of `names` defines the stage indices k. `proportions` need not sum to 1; `breakpoints`
    renormalises them (LeRobot's rule). Lists are accepted and stored as tuples.
    """

    names: tuple[str, ...]
    proportions: tuple[float, ...]
    _breakpoints: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.names, str):
            raise ValueError(f"names should be a sequence of stage names, but got the string {self.names!r}")
        names = tuple(self.names)
        props = tuple(float(p) for p in np.asarray(self.proportions, dtype=np.float64).reshape(-1))
        if not names:
            raise ValueError("a StageSchema needs at least one stage; use StageSchema.single() for one")
        if len(names) != len(props):
            raise ValueError(
                f"StageSchema has {len(names)} names but {len(props)} proportions; give one per stage"
            )
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"stage names must be non-empty strings, but got {name!r} in {list(names)}")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(
                f"stage names must be unique, but {dupes} repeat; number repeated skills with "
                "sarm.labels.annotations.number_repeats"
            )
        if not all(math.isfinite(p) and p >= 0 for p in props):
            raise ValueError(f"proportions must be finite and >= 0, but got {list(props)} for {list(names)}")
        if sum(props) <= 0:
            raise ValueError(f"proportions must have a positive sum, but got {list(props)}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "proportions", props)
        object.__setattr__(self, "_breakpoints", _breakpoints(props))

    @classmethod
    def single(cls) -> StageSchema:
        """One stage named "task": linear progress over the episode (LeRobot's `single_stage`)."""
        return cls(names=("task",), proportions=(1.0,))

    @classmethod
    def from_proportions(cls, proportions: Mapping[str, float]) -> StageSchema:
        """From an ordered {name: proportion} dict (`temporal_proportions`, LeRobot's JSON file)."""
        return cls(names=tuple(proportions), proportions=tuple(proportions.values()))

    @property
    def num_stages(self) -> int:
        return len(self.names)

    @property
    def breakpoints(self) -> np.ndarray:
        """float64 (K+1,): P = [0, cumulative proportions], renormalised, P[-1] == 1.0 exactly."""
        return self._breakpoints

    def stage_and_tau(
        self, spans, num_frames: int, episode=None, *, frames=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(stage int64 (N,), tau float64 (N,)) for each frame, by the edge rules in the module docstring.

        Args:
            spans: the episode's spans (Span, (name, start, end) or dicts); ignored when K == 1.
            num_frames: frames in the episode (the single-stage ramp reaches 1 at num_frames - 1).
            episode: named in error messages.
            frames: frame indices to label (default `arange(num_frames)`); may lie beyond the episode.
        """
        k_all = self.num_stages
        f = np.arange(num_frames, dtype=np.int64) if frames is None else np.asarray(frames, np.int64)
        stage = np.zeros(f.shape, np.int64)
        tau = np.zeros(f.shape, np.float64)
        if k_all == 1:
            tau[:] = np.clip(f / max(num_frames - 1, 1), 0.0, 1.0)
            return stage, tau
        if spans is None:
            raise ValueError(
                f"no spans{_where(episode)} (None = unannotated) but the schema has {k_all} stages "
                f"{list(self.names)}; skip unannotated episodes, or pass [] for LeRobot's all-zero labels"
            )
        spans = _spans(spans, episode)
        if not spans:
            return stage, tau
        ids = self._ids(spans, episode)
        starts = np.array([s.start for s in spans], np.int64)
        ends = np.array([s.end for s in spans], np.int64)
        for j in reversed(range(len(spans) - 1)):  # gaps: the previous span, tau 1 (first pair wins)
            m = (ends[j] < f) & (f < starts[j + 1])
            stage[m], tau[m] = ids[j], 1.0
        for j in reversed(range(len(spans))):  # inside, inclusive ends (first span in order wins)
            m = (starts[j] <= f) & (f <= ends[j])
            duration = ends[j] - starts[j]
            stage[m] = ids[j]
            tau[m] = 1.0 if duration <= 0 else np.clip((f[m] - starts[j]) / duration, 0.0, 1.0)
        after = f > ends[-1]
        stage[after], tau[after] = k_all - 1, LAST_TAU
        before = f < starts[0]
        stage[before], tau[before] = 0, 0.0
        return stage, tau

    def _ids(self, spans: list[Span], episode) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.names)}
        unknown = [s for s in spans if s.name not in index]
        if unknown:
            raise ValueError(
                f"span {tuple(unknown[0])}{_where(episode)} names a stage that is not in the schema "
                f"{list(self.names)}; fix the annotation or rebuild the schema with this name"
            )
        return np.array([index[s.name] for s in spans], np.int64)

    def order_violation(self, spans, episode=None) -> tuple[Span, Span] | None:
        """The first pair of consecutive spans (sorted by start) whose stages do not increase, or None.

        Such a pair makes progress go back (or stall and restart): the later span names an earlier or the
        same stage. Always None for a single stage (spans are ignored there)."""
        if self.num_stages == 1 or not spans:
            return None
        spans = _spans(spans, episode)
        ids = self._ids(spans, episode)
        for j in range(len(spans) - 1):
            if ids[j + 1] <= ids[j]:
                return spans[j], spans[j + 1]
        return None

    def _raw_targets(self, spans, num_frames: int, episode, frames) -> np.ndarray:
        stage, tau = self.stage_and_tau(spans, num_frames, episode, frames=frames)
        y = stage + tau
        y[(stage >= self.num_stages - 1) & (tau >= 1.0)] = self.num_stages - 1 + LAST_TAU
        return y

    def targets(
        self,
        spans,
        num_frames: int,
        episode=None,
        *,
        frames=None,
        order: str = "error",
        mistakes: str = "ignore",
        mistake_spans=None,
        failures: str = "keep",
        outcome=None,
    ) -> np.ndarray:
        """float64 (N,) training targets y = stage + tau, capped at K - 1 + 0.999 (LeRobot).

        `order` ("error", "monotone", "allow"; module docstring) decides what spans that go back in the
        schema's stage order do: raise a ValueError naming the episode and stages, hold the running
        maximum of y, or keep the drop as written.

        `mistakes` ("ignore", "hold") and `failures` ("keep", "truncate", "exclude") are the label
        policies of `sarm.labels.mistakes` for the episode's `mistake_spans` (`Mistake`s, (kind, start,
        end) or dicts) and `outcome` ("success", "failure", "partial", True / False, None unknown):
        "hold" takes the mistake frames off the episode's clock (progress flat inside a mistake, resumes
        from there after it); "truncate" caps a non-successful episode at the start of its unfinished
        stage. "exclude" labels like "keep": leaving failed episodes out is the caller's choice
        (`prepare_training` does). With no mistake (or "ignore") and no unfinished outcome (or "keep")
        the targets are exactly those of `order` alone. Under the policies, `frames` outside the
        episode take the label of its first or last frame."""
        for name, value, allowed in (
            ("order", order, ORDERS),
            ("mistakes", mistakes, MISTAKE_POLICIES),
            ("failures", failures, FAILURE_POLICIES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} should be one of {list(allowed)}, but got {name}={value!r}")
        marks = validate_mistakes(mistake_spans, num_frames, episode) if mistakes == "hold" else []
        truncate = failures == "truncate" and coerce_outcome(outcome, episode) in UNFINISHED
        if not marks and not truncate:
            return self._ordered_targets(spans, num_frames, episode, frames, order)
        kept = kept_frames(marks, num_frames)
        n_kept = int(kept.sum())
        clock = None if spans is None else [Span(*s) for s in label_time_spans(_spans(spans, episode), kept)]
        y_kept = np.zeros(max(n_kept, 1), np.float64)  # every frame a mistake: held at 0 throughout
        if n_kept:
            y_kept = self._ordered_targets(clock, n_kept, episode, None, order)
        if truncate:
            y_kept = np.minimum(y_kept, self._unfinished_cap(clock, n_kept))
        at = np.maximum(np.cumsum(kept) - 1, 0)  # a mistake frame holds the last kept frame before it
        y = y_kept[at]
        f = np.arange(num_frames, dtype=np.int64) if frames is None else np.asarray(frames, np.int64)
        return y[np.clip(f, 0, num_frames - 1)]

    def _unfinished_cap(self, spans, num_frames: int) -> float:
        """The start of the unfinished stage of a failed episode (`failures="truncate"`): the stage of
        the span that ends last if it reaches the last frame, else the next stage; 0 for one stage."""
        k_all = self.num_stages
        if k_all == 1:
            return 0.0
        if not spans:
            return k_all - 1 + LAST_TAU
        last = max(spans, key=lambda s: s.end)
        k = int(self._ids([last], None)[0])
        if last.end >= num_frames - 1:
            return float(k)
        return float(k + 1) if k + 1 <= k_all - 1 else k_all - 1 + LAST_TAU

    def _ordered_targets(self, spans, num_frames: int, episode, frames, order: str) -> np.ndarray:
        bad = None if order == "allow" or spans is None else self.order_violation(spans, episode)
        if bad is None:
            return self._raw_targets(spans, num_frames, episode, frames)
        spans = _spans(spans, episode)
        f = np.arange(num_frames, dtype=np.int64) if frames is None else np.asarray(frames, np.int64)
        lo = min(0, min(s.start for s in spans), int(f.min(initial=0)))
        hi = max(num_frames - 1, max(s.end for s in spans), int(f.max(initial=0)))
        grid = np.arange(lo, hi + 1, dtype=np.int64)
        y_grid = self._raw_targets(spans, num_frames, episode, grid)
        if order == "monotone":
            return np.maximum.accumulate(y_grid)[f - lo]
        (prev, nxt), drop = bad, np.flatnonzero(np.diff(y_grid) < 0)
        where = ""
        if drop.size:
            i = int(drop[0])
            p0, p1 = self.progress(y_grid[i : i + 2]).tolist()
            where = f": progress would go back from {p0:.2f} to {p1:.2f} at frame {int(grid[i + 1])}"
        k0, k1 = self.names.index(prev.name), self.names.index(nxt.name)
        raise ValueError(
            f"span {tuple(nxt)}{_where(episode)} (stage {k1} {nxt.name!r}) follows {tuple(prev)} (stage {k0} "
            f"{prev.name!r}), against the stage order {list(self.names)}{where}. Fix the spans, map skills "
            "to canonical stages (sarm.labels.StageMap, `sarm train --stage-map`), or choose "
            "order='monotone' (hold the running maximum; `--order monotone`) or order='allow' (keep the "
            "drop on purpose)"
        )

    def progress(self, y):
        """Formula-2 progress in [0, 1] of targets y, in the input's type (array, float, tensor); LeRobot's
        `normalize_stage_tau` bit for bit, NaN stays NaN (`sarm.labels.normalise.progress`)."""
        return _progress(self._breakpoints, y)

    def targets_from_progress(self, p):
        """The inverse of `progress`: y with `progress(y) == p` (to ~1e-15), same type as p; p == 1 maps
        to y = K (`sarm.labels.normalise.targets_from_progress`)."""
        return _targets_from_progress(self._breakpoints, p)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "proportions": list(self.proportions)}

    @classmethod
    def from_dict(cls, d: Mapping) -> StageSchema:
        missing = [k for k in ("names", "proportions") if k not in d]
        if missing:
            raise ValueError(
                f"stage schema {dict(d)!r} lacks key(s) {missing}; expected "
                '{"names": [...], "proportions": [...]}'
            )
        return cls(names=tuple(d["names"]), proportions=tuple(d["proportions"]))


class TaskSchemas:
    """One StageSchema per task text, for one multi-task model; the key "*" is the default schema."""

    DEFAULT = "*"

    def __init__(self, schemas: Mapping[str, StageSchema | Mapping]):
        if not schemas:
            raise ValueError("TaskSchemas needs at least one schema; use TaskSchemas.single_schema(schema)")
        self._schemas: dict[str, StageSchema] = {}
        for task, schema in schemas.items():
            if not isinstance(task, str) or not task:
                raise ValueError(f"task keys must be non-empty strings (or '*'), but got {task!r}")
            if isinstance(schema, Mapping):
                schema = StageSchema.from_dict(schema)
            if not isinstance(schema, StageSchema):
                raise ValueError(
                    f"schema for task {task!r} should be a StageSchema or a dict, "
                    f"but got {type(schema).__name__}"
                )
            self._schemas[task] = schema

    @classmethod
    def single_schema(cls, schema: StageSchema) -> TaskSchemas:
        """The same schema for every task."""
        return cls({cls.DEFAULT: schema})

    def schema_for(self, task: str) -> StageSchema:
        if task in self._schemas:
            return self._schemas[task]
        if self.DEFAULT in self._schemas:
            return self._schemas[self.DEFAULT]
        raise ValueError(
            f"no stage schema for task {task!r}; known tasks: {list(self._schemas)}. Add one, or a "
            "default under the key '*'"
        )

    @property
    def max_stages(self) -> int:
        return max(s.num_stages for s in self._schemas.values())

    def __len__(self) -> int:
        return len(self._schemas)

    def __iter__(self) -> Iterator[str]:
        return iter(self._schemas)

    def __contains__(self, task) -> bool:
        return task in self._schemas

    def __eq__(self, other) -> bool:
        return isinstance(other, TaskSchemas) and self._schemas == other._schemas

    def __repr__(self) -> str:
        return f"TaskSchemas({self._schemas!r})"

    def items(self) -> Iterable[tuple[str, StageSchema]]:
        return self._schemas.items()

    def to_dict(self) -> dict[str, dict]:
        return {task: schema.to_dict() for task, schema in self._schemas.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping]) -> TaskSchemas:
        return cls({task: StageSchema.from_dict(v) for task, v in d.items()})
