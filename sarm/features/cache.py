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
the (identical) manifest and text files. Disk work (temporary files, locks, size checks) is in
`sarm.features.storage`:
- each episode is encoded under its own lock (`episodes/episode_XXXXXX.lock`): two runs on one
  directory, sharded or not, never encode an episode twice; an episode another run holds is left to it
  and reported;
- a rerun deletes the temporary files a killed run left, and re-encodes an episode whose files do not
  match the manifest (truncated or damaged outside the library); `FeatureCache` refuses such files;
- a state-only cache (`state_only=True`) has `cameras == []` and image features of shape `(T, 0, E)`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm.features.storage import npy_problem
from sarm.labels.negatives import NEGATIVE_TEXTS

__all__ = ["FeatureCache", "parse_shard"]

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


def _episode_file(root: Path, episode: int, kind: str) -> Path:
    return root / "episodes" / f"episode_{episode:06d}.{kind}.npy"


def _episode_problem(root: Path, manifest: dict, length: int, episode: int) -> str | None:
    """None if both files of a finished episode match the manifest (shape, dtype, size); else the problem."""
    images = (length, len(manifest["cameras"]), int(manifest["image_dim"]))
    state = (length, int(manifest["state_dim"])) if "state_dim" in manifest else None
    for kind, shape, dtype in (("images", images, manifest["dtype"]), ("state", state, "float32")):
        path = _episode_file(root, episode, kind)
        if (problem := npy_problem(path, shape, dtype)) is not None:
            return f"`{path}` {problem}"
    return None


class FeatureCache:
    """Read access to a feature cache directory (see the module docstring). Only finished episodes
    are visible; `missing` lists the planned ones not written yet.

    Every finished episode's files are checked against the manifest (shape, dtype and file size, from
    the .npy headers) when the cache is opened. `damaged="error"` (default) refuses a file that does not
    match, naming it; `"missing"` counts such episodes as not finished (`damaged` maps them to the
    problem), which is what a rerun of `sarm features` repairs.
    """

    def __init__(self, root: str | Path, *, damaged: str = "error"):
        if damaged not in ("error", "missing"):
            raise ValueError(f"damaged should be 'error' or 'missing', but got damaged={damaged!r}")
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: `{self.root}` is not a feature cache; create one with `sarm features`"
            )
        try:
            self.manifest: dict[str, Any] = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path} is not valid JSON ({e}); it was damaged outside sarm: build the cache again "
                "with `sarm features` into a new --out"
            ) from None
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
        self.damaged: dict[int, str] = {}
        self.skipped: dict[int, str] = {}  # set by extract_features: episodes it skipped, and why
        self.held: dict[int, str] = {}  # set by extract_features: episodes another run was encoding
        done = []
        for e in self.planned.tolist():
            if not _episode_file(self.root, e, "images").is_file():
                continue
            if (problem := _episode_problem(self.root, self.manifest, self._length[e], e)) is not None:
                self.damaged[e] = problem
            else:
                done.append(e)
        if self.damaged and damaged == "error":
            first, more = next(iter(self.damaged.items())), len(self.damaged) - 1
            raise ValueError(
                f"feature cache `{self.root}`: episode {first[0]}: {first[1]}"
                + (f" (and {more} more damaged episode(s): {sorted(self.damaged)[:20]})" if more else "")
                + "; the file was changed outside sarm (truncated copy, full disk?). Run `sarm features` "
                "again with the same --out: it re-encodes the damaged episodes"
            )
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
