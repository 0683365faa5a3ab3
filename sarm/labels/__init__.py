"""Labels for SARM: stage schemas and Formula-2 progress, temporal proportions, annotation readers.

`spans` (`Span`, checking an episode's spans, numbering repeats), `schema` (`StageSchema`,
`TaskSchemas`: y = k + tau targets and progress, the stage `order` policy), `normalise` (Formula 2:
y <-> progress), `mistakes` (mistake spans, outcomes, their label policies), `records` (their files),
`proportions` (Eq. 1), `annotations` (LeRobot columns, BEHAVIOR-1K JSON, plain spans),
`canonical` (raw skills -> a task's canonical stages: `StageMap`, ordinal stages) and `negatives`
(language negatives). See docs/labels.md.
"""

from sarm.labels.canonical import STAGE_MODES, CanonicalSpans, StageMap, canonical_spans
from sarm.labels.mistakes import FAILURE_POLICIES, MISTAKE_POLICIES, OUTCOMES, Mistake
from sarm.labels.proportions import temporal_proportions
from sarm.labels.schema import ORDERS, Span, StageSchema, TaskSchemas

__all__ = [
    "FAILURE_POLICIES",
    "MISTAKE_POLICIES",
    "ORDERS",
    "OUTCOMES",
    "STAGE_MODES",
    "CanonicalSpans",
    "Mistake",
    "Span",
    "StageMap",
    "StageSchema",
    "TaskSchemas",
    "canonical_spans",
    "temporal_proportions",
]
