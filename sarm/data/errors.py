"""The errors of the dataset layer: each message names the file and the fix."""

from __future__ import annotations

__all__ = ["DatasetError", "MissingVideoError", "VideoDecodeError"]


class DatasetError(ValueError):
    """The dataset on disk is not what `sarm.data` can read; the message names the file and the fix."""


class MissingVideoError(DatasetError, FileNotFoundError):
    """A video file that an episode needs is not on disk."""


class VideoDecodeError(DatasetError):
    """A video file is on disk but cannot be decoded (empty, not a video, truncated, too short)."""
