"""The camera videos of a LeRobot v3.0 dataset being written: one open mp4 per camera, episodes appended.

`VideoFiles` encodes each episode's frames into the camera's open file (pts counts frames in the file,
so an episode starts at its `from_timestamp`) and closes the file once it has reached its size limit,
between episodes; `codec` picks libx264 where PyAV has it, else mpeg4. Used by `sarm.data.writer`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sarm.data.video import V30_VIDEO
from sarm.data.write_format import next_file, size_mb

__all__ = ["VideoFiles", "codec"]


def codec() -> tuple[str, dict[str, str], str]:
    """(codec, default options, the name info.json records): libx264 where PyAV has it, else mpeg4."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("writing camera videos needs PyAV; install it with `pip install av`") from e
    if "libx264" in av.codecs_available:
        return "libx264", {"g": "2", "crf": "23"}, "h264"
    return "mpeg4", {"g": "2", "qscale": "2"}, "mpeg4"


class VideoFiles:
    """One camera's `videos/{camera}/chunk-XXX/file-YYY.mp4` files, written episode by episode.

    Args:
        root: the dataset folder.
        key: the camera's feature key.
        size: (height, width) of its frames.
        codec, options: PyAV codec name and options (`codec()`, plus the writer's `video_options`).
        fps: frames per second.
        limit_mb: size at which a file is closed (before the next episode, never inside one).
    """

    def __init__(
        self,
        root: Path,
        key: str,
        size: tuple[int, int],
        *,
        codec: str,
        options: dict[str, str],
        fps: int,
        limit_mb: float,
    ) -> None:
        self.root, self.key, self.size = root, key, size
        self.codec, self.options, self.fps, self.limit_mb = codec, options, fps, limit_mb
        self.template = V30_VIDEO.replace("{video_key}", key)
        self.at, self.container, self.stream, self.frames = (0, 0), None, None, 0

    def _path(self) -> Path:
        return self.root / self.template.format(chunk_index=self.at[0], file_index=self.at[1])

    def add(self, frames: np.ndarray) -> dict[str, Any]:
        """Encode one episode's uint8 `(T, H, W, 3)` RGB frames; returns its meta/episodes video columns."""
        import av

        if self.container is not None and size_mb(self._path()) >= self.limit_mb:
            self.finish()
            self.at, self.frames = next_file(self.at), 0
        if self.container is None:
            path = self._path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(path), "w")
            self.stream = self.container.add_stream(self.codec, rate=self.fps, options=dict(self.options))
            self.stream.height, self.stream.width = self.size
            self.stream.pix_fmt = "yuv420p"
        start, base = self.frames, Fraction(1, self.fps)
        for image in frames:  # pts counts frames in the file, so episode k starts at from_timestamp
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = self.frames, base
            self.container.mux(self.stream.encode(frame))
            self.frames += 1
        return {
            f"videos/{self.key}/chunk_index": self.at[0],
            f"videos/{self.key}/file_index": self.at[1],
            f"videos/{self.key}/from_timestamp": start / self.fps,
            f"videos/{self.key}/to_timestamp": self.frames / self.fps,
        }

    def finish(self) -> None:
        """Flush the encoder's delayed frames and close the open file, if any."""
        if self.container is None:
            return
        self.container.mux(self.stream.encode(None))
        self.container.close()
        self.container = None
