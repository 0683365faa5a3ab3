"""Write the feature cache: `extract_features` decodes and encodes every planned frame once.

The layout, resume, sharding and locking rules are in `sarm.features.cache`'s docstring; the disk
work (temporary files, locks, size checks) is in `sarm.features.storage`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from sarm.features.cache import (
    _DTYPES,
    FORMAT,
    FORMAT_VERSION,
    FeatureCache,
    _episode_file,
    _episode_problem,
    parse_shard,
)
from sarm.features.encoders import Encoder
from sarm.features.storage import (
    atomic_save,
    atomic_text,
    cache_lock,
    check_out_dir,
    remove_orphans,
    try_lock,
    unlock,
)
from sarm.labels.negatives import NEGATIVE_TEXTS

__all__ = ["extract_features"]


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


def _manifest(dataset, encoder: Encoder, cameras: list[str], dtype: str, plan: np.ndarray) -> dict:
    positions = [dataset.episode_position(int(e)) for e in plan]
    starts = dataset.episode_starts[positions]
    index = dataset.index
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "encoder": encoder.describe(),
        "cameras": cameras,
        "dtype": dtype,
        "image_dim": encoder.image_dim,
        "text_dim": encoder.text_dim,
        "state_key": dataset.state_key,
        "state_dim": int(dataset.state_dim),
        "dataset": {
            "root": str(dataset.root),
            "fingerprint": dataset.fingerprint(),
            "codebase_version": dataset.version,
            "fps": float(dataset.fps),
        },
        "episodes": {
            "episode_index": plan.tolist(),
            "length": dataset.episode_lengths[positions].tolist(),
            "first_index": index[starts].tolist(),
            "task": [dataset.tasks[p] for p in positions],
        },
    }


def _check_same(path: Path, new: dict) -> None:
    old = json.loads(path.read_text())
    for key in ("encoder", "cameras", "dtype", "dataset", "episodes", "state_key"):
        if old.get(key) != new.get(key):
            raise ValueError(
                f"`{path.parent}` holds a feature cache made with another {key} "
                f"({str(old.get(key))[:200]} vs {str(new.get(key))[:200]}); use a new output directory "
                "(or delete this one) to build a cache with these settings"
            )


def _cameras(dataset, cameras: Sequence[str] | None, state_only: bool) -> list[str]:
    if state_only:
        if cameras:
            raise ValueError(f"state_only=True encodes no camera, but cameras={list(cameras)} were given")
        return []
    cameras = list(dataset.camera_keys if cameras is None else cameras)
    if not dataset.camera_keys:
        raise ValueError(
            f"`{dataset.root}` has no camera (no feature of dtype 'video' in meta/info.json); to build a "
            "cache of state and task text alone, choose it explicitly: state_only=True (--state-only)"
        )
    unknown = sorted(set(cameras) - set(dataset.camera_keys))
    if not cameras or unknown:
        raise ValueError(
            f"cameras should be some of the dataset's camera keys {dataset.camera_keys}, but got {cameras}"
        )
    return cameras


def _plan(dataset, episodes: Sequence[int] | None) -> np.ndarray:
    if episodes is None:
        return np.asarray(dataset.episodes, dtype=np.int64)
    plan = np.unique(np.asarray(episodes, dtype=np.int64).reshape(-1))
    if not plan.size:
        raise ValueError("episodes is empty; pass at least one episode index (or None for all)")
    unknown = np.setdiff1d(plan, dataset.episodes)
    if unknown.size:
        raise ValueError(
            f"episodes {unknown.tolist()[:20]} are not in `{dataset.root}`, which holds episode_index "
            f"{int(dataset.episodes.min(initial=0))}..{int(dataset.episodes.max(initial=-1))} "
            f"({dataset.num_episodes} episodes)"
        )
    return plan


def _without_missing_videos(dataset, cameras: list[str], plan: np.ndarray, mode: str) -> np.ndarray:
    """The plan less the episodes without a video file; raises unless mode is "skip" and some remain."""
    if not cameras:
        return plan
    missing = np.unique(np.concatenate([np.asarray(dataset.missing_videos(c), np.int64) for c in cameras]))
    missing = np.intersect1d(missing, plan)
    if not missing.size:
        return plan
    from sarm.data import MissingVideoError

    report = "; ".join(dataset.missing_report(c) for c in cameras if dataset.missing_videos(c).size)
    if missing.size == plan.size:
        raise MissingVideoError(
            f"all {plan.size} planned episode(s) have no video for cameras {cameras}, so nothing would be "
            f"encoded ({missing.size} {'skipped' if mode == 'skip' else 'missing'}); {report}. Restore the "
            "files, or to use state and task text alone pass state_only=True (--state-only)"
        )
    if mode == "error":
        raise MissingVideoError(
            f"{missing.size} planned episode(s) have no video for cameras {cameras}: {missing.tolist()}; "
            f"{report}; restore the files, or skip those episodes with missing_videos='skip' "
            "(--missing-videos skip)"
        )
    warnings.warn(
        f"skipping {missing.size} episode(s) without video for cameras {cameras}: {missing.tolist()}",
        stacklevel=3,
    )
    return np.setdiff1d(plan, missing)


def _write_shared(root: Path, manifest: dict, texts: list[str], encoder: Encoder) -> None:
    """The manifest and the text features, written once under the cache-wide lock."""
    with cache_lock(root):
        for name in ("manifest.json.", "texts."):
            remove_orphans(root, name)  # left by a killed run: the lock says nobody is writing them
        path = root / "manifest.json"
        if path.is_file():
            _check_same(path, manifest)
        else:
            atomic_text(path, json.dumps(manifest, indent=1) + "\n")
        if not (root / "texts.npy").is_file():
            atomic_text(root / "texts.json", json.dumps(texts, indent=1) + "\n")
            atomic_save(root / "texts.npy", encoder.encode_texts(texts).numpy().astype(np.float32))


def _remove_orphans(root: Path, manifest: dict, lengths: dict, episodes: list[int]) -> None:
    """Delete temporary files of `episodes` left by killed runs (those whose episode lock is free)."""
    with os.scandir(root / "episodes") as entries:
        tmp = [e.name for e in entries if e.name.startswith(".episode_") and e.name.endswith(".tmp")]
    named = {name.split(".")[1] for name in tmp}
    for episode in episodes:
        if f"episode_{episode:06d}" in named:
            lock = root / "episodes" / f"episode_{episode:06d}.lock"
            fd, _ = try_lock(lock)
            if fd is not None:  # else another run holds the lock and is writing them right now
                remove_orphans(root / "episodes", f"episode_{episode:06d}.")
                done = _episode_problem(root, manifest, lengths[episode], episode) is None
                unlock(fd, lock, remove=done)


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
    if dtype not in _DTYPES:
        raise ValueError(f"dtype should be one of {list(_DTYPES)}, but got dtype={dtype!r}")
    if missing_videos not in ("error", "skip"):
        raise ValueError(f"missing_videos should be 'error' or 'skip', but got {missing_videos!r}")
    cameras = _cameras(dataset, cameras, state_only)
    plan = _plan(dataset, episodes)
    plan = _without_missing_videos(dataset, cameras, plan, missing_videos)
    rank, world = parse_shard(shard)
    root = Path(out_dir)
    check_out_dir(root)  # before any decoding or encoding
    manifest = _manifest(dataset, encoder, cameras, dtype, plan)
    _write_shared(root, manifest, list(dict.fromkeys([*dataset.task_texts, *NEGATIVE_TEXTS])), encoder)

    lengths = dict(zip(manifest["episodes"]["episode_index"], manifest["episodes"]["length"], strict=True))
    mine = [int(e) for e in plan[rank::world]]
    _remove_orphans(root, manifest, lengths, mine)
    todo = []
    for e in mine:
        if not _episode_file(root, e, "images").is_file():
            todo.append(e)
        elif (problem := _episode_problem(root, manifest, lengths[e], e)) is not None:
            warnings.warn(f"episode {e}: {problem}; encoding it again", stacklevel=2)
            todo.append(e)
    bar = tqdm(
        total=sum(lengths[e] for e in todo),
        unit="frame",
        disable=not progress,
        desc=f"features {rank}/{world}" if world > 1 else "features",
    )
    skipped: dict[int, str] = {}
    held: dict[int, str] = {}
    try:
        for episode in todo:
            lock = root / "episodes" / f"episode_{episode:06d}.lock"
            fd, holder = try_lock(lock)
            if fd is None:
                held[episode] = holder
                continue
            finished = False
            try:
                if _episode_problem(root, manifest, lengths[episode], episode) is None:
                    finished = True  # another run finished it since we looked
                    continue
                reason = _encode_episode(
                    dataset, encoder, root, episode, lengths[episode], cameras, dtype, bar
                )
                if reason is not None and missing_videos == "error":
                    raise reason
                if reason is not None:
                    skipped[episode] = str(reason)
                finished = reason is None
            finally:
                unlock(fd, lock, remove=finished)
    finally:
        bar.close()  # an error then starts on a line of its own
    _report(skipped, held)
    cache = FeatureCache(root, damaged="missing")
    if not len(cache.episodes) and skipped and not held:
        raise _all_skipped(skipped)
    cache.skipped, cache.held = skipped, held
    return cache


def _encode_episode(dataset, encoder, root, episode, length, cameras, dtype, bar) -> Exception | None:
    """Encode and write one episode; returns (does not raise) the error of a video that cannot be decoded."""
    from sarm.data import VideoDecodeError

    state = np.asarray(dataset.state(episodes=[episode]), dtype=np.float32)
    images = np.empty((length, len(cameras), encoder.image_dim), dtype=dtype)
    for c, camera in enumerate(cameras):
        filled = np.zeros(length, bool)
        try:
            for frames, pixels in _prefetch(dataset.decode(camera, episode)):
                images[frames, c] = encoder.encode_images(pixels).numpy().astype(dtype)
                filled[frames] = True
                bar.update(len(frames) / len(cameras))
        except VideoDecodeError as error:
            return error
        if not filled.all():
            raise RuntimeError(
                f"decoding camera {camera!r} of episode {episode} gave {filled.sum()} of "
                f"{filled.size} frames; the video is shorter than the episode's data"
            )
    if not cameras:
        bar.update(length)
    atomic_save(_episode_file(root, episode, "state"), state)
    atomic_save(_episode_file(root, episode, "images"), images)  # last: marks the episode done
    return None


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
