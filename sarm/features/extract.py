"""Write the feature cache: `extract_features` decodes and encodes every planned frame once.

The layout, resume, sharding and locking rules are in `sarm.features.cache`'s docstring; the disk
work (temporary files, locks, size checks) is in `sarm.features.storage`.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from sarm.features.cache import FeatureCache, parse_shard
from sarm.features.encoders import Encoder
from sarm.features.plan import Extraction, episode_done, plan_extraction, write_episode
from sarm.features.storage import try_lock, unlock

__all__ = ["extract_features", "finish_extraction"]


def _prefetch(chunks: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run a generator in a background thread (video decoding overlaps encoding), `depth` items ahead."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in chunks:
                out.put(item)
        except BaseException as error:  # re-raised in the consumer
            out.put(error)
        out.put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while (item := out.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def finish_extraction(job: Extraction, skipped: dict[int, str], held: dict[int, str]) -> FeatureCache:
    """Report skipped / held episodes and open the cache (raises when every episode was skipped)."""
    _report(skipped, held)
    cache = FeatureCache(job.root, damaged="missing")
    if not len(cache.episodes) and skipped and not held:
        raise _all_skipped(skipped)
    cache.skipped, cache.held = skipped, held
    return cache


def extract_features(
    dataset,
    encoder: Encoder,
    out_dir: str | Path,
    *,
    cameras: Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
    dtype: str = "float16",
    shard: str | Sequence[int] | None = (0, 1),
    missing_videos: str = "error",
    state_only: bool = False,
    progress: bool = True,
) -> FeatureCache:
    """Decode and encode every frame of the chosen episodes and cameras once; write the cache.

    Args:
        dataset: a `sarm.data.LeRobotDataset` (`open_dataset(...)`).
        encoder: a `sarm.features.encoders.Encoder` (`load_encoder(...)`).
        out_dir: the cache directory (created; an existing cache with the same settings is resumed).
            Checked (a directory, writable) before any decoding or encoding.
        cameras: camera keys to encode (default: all of the dataset's).
        episodes: episode indices to plan (default: all); each must be in the dataset.
        dtype: "float16" (half the disk, the default) or "float32" for image features.
        shard: (i, n) or "i/n": encode every n-th planned episode starting at i; None takes the rank
            and world size from torchrun's environment.
        missing_videos: "error" raises listing every planned episode without a video for a chosen
            camera, and on the first video that cannot be decoded; "skip" leaves episodes without a video
            out of the plan (a warning names them) and skips episodes whose video cannot be decoded (a
            warning names episode, file and reason; `cache.skipped` maps them to it). When every episode
            would be skipped, it raises instead, saying why.
        state_only: encode no camera: image features of shape `(T, 0, E)`, `cameras == []`, state and
            task texts as usual. Must be chosen explicitly; a dataset without cameras raises otherwise.
        progress: show a tqdm bar.

    Returns the `FeatureCache` (this shard's episodes are finished; others may still be running), with
    `skipped` ({episode: reason} for the episodes this call skipped) and `held` ({episode: holder} for
    the episodes another run was encoding, left to it).
    """
    job = plan_extraction(
        dataset,
        encoder,
        out_dir,
        cameras=cameras,
        episodes=episodes,
        dtype=dtype,
        shard=shard,
        missing_videos=missing_videos,
        state_only=state_only,
    )
    rank, world = parse_shard(shard)
    bar = tqdm(
        total=sum(job.lengths[e] for e in job.todo),
        unit="frame",
        disable=not progress,
        desc=f"features {rank}/{world}" if world > 1 else "features",
    )
    skipped: dict[int, str] = {}
    held: dict[int, str] = {}
    try:
        for episode in job.todo:
            lock = job.root / "episodes" / f"episode_{episode:06d}.lock"
            fd, holder = try_lock(lock)
            if fd is None:
                held[episode] = holder
                continue
            finished = False
            try:
                if episode_done(job, episode):
                    finished = True  # another run finished it since we looked
                    continue
                reason = _encode_episode(dataset, encoder, job, episode, bar)
                if reason is not None and missing_videos == "error":
                    raise reason
                if reason is not None:
                    skipped[episode] = str(reason)
                finished = reason is None
            finally:
                unlock(fd, lock, remove=finished)
    finally:
        bar.close()  # an error then starts on a line of its own
    return finish_extraction(job, skipped, held)


def _encode_episode(dataset, encoder, job: Extraction, episode: int, bar) -> Exception | None:
    """Encode and write one episode; returns (does not raise) the error of a video that cannot be decoded."""
    from sarm.data import VideoDecodeError

    length = job.lengths[episode]
    state = np.asarray(dataset.state(episodes=[episode]), dtype=np.float32)
    images = np.empty((length, len(job.cameras), encoder.image_dim), dtype=job.dtype)
    for c, camera in enumerate(job.cameras):
        filled = np.zeros(length, bool)
        try:
            for frames, pixels in _prefetch(dataset.decode(camera, episode)):
                images[frames, c] = encoder.encode_images(pixels).numpy().astype(job.dtype)
                filled[frames] = True
                bar.update(len(frames) / len(job.cameras))
        except VideoDecodeError as error:
            return error
        if not filled.all():
            raise short_video(camera, episode, int(filled.sum()), length)
    if not job.cameras:
        bar.update(length)
    write_episode(job, episode, state, images)
    return None


def short_video(camera: str, episode: int, got: int, length: int) -> RuntimeError:
    return RuntimeError(
        f"decoding camera {camera!r} of episode {episode} gave {got} of {length} frames; the video is "
        "shorter than the episode's data"
    )


def _report(skipped: dict[int, str], held: dict[int, str]) -> None:
    if skipped:
        shown = "; ".join(f"episode {e}: {r}" for e, r in list(skipped.items())[:5])
        warnings.warn(
            f"skipped {len(skipped)} episode(s) whose video cannot be decoded: {sorted(skipped)} ({shown})",
            stacklevel=3,
        )
    if held:
        holders = sorted(set(held.values()))
        warnings.warn(
            f"left {len(held)} episode(s) {sorted(held)[:20]} to another run that is encoding them "
            f"({'; '.join(holders[:3])}); run again once it is done to check the cache is complete",
            stacklevel=3,
        )


def _all_skipped(skipped: dict[int, str]) -> Exception:
    from sarm.data import VideoDecodeError

    first = next(iter(skipped.values()))
    return VideoDecodeError(
        f"all {len(skipped)} episode(s) to encode were skipped because their video cannot be decoded, so "
        f"the cache has no episode (first: {first}); restore the video files"
    )
