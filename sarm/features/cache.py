"""The per-frame feature cache: every frame of every chosen camera decoded once and encoded once.

    ds = open_dataset("path/to/lerobot_dataset")
    cache = extract_features(ds, load_encoder("clip:ViT-B-32/openai"), "features/", dtype="float16")
    cache = FeatureCache("features/")         # read back: memory-mapped, nothing loaded whole
    cache.images[rows]                          # (n, C, E) for global cache rows (episodes concatenated)
    cache.episode_images(ep), cache.episode_state(ep), cache.text_features(["fold the towel"])

Layout of a cache directory:
    manifest.json                       encoder spec and preprocessing, cameras, dims, dtype, the dataset's
                                        fingerprint, and per planned episode: index, length, first global
                                        frame index, task text
    texts.json + texts.npy              task texts and `NEGATIVE_TEXTS` (sarm.labels.negatives), encoded once
    episodes/episode_XXXXXX.state.npy   (T, S) float32 raw robot state
    episodes/episode_XXXXXX.images.npy  (T, C, E) image features; written last, so it marks the episode done

Every file is written to a temporary name and renamed into place, so a killed run leaves only whole
files; a rerun skips finished episodes and, because each episode is encoded in the same batches, gives
byte-identical files. `shard=(i, n)` gives rank i every n-th planned episode; ranks share nothing but
the (identical) manifest and text files.
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
import torch
from tqdm.auto import tqdm

from sarm.features.encoders import Encoder
from sarm.labels.negatives import NEGATIVE_TEXTS

__all__ = ["FeatureCache", "extract_features", "parse_shard"]

FORMAT = "sarm-feature-cache"
FORMAT_VERSION = 1
_DTYPES = ("float16", "float32")


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int]:
    """ "i/n" or (i, n) -> (i, n); None -> the rank and world size torchrun sets (RANK, WORLD_SIZE), or
    (0, 1) outside torchrun."""
    if shard is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if isinstance(shard, str):
        head, _, tail = shard.partition("/")
        try:
            shard = (int(head), int(tail))
        except ValueError:
            raise ValueError(f"shard should look like 'i/n' (e.g. '0/4'), but got {shard!r}") from None
    i, n = (int(x) for x in shard)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard i/n needs n >= 1 and 0 <= i < n, but got {i}/{n}")
    return i, n


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _episode_file(root: Path, episode: int, kind: str) -> Path:
    return root / "episodes" / f"episode_{episode:06d}.{kind}.npy"


class FeatureCache:
    """Read access to a feature cache directory (see the module docstring). Only finished episodes
    are visible; `missing` lists the planned ones not written yet."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: `{self.root}` is not a feature cache; create one with `sarm features`"
            )
        self.manifest: dict[str, Any] = json.loads(path.read_text())
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} is not a {FORMAT} v{FORMAT_VERSION} manifest (format "
                f"{self.manifest.get('format')!r} v{self.manifest.get('format_version')!r})"
            )
        planned = self.manifest["episodes"]
        self.planned = np.asarray(planned["episode_index"], dtype=np.int64)
        self._length = dict(zip(planned["episode_index"], planned["length"], strict=True))
        self._first = dict(zip(planned["episode_index"], planned["first_index"], strict=True))
        self._task = dict(zip(planned["episode_index"], planned["task"], strict=True))
        done = [e for e in self.planned.tolist() if _episode_file(self.root, e, "images").is_file()]
        self.episodes = np.asarray(done, dtype=np.int64)
        self.episode_lengths = np.asarray([self._length[e] for e in done], dtype=np.int64)
        self.episode_starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        self._maps: dict[tuple[int, str], np.ndarray] = {}
        texts = json.loads((self.root / "texts.json").read_text())
        self._text_row = {text: i for i, text in enumerate(texts)}
        self._texts = np.load(self.root / "texts.npy")

    # ---- facts -------------------------------------------------------------------------------------
    @property
    def cameras(self) -> list[str]:
        return list(self.manifest["cameras"])

    @property
    def image_dim(self) -> int:
        return int(self.manifest["image_dim"])

    @property
    def text_dim(self) -> int:
        return int(self.manifest["text_dim"])

    @property
    def num_frames(self) -> int:
        return int(self.episode_lengths.sum())

    @property
    def missing(self) -> np.ndarray:
        """Planned episodes whose features are not written yet."""
        return np.setdiff1d(self.planned, self.episodes)

    def length(self, episode: int) -> int:
        """Frames of a planned episode."""
        return int(self._length[int(episode)])

    def task(self, episode: int) -> str:
        return self._task[int(episode)]

    def first_index(self, episode: int) -> int:
        """Global frame index (the dataset's `index` column) of the episode's first frame."""
        return int(self._first[int(episode)])

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.root)!r}, encoder={self.manifest['encoder']['spec']!r}, "
            f"cameras={self.cameras}, episodes={len(self.episodes)}/{len(self.planned)}, "
            f"frames={self.num_frames})"
        )

    # ---- reading -------------------------------------------------------------------------------------
    def _map(self, episode: int, kind: str) -> np.ndarray:
        key = (int(episode), kind)
        if key not in self._maps:
            path = _episode_file(self.root, int(episode), kind)
            if not path.is_file():
                raise KeyError(
                    f"episode {episode} is not in the feature cache `{self.root}` (no {path.name}); "
                    f"finished episodes: {len(self.episodes)} of {len(self.planned)}; run `sarm features` "
                    "again to finish it"
                )
            self._maps[key] = np.load(path, mmap_mode="r")
        return self._maps[key]

    def episode_images(self, episode: int) -> np.ndarray:
        """(T, C, E) memory-mapped image features of one episode (cache dtype)."""
        return self._map(episode, "images")

    def episode_state(self, episode: int) -> np.ndarray:
        """(T, S) memory-mapped raw robot state of one episode (float32)."""
        return self._map(episode, "state")

    def release(self) -> None:
        """Drop the open memory maps (their pages stop counting as this process's memory)."""
        self._maps.clear()

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """float32 (len(texts), text_dim) features of texts encoded when the cache was built."""
        unknown = [t for t in texts if t not in self._text_row]
        if unknown:
            raise KeyError(
                f"texts {unknown[:3]} were not encoded in `{self.root}`; the cache holds the dataset's "
                f"{len(self._text_row) - len(NEGATIVE_TEXTS)} task texts and the negative texts"
            )
        return torch.from_numpy(np.asarray(self._texts[[self._text_row[t] for t in texts]], np.float32))

    @property
    def images(self) -> _Frames:
        """All finished episodes' image features as one (N, C, E) array-like (rows gathered lazily)."""
        return _Frames(self, "images", (self.image_dim,))

    @property
    def state(self) -> _Frames:
        """All finished episodes' raw state as one (N, S) array-like."""
        return _Frames(self, "state", ())


class _Frames:
    """A lazy (N, ...) view over per-episode memory maps: `view[rows]` gathers rows (int64 array)."""

    def __init__(self, cache: FeatureCache, kind: str, tail: tuple[int, ...]):
        self.cache, self.kind = cache, kind
        first = cache.episodes[:1]
        sample = cache._map(int(first[0]), kind) if first.size else None
        if sample is None:
            raise ValueError(f"the feature cache `{cache.root}` has no finished episode yet")
        self.dtype = sample.dtype
        self.shape = (cache.num_frames, *sample.shape[1:])
        self.ndim = len(self.shape)
        self._ends = cache.episode_starts + cache.episode_lengths

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Any) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise IndexError("a cache view is indexed by a 1-D array of row numbers")
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows out of range [0, {self.shape[0]})")
        which = np.searchsorted(self._ends, rows, side="right")
        out = np.empty((rows.size, *self.shape[1:]), dtype=self.dtype)
        for position in np.unique(which):  # windows lie in one episode: usually a single pass
            sel = which == position
            episode = int(self.cache.episodes[position])
            out[sel] = self.cache._map(episode, self.kind)[rows[sel] - self.cache.episode_starts[position]]
        return out


# ---- writing ----------------------------------------------------------------------------------------
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
    progress: bool = True,
) -> FeatureCache:
    """Decode and encode every frame of the chosen episodes and cameras once; write the cache.

    Args:
        dataset: a `sarm.data.LeRobotDataset` (`open_dataset(...)`).
        encoder: a `sarm.features.encoders.Encoder` (`load_encoder(...)`).
        out_dir: the cache directory (created; an existing cache with the same settings is resumed).
        cameras: camera keys to encode (default: all of the dataset's).
        episodes: episode indices to plan (default: all).
        dtype: "float16" (half the disk, the default) or "float32" for image features.
        shard: (i, n) or "i/n": encode every n-th planned episode starting at i; None takes the rank
            and world size from torchrun's environment.
        missing_videos: "error" raises listing every planned episode without a video for a chosen
            camera; "skip" leaves those episodes out of the plan, with a warning naming them.
        progress: show a tqdm bar.

    Returns the `FeatureCache` (this shard's episodes are finished; others may still be running).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype should be one of {list(_DTYPES)}, but got dtype={dtype!r}")
    if missing_videos not in ("error", "skip"):
        raise ValueError(f"missing_videos should be 'error' or 'skip', but got {missing_videos!r}")
    cameras = list(dataset.camera_keys if cameras is None else cameras)
    unknown = sorted(set(cameras) - set(dataset.camera_keys))
    if not cameras or unknown:
        raise ValueError(
            f"cameras should be some of the dataset's camera keys {dataset.camera_keys}, but got {cameras}"
        )
    plan = np.asarray(dataset.episodes if episodes is None else episodes, dtype=np.int64)
    missing = np.unique(np.concatenate([np.asarray(dataset.missing_videos(c), np.int64) for c in cameras]))
    missing = np.intersect1d(missing, plan)
    if missing.size and missing_videos == "error":
        from sarm.data import MissingVideoError

        raise MissingVideoError(
            f"{missing.size} planned episode(s) have no video for cameras {cameras}: {missing.tolist()}; "
            "restore the files, or skip those episodes with missing_videos='skip' (--missing-videos skip)"
        )
    if missing.size:
        warnings.warn(
            f"skipping {missing.size} episode(s) without video for cameras {cameras}: {missing.tolist()}",
            stacklevel=2,
        )
        plan = np.setdiff1d(plan, missing)
    rank, world = parse_shard(shard)

    root = Path(out_dir)
    (root / "episodes").mkdir(parents=True, exist_ok=True)
    manifest = _manifest(dataset, encoder, cameras, dtype, plan)
    path = root / "manifest.json"
    if path.is_file():
        _check_same(path, manifest)
    else:
        _atomic_text(path, json.dumps(manifest, indent=1) + "\n")
    texts = list(dict.fromkeys([*dataset.task_texts, *NEGATIVE_TEXTS]))
    if not (root / "texts.npy").is_file():
        _atomic_text(root / "texts.json", json.dumps(texts, indent=1) + "\n")
        _atomic_save(root / "texts.npy", encoder.encode_texts(texts).numpy().astype(np.float32))

    mine = [int(e) for e in plan[rank::world] if not _episode_file(root, int(e), "images").is_file()]
    lengths = dict(zip(manifest["episodes"]["episode_index"], manifest["episodes"]["length"], strict=True))
    bar = tqdm(
        total=sum(lengths[e] for e in mine),
        unit="frame",
        disable=not progress,
        desc=f"features {rank}/{world}" if world > 1 else "features",
    )
    for episode in mine:
        state = np.asarray(dataset.state(episodes=[episode]), dtype=np.float32)
        images = np.empty((lengths[episode], len(cameras), encoder.image_dim), dtype=dtype)
        for c, camera in enumerate(cameras):
            filled = np.zeros(lengths[episode], bool)
            for frames, pixels in _prefetch(dataset.decode(camera, episode)):
                images[frames, c] = encoder.encode_images(pixels).numpy().astype(dtype)
                filled[frames] = True
                bar.update(len(frames) / len(cameras))
            if not filled.all():
                raise RuntimeError(
                    f"decoding camera {camera!r} of episode {episode} gave {filled.sum()} of "
                    f"{filled.size} frames; the video is shorter than the episode's data"
                )
        _atomic_save(_episode_file(root, episode, "state"), state)
        _atomic_save(_episode_file(root, episode, "images"), images)  # last: marks the episode done
    bar.close()
    return FeatureCache(root)
