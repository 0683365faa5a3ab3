"""Reading and writing LeRobot datasets (codebase v2.1 / v3.0) without `lerobot`.

    from sarm.data import open_dataset
    ds = open_dataset("path/or/hub-repo-id")

`dataset` (episodes, frames, tasks), `cameras` (its video files and decoding per episode), `layout`
(the on-disk layout of each version), `video` (PyAV decoding), `writer` (LeRobot v3.0 datasets with
SARM annotation columns; what it writes: `write_format`, its videos: `write_video`), `stats` (their
stats.json) and `edit` (set columns of an existing dataset's meta/episodes: atomic, backed up, refused
when stale).
"""

from sarm.data.dataset import DatasetError, LeRobotDataset, MissingVideoError, open_dataset
from sarm.data.layout import SUPPORTED_VERSIONS, VideoDecodeError

__all__ = [
    "SUPPORTED_VERSIONS",
    "DatasetError",
    "LeRobotDataset",
    "MissingVideoError",
    "VideoDecodeError",
    "open_dataset",
]
