"""Stage-Aware Reward Models (SARM, arXiv 2509.25358).

Labels, the model, rewind augmentation, training and Hub I/O, all on precomputed features.
"""

from sarm.config import SARMConfig
from sarm.labels import Span, StageSchema, TaskSchemas
from sarm.model import SARM, HeadOutput, Prediction
from sarm.proportions import temporal_proportions
from sarm.rewind import RewindCollate
from sarm.windows import WindowDataset

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
