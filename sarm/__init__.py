"""Stage-Aware Reward Models (SARM, arXiv 2509.25358).

The package follows the data flow: `data` (LeRobot datasets) and `labels` (stage schemas, annotations)
-> `features` (per-frame feature cache) -> `model` + `training` -> `inference` (progress on every frame),
with `viz`, the `sarm` command and `demo` on top.
"""

from sarm.labels import Span, StageSchema, TaskSchemas, temporal_proportions
from sarm.model import SARM, HeadOutput, Prediction, SARMConfig
from sarm.training import RewindCollate, WindowDataset

__all__ = [
    "SARM",
    "HeadOutput",
    "Prediction",
    "RewindCollate",
    "SARMConfig",
    "Span",
    "StageSchema",
    "TaskSchemas",
    "WindowDataset",
    "temporal_proportions",
]
