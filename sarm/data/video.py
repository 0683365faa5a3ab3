"""Find LeRobot video files, and decode the frames shown at given timestamps with PyAV, each frame once.

    for positions, images in decode_at("episode_000001.mp4", timestamps, tolerance_s=1 / 60):
        ...  # positions int64 (n,) into `timestamps`, images uint8 (n, H, W, 3) RGB

One call opens the container once, seeks once (backward, to the keyframe before the first timestamp)
and decodes forward, stopping after the last wanted frame. Each wanted timestamp is matched to the
decoded frame whose presentation time (`pts * time_base`, seconds from the start of the file, as
LeRobot compares them) is closest. Frames are never re-sought per timestamp, so a sorted subset costs
at most one pass over the span it covers. `av` is imported here, lazily, so that `sarm.data` imports
without it; install it with `pip install 'sarm-rabc[video]'`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "V21_VIDEO",
    "V30_VIDEO",
    "FrameNotFoundError",
    "decode_at",
    "locate_videos",
    "other_video_folders",
    "probe_video",
]

V21_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"  # one per episode
V30_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"  # shared by episodes


class FrameNotFoundError(ValueError):
    """No decoded frame lies within the tolerance of a wanted timestamp.

    Attributes: `position` (into the timestamps passed to `decode_at`), `expected` and `nearest` (seconds;
    `nearest` is None when the video yielded no frame at all).
    """

    def __init__(self, position: int, expected: float, nearest: float | None, tolerance_s: float) -> None:
        self.position, self.expected, self.nearest, self.tolerance_s = (
            position,
            expected,
            nearest,
            tolerance_s,
        )
        found = "no frame was decoded" if nearest is None else f"the nearest frame is at {nearest:.6f} s"
        super().__init__(f"no frame within {tolerance_s:.6f} s of {expected:.6f} s; {found}")


def locate_videos(
    root: Path,
    key: str,
    episodes: Any,
    *,
    template: str,
    chunks_size: int,
    shared: dict | None = None,
    videos_dir: Path | None = None,
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Per episode: its video file, its start in that file (s) and whether the file is missing.

    `shared` is v3.0's {episode: (chunk_index, file_index, from_timestamp)}; None means v2.x, one file
    per episode. Tried in order, first existing wins (when none exists the first is reported):
    `template` (info.json's video_path), then the dataset's own layout, then the other one, i.e. a
    file per episode `V21_VIDEO` (start 0) or a shared file `V30_VIDEO` (for v2.x, file = episode).
    `videos_dir` replaces the `videos/` folder these paths start with (videos kept elsewhere).
    """
    exists: dict[Path, bool] = {}
    episodes = np.asarray(episodes).tolist()
    paths, offsets, missing = [], np.zeros(len(episodes)), np.zeros(len(episodes), bool)
    for p, ep in enumerate(episodes):
        fields = {"episode_chunk": ep // chunks_size, "episode_index": ep, "video_key": key}
        chunk, file, start = (shared or {}).get(ep, (ep // chunks_size, ep, 0.0))
        in_file = {**fields, "chunk_index": chunk, "file_index": file}
        per_episode, one_file = (V21_VIDEO, fields, 0.0), (V30_VIDEO, in_file, start)
        layouts = [
            (template, in_file, start),
            *((one_file, per_episode) if shared else (per_episode, one_file)),
        ]
        options = [(_place(root, t.format(**f), videos_dir), s) for t, f, s in layouts]
        for path, _ in options:
            if path not in exists:
                exists[path] = path.is_file()
        found = next((o for o in options if exists[o[0]]), None)
        paths.append((found or options[0])[0])
        offsets[p], missing[p] = (found[1], False) if found else (0.0, True)
    return paths, offsets, missing


def _place(root: Path, relative: str, videos_dir: Path | None) -> Path:
    """`root / relative`, or with `videos_dir` in place of the leading `videos/` folder."""
    head, _, rest = relative.partition("/")
    if videos_dir is not None and head == "videos" and rest:
        return Path(videos_dir) / rest
    return Path(root) / relative


def other_video_folders(root: Path, expected: Path) -> list[tuple[Path, int]]:
    """Folders beside `expected` (the videos folder looked in) that hold .mp4 files, with their counts.

    A dataset copied with its videos in `video/` instead of `videos/` (or the like) shows up here, so
    that a missing-video error can point at the folder that holds them.
    """
    found = []
    parents = dict.fromkeys([Path(root), Path(expected).parent])
    for parent in parents:
        if not parent.is_dir():
            continue
        for child in sorted(parent.iterdir()):
            if child == Path(expected) or child.name in ("meta", "data") or not child.is_dir():
                continue
            count = sum(1 for _ in child.rglob("*.mp4"))
            if count:
                found.append((child, count))
    return found


def probe_video(path: str | Path) -> str | None:
    """None when the file opens and its first video frame decodes; else what went wrong, in words.

    Cheap (one frame), so it finds empty, random or header-truncated files, not a file cut off later.
    """
    try:
        if Path(path).stat().st_size == 0:
            return "the file is empty (0 bytes)"
        container = _open(str(path))
    except ImportError:
        raise
    except Exception as e:  # PyAV raises av.error.* (ValueError / OSError subclasses)
        return f"cannot be opened ({type(e).__name__}: {e})"
    try:
        if not container.streams.video:
            return "holds no video stream"
        for _ in container.decode(container.streams.video[0]):
            return None
        return "holds no decodable video frame"
    except Exception as e:
        return f"cannot be decoded ({type(e).__name__}: {e})"
    finally:
        container.close()


def _open(path: str) -> Any:
    """`av.open`, kept apart so tests can wrap the container and count seeks and decoded frames."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "decoding videos needs PyAV; install it with `pip install av` "
            "(or `pip install 'sarm-rabc[video]'`)"
        ) from e
    return av.open(path)


def decode_at(
    path: str | Path, timestamps: Any, *, tolerance_s: float, chunk: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield `(positions, images)` chunks for the frames shown at `timestamps` (seconds, sorted ascending).

    Args:
        path: the video file.
        timestamps: float `(n,)`, non-decreasing, in seconds from the start of the file.
        tolerance_s: largest allowed gap between a timestamp and the frame matched to it.
        chunk: at most this many frames per yielded chunk.

    Yields:
        `positions` int64 `(m,)` indices into `timestamps`, in increasing order, and `images` uint8
        `(m, H, W, 3)` RGB; the chunks together cover every position exactly once.

    Raises:
        FrameNotFoundError: a timestamp has no decoded frame within `tolerance_s`.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk <= 0:
        raise ValueError(f"chunk should be a positive integer value, but got chunk={chunk!r}")
    wanted = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if wanted.size == 0:
        return
    if np.any(np.diff(wanted) < 0):
        raise ValueError("timestamps should be sorted in non-decreasing order")
    container = _open(str(path))
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base)
        first = max(float(wanted[0]) - tolerance_s, 0.0)
        container.seek(int(first / time_base), stream=stream, backward=True, any_frame=False)
        positions: list[int] = []
        images: list[np.ndarray] = []
        i, n = 0, wanted.size
        prev: tuple[float, Any, list] | None = None  # (time, frame, [converted image or nothing])

        def take(candidate: tuple[float, Any, list]) -> None:
            time, frame, cache = candidate
            if abs(time - wanted[i]) > tolerance_s:
                raise FrameNotFoundError(i, float(wanted[i]), time, tolerance_s)
            if not cache:  # a frame matched to two equal timestamps is converted once
                cache.append(frame.to_ndarray(format="rgb24"))
            positions.append(i)
            images.append(cache[0])

        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            current = (frame.pts * time_base, frame, [])
            while i < n and wanted[i] <= current[0]:
                closer_prev = prev is not None and abs(prev[0] - wanted[i]) <= abs(current[0] - wanted[i])
                take(prev if closer_prev else current)
                i += 1
                if len(images) == chunk:
                    yield np.asarray(positions, dtype=np.int64), np.stack(images)
                    positions, images = [], []
            if i == n:
                break
            prev = current
        while i < n:  # timestamps after the last decoded frame
            if prev is None:
                raise FrameNotFoundError(i, float(wanted[i]), None, tolerance_s)
            take(prev)
            i += 1
            if len(images) == chunk:
                yield np.asarray(positions, dtype=np.int64), np.stack(images)
                positions, images = [], []
        if images:
            yield np.asarray(positions, dtype=np.int64), np.stack(images)
    finally:
        container.close()
