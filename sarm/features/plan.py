"""Plan a feature cache: check the arguments, write the manifest and text features once, list the
episodes still to encode. Decodes no video; the local loop (`sarm.features.extract`) and the Ray engine
(`sarm.scale`) both start from `plan_extraction`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sarm.features.cache import _DTYPES, FORMAT, FORMAT_VERSION, _episode_file, _episode_problem, parse_shard
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

__all__ = ["Extraction", "episode_done", "plan_extraction", "write_episode"]


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


@dataclass
class Extraction:
    """What `plan_extraction` decided: the cache's root, manifest and cameras, every planned episode's
    length, and the episodes of this shard still to encode (finished ones are skipped)."""

    root: Path
    manifest: dict
    cameras: list[str]
    dtype: str
    lengths: dict[int, int]
    todo: list[int]


def plan_extraction(
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
) -> Extraction:
    """Check the arguments, write the manifest and the text features (once), clear what killed runs left,
    and list the episodes still to encode. Decodes no video; `extract_features` and the Ray engine
    (`sarm.scale`) both start here. Arguments as in `extract_features`."""
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
            warnings.warn(f"episode {e}: {problem}; encoding it again", stacklevel=3)
            todo.append(e)
    return Extraction(root, manifest, cameras, dtype, lengths, todo)


def episode_done(job: Extraction, episode: int) -> bool:
    """Whether `episode`'s files are in the cache, complete (written by this or another run)."""
    return _episode_problem(job.root, job.manifest, job.lengths[episode], episode) is None


def write_episode(job: Extraction, episode: int, state: np.ndarray, images: np.ndarray) -> None:
    """Write one encoded episode atomically: state first, images last (their file marks it done)."""
    atomic_save(_episode_file(job.root, episode, "state"), np.asarray(state, dtype=np.float32))
    atomic_save(_episode_file(job.root, episode, "images"), images)
