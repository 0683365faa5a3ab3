"""Labels for SARM: stage schemas and Formula-2 progress, temporal proportions, annotation readers.

`schema` (`Span`, `StageSchema`, `TaskSchemas`: y = k + tau targets and progress), `proportions` (Eq. 1),
`annotations` (LeRobot columns, BEHAVIOR-1K JSON, plain spans) and `negatives` (language negatives).
"""

from sarm.labels.proportions import temporal_proportions
from sarm.labels.schema import Span, StageSchema, TaskSchemas

__all__ = ["Span", "StageSchema", "TaskSchemas", "temporal_proportions"]
