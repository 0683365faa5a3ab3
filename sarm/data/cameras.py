"""The cameras of a LeRobot dataset: video paths, missing and damaged files, decoding one episode's frames.

`CameraVideos` is the base class of `sarm.data.dataset.LeRobotDataset` and holds its camera methods; it
reads what `LeRobotDataset.__init__` sets (annotated below) and uses its `episode_position`,
`frames_of`, `column` and `timestamps`, so build datasets with `open_dataset`.
Decoding itself (PyAV, one seek, each frame once) is `sarm.data.video`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sarm.data.layout import DatasetError, MissingVideoError, VideoDecodeError, listing
from sarm.data.video import FrameNotFoundError, decode_at, other_video_folders, probe_video

__all__ = ["CameraVideos"]


class CameraVideos:
    """The camera methods of `LeRobotDataset`; `camera` is a canonical camera key or the dataset's name."""

    root: Path
    videos_dir: Path | None
    tolerance_s: float
    episodes: np.ndarray
    episode_lengths: np.ndarray
    num_episodes: int
    camera_keys: list[str]
    _cameras: dict[str, tuple[str, str]]  # {canonical key: (the dataset's name, "video" or "image")}
    _videos: dict[str, tuple[list[Path], np.ndarray, np.ndarray]]  # {camera: (paths, offsets, missing)}
    _missing_mode: str

    def _video(self, camera: str) -> tuple[list[Path], np.ndarray, np.ndarray]:
        if camera not in self._cameras:
            raw = [c for c, (r, _) in self._cameras.items() if r == camera]
            if not raw:
                raise DatasetError(f"camera {camera!r} not in `{self.root}`; cameras: {self.camera_keys}")
            camera = raw[0]
        if self._cameras[camera][1] != "video":
            raise NotImplementedError(
                f"camera {camera!r} is stored as images (dtype 'image'); sarm.data decodes only dtype "
                "'video' cameras. Encode the images to videos with LeRobot, or read them with table()"
            )
        return self._videos[camera]

    def video_path(self, camera: str, episode_index: int) -> Path:
        """The episode's video file (where it should be, if it is missing)."""
        return self._video(camera)[0][self.episode_position(episode_index)]

    def missing_videos(self, camera: str) -> np.ndarray:
        """Episodes whose video file for `camera` is not on disk (checked when the dataset was opened)."""
        return self.episodes[self._video(camera)[2]]

    def video_episodes(self, camera: str) -> np.ndarray:
        """Episodes that can be decoded. With missing_videos="error", a missing file raises here, up front."""
        missing = self._video(camera)[2]
        if missing.any() and self._missing_mode == "error":
            raise self._missing_error(camera)
        return self.episodes[~missing]

    def missing_report(self, camera: str) -> str:
        """Which episodes of `camera` lack a video, the path looked for, and any other folder with videos."""
        paths, _, missing = self._video(camera)
        if not missing.any():
            return f"camera {camera!r}: no video file is missing"
        expected = self.videos_dir or self.root / "videos"
        text = (
            f"{camera}: {listing(self.episodes[missing])} ({int(missing.sum())} of {self.num_episodes} "
            f"episodes have no video file; looked for `{paths[int(np.argmax(missing))]}`)"
        )
        for folder, count in other_video_folders(self.root, expected):
            text += (
                f"; `{folder}` holds {count} .mp4 file(s) but videos are read from `{expected}`: if "
                f"those are the videos, pass videos_dir='{folder}' to open_dataset (--videos-dir on the "
                "command line)"
            )
        return text

    def _missing_error(self, camera: str) -> MissingVideoError:
        return MissingVideoError(
            f'{self.missing_report(camera)}; restore the files, or pass missing_videos="skip" to '
            "open_dataset to leave those episodes out"
        )

    def probe_videos(self, camera: str) -> dict[int, str]:
        """{episode: what is wrong} for the episodes whose video file is on disk but does not decode.

        Each file is opened and its first frame decoded once (a file shared by episodes, once for all);
        a file cut off after its first frame is only found when `decode` reaches the cut.
        """
        paths, _, missing = self._video(camera)
        verdicts: dict[Path, str | None] = {}
        out = {}
        for p, episode in enumerate(self.episodes.tolist()):
            if missing[p]:
                continue
            if paths[p] not in verdicts:
                verdicts[paths[p]] = probe_video(paths[p])
            if verdicts[paths[p]] is not None:
                out[int(episode)] = f"`{paths[p]}` {verdicts[paths[p]]}"
        return out

    def decode(
        self, camera: str, episode_index: int, frames: Any = None, *, chunk: int = 64
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Decode frames of one episode: yields `(positions, images)`, int64 `(n,)`, uint8 `(n, H, W, 3)` RGB.

        `frames` are episode-local frame numbers (default all, `0..T-1`); they are sorted and made
        unique, and come back in increasing order, at most `chunk` per yield. The video is opened once,
        sought once and decoded forward; frame k is the decoded frame nearest to the episode's
        `timestamp[k]` (+ `from_timestamp` in v3.0). Checks (camera, episode, missing file) happen here,
        before the first frame is decoded; a frame without a decoded frame within `tolerance_s` raises
        DatasetError naming camera, episode, frame and the nearest time found.
        """
        paths, offsets, missing = self._video(camera)
        p = self.episode_position(episode_index)
        length = int(self.episode_lengths[p])
        local = np.arange(length) if frames is None else np.unique(np.asarray(frames, dtype=np.int64))
        if local.size and (local[0] < 0 or local[-1] >= length):
            raise ValueError(
                f"frames should lie in 0..{length - 1} for episode {episode_index}, but got {listing(local)}"
            )
        if missing[p]:
            raise self._missing_error(camera)
        if "timestamps" in self.__dict__:  # already read for all frames
            times = self.timestamps[self.frames_of(episode_index)]
        else:  # only this episode's file: decoding never loads N timestamps
            times = self.column("timestamp", [episode_index]).astype(np.float64)
        wanted = times[local] + offsets[p]
        return self._decode(camera, int(episode_index), paths[p], local, wanted, chunk)

    def _decode(self, camera, episode, path, local, wanted, chunk) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        try:
            for idx, images in decode_at(path, wanted, tolerance_s=self.tolerance_s, chunk=chunk):
                yield local[idx], images
        except FrameNotFoundError as e:
            found = (
                "no frame was decoded"
                if e.nearest is None
                else f"the nearest decoded frame is at {e.nearest:.4f} s"
            )
            raise VideoDecodeError(
                f"camera {camera!r}, episode {episode}: frame {int(local[e.position])} should be shown at "
                f"{e.expected:.4f} s in `{path}`, but {found} (tolerance_s={self.tolerance_s:.4g}); the "
                "video may be shorter than the episode or drop frames. Re-encode it, raise tolerance_s in "
                "open_dataset, or skip such episodes (--missing-videos skip)"
            ) from None
        except Exception as e:
            if not type(e).__module__.startswith("av"):  # PyAV's errors: av.error.InvalidDataError, ...
                raise
            raise VideoDecodeError(
                f"camera {camera!r}, episode {episode}: the video file `{path}` cannot be decoded "
                f"({type(e).__name__}: {e}); it is damaged (empty, truncated or not a video). Restore it, "
                "or skip such episodes (extract_features(..., missing_videos='skip'), --missing-videos skip)"
            ) from None
