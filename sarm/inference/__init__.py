"""Progress on every frame of a dataset, from a trained model and a feature cache, in LeRobot's schema."""

from sarm.inference.progress import compute_progress, merge_progress

__all__ = ["compute_progress", "merge_progress"]
