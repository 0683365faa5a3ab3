"""`RABCWeightedSampler`: weighted random sampling of dataset positions, from 10 to 10^9 frames.

    sampler = RABCWeightedSampler(weights, seed=0)  # one weight per dataset position, or aligned RABCWeights
    loader = DataLoader(dataset, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...

Unlike `torch.utils.data.WeightedRandomSampler` (one `torch.multinomial` call, limited to 2^24
categories, every index drawn before the first is yielded) it keeps one float64 cumulative sum of the
weights (8 bytes per frame) and draws in chunks, each a pure function of `(seed, epoch, chunk)`, so
any position of the stream can be regenerated: this gives laziness, exact mid-epoch resume and
rank sharding without communication.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Sampler

from rabc.draws import as_weight_array, scan_weights, search_sorted_keys, thin_and_shuffle

__all__ = ["RABCBatchSampler", "RABCWeightedSampler"]

log = logging.getLogger(__name__)

_WINDOW_FACTOR = 8  # coarse CDF points per chunk ~ chunk_size / _WINDOW_FACTOR (measured best)
_PLAIN_SEARCH_MAX = 1 << 21  # up to here the CDF is cache-sized: plain np.searchsorted is faster
_PIECE = 1 << 16  # indices turned into Python ints at a time
_STATE_VERSION = 1
_STREAM_KEYS = ("num_frames", "num_samples", "replacement", "num_replicas", "rank", "drop_last", "chunk_size")


class _AlignedWeights(Protocol):
    weights: np.ndarray  # float32 (N,)
    index: np.ndarray  # int64 (N,) global frame index of each row, strictly increasing


class RABCWeightedSampler(Sampler[int]):
    r"""Yields dataset positions in `[0, N)` with probability proportional to `weights`.

    Args:
        weights: N weights in [0, 1] (RA-BC weights; numpy array, `np.memmap`, torch tensor or sequence),
            or an object with `.weights` and `.index` (e.g. `RABCWeights`) whose index is exactly
            `0..N-1`. Numpy arrays and CPU float32/64 tensors are not copied (a Python sequence
            becomes a float64 array, a float16 tensor a float32 one).
        num_samples: draws per epoch over all ranks (`replacement=True` only); default N.
        replacement: `True` draws i.i.d. with replacement. `False` is the no-duplicates mode: each
            epoch frame i is kept with probability `w_i / max(w)` (so inclusion is proportional to
            the weight and full-weight frames are always kept), the kept frames are shuffled, and
            each appears at most once; the epoch length is the number kept (about `sum(w) / max(w)`).
        seed: non-negative int; the order is a pure function of `(seed, epoch)`. The global torch,
            numpy and Python RNGs are never read or advanced.
        num_replicas, rank: shard for plain DDP (see below). Default: not sharded.
        drop_last: under sharding, `L = num_samples // num_replicas` draws per rank instead of
            `ceil(num_samples / num_replicas)`.
        chunk_size: draws generated per vectorised step; chunk c of an epoch comes from
            `np.random.default_rng([seed, epoch, c])`, so it is part of the stream's definition (a
            state saved with one chunk size cannot be resumed with another). The default 2^20 is
            the measured best: denser sorted keys mean fewer cache misses in the CDF (a chunk takes
            0.1-0.2 s at N = 10^7-10^8, under 1 s at 1.5 x 10^9, and ~40 MB of temporary arrays;
            see docs/benchmarks/sampler.md).
        auto_epoch: for loops that never call `set_epoch` (LeRobot's and openpi's `cycle` over the
            loader): each `__iter__` after the first starts the next epoch, so every pass has a new
            order. The first `__iter__` after `set_epoch(e)` or `load_state_dict` uses that epoch
            (and resumes mid-epoch), so `state_dict()` always names the epoch being iterated.

    Who shards:
        * accelerate / LeRobot / any trainer that splits batches itself: leave `num_replicas=None`.
          Every process then yields the same full stream (same seed) and the trainer gives each
          rank its share of every batch.
        * plain `torch.distributed` DDP with a `DataLoader` per rank: pass `num_replicas` and
          `rank` (or use `from_distributed`). Rank r yields the contiguous slice
          `[r * L, (r + 1) * L)` of one global stream of length `L * num_replicas`, generating only
          its own chunks; the slices are disjoint and their concatenation is exactly the stream of
          an unsharded sampler with `num_samples = L * num_replicas`. In the no-duplicates mode
          each rank gets `K // num_replicas` consecutive kept frames and the remainder (fewer than
          `num_replicas` frames) is dropped.

    Sampling with replacement: `u = U * total`, `position = searchsorted(cdf, u, side="right")`, so
    zero-weight frames are never drawn (nor are weights below ~1e-16 of the total, lost to float64
    rounding). Each chunk draws sorted uniforms (normalised cumulative sums of exponentials),
    searches them with a windowed vectorised binary search (cache friendly), then shuffles the
    chunk: an i.i.d. sequence is exchangeable, so the distribution is exact.

    Memory: the CDF (8 bytes per frame, `replacement=True`) or the epoch's kept positions (at most
    8 bytes per frame, `replacement=False`), plus the caller's weights (kept by reference only in
    the no-duplicates mode). `nbytes` reports the sampler's own arrays.

    Resume: `state_dict()["position"]` counts the indices this rank has handed out in the current
    epoch. A `DataLoader` prefetches, so that is a little ahead of the samples trained on; if you
    know the consumed count (e.g. `step * batch_size` on this rank) put it in `position` before
    `load_state_dict`. After loading, the next `__iter__` resumes there (also after `set_epoch` with
    the same epoch); later epochs start at 0. `len(sampler)` is always the full epoch length.
    """

    def __init__(
        self,
        weights: np.ndarray | torch.Tensor | Sequence[float] | _AlignedWeights,
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        chunk_size: int = 1 << 20,
        auto_epoch: bool = False,
    ) -> None:
        flags = (("replacement", replacement), ("drop_last", drop_last), ("auto_epoch", auto_epoch))
        for name, flag in flags:
            if not isinstance(flag, bool):
                raise TypeError(f"{name} should be a boolean value, but got {name}={flag!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"seed should be an integer, but got seed={seed!r} ({type(seed).__name__})")
        if seed < 0:
            raise ValueError(f"seed should be a non-negative integer, but got seed={seed}")
        for name, value in (
            ("num_samples", num_samples),
            ("chunk_size", chunk_size),
            ("num_replicas", num_replicas),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0
            ):
                raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
        if num_samples is not None and not replacement:
            raise ValueError(
                f"num_samples must be None when replacement=False (got num_samples={num_samples}): the "
                "no-duplicates mode yields every kept frame once, so its epoch length is the number kept "
                "(about sum(w) / max(w)); use replacement=True to draw a fixed number of samples"
            )
        if (num_replicas is None) != (rank is None):
            given, other = ("rank", "num_replicas") if num_replicas is None else ("num_replicas", "rank")
            raise ValueError(
                f"{given}={rank if num_replicas is None else num_replicas} was given without {other}; pass "
                "both num_replicas=world_size and rank (or neither, to yield the full stream on every rank)"
            )
        num_replicas, rank = (1, 0) if num_replicas is None else (num_replicas, rank)
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")

        w = as_weight_array(weights)
        self.num_frames = int(w.shape[0])
        self.replacement = replacement
        self.seed = int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.drop_last = drop_last
        self.chunk_size = int(chunk_size)
        self.epoch = 0
        self.auto_epoch = auto_epoch
        self._epoch_started = False  # an iterator of `self.epoch` was handed out (auto_epoch)
        if replacement:
            self._cdf, self._weights = np.empty(self.num_frames, np.float64), None
            total, _ = scan_weights(w, self._cdf)
            # first position whose CDF reaches the total = last frame with (effective) positive weight
            self._last_positive = int(np.searchsorted(self._cdf, total, side="left"))
            window = 1 << max(1, self.num_frames * _WINDOW_FACTOR // self.chunk_size).bit_length()
            window = min(window, 1 << (self.num_frames.bit_length() - 1))  # power of two <= N
            self._window = 1 if self.num_frames <= _PLAIN_SEARCH_MAX else window
            self.num_samples = self.num_frames if num_samples is None else int(num_samples)
            per_rank, rest = divmod(self.num_samples, self.num_replicas)
            self._per_rank = per_rank if (drop_last or rest == 0) else per_rank + 1
            if self._per_rank == 0:
                raise ValueError(
                    f"num_samples={self.num_samples} with drop_last=True leaves no sample for each of "
                    f"{self.num_replicas} replicas; use drop_last=False or a larger num_samples"
                )
        else:
            total, self._max_weight = scan_weights(w)
            self._cdf, self._weights = None, w  # by reference: thinning reads it once per epoch
            self.num_samples = None
        self._total = float(total)
        self._kept: np.ndarray | None = None
        self._kept_key: tuple[int, int] | None = None
        self._resume = False  # True after load_state_dict until the next __iter__
        self._cursor_end, self._cursor_it = 0, iter(())

    @classmethod
    def from_distributed(cls, weights, **kwargs: Any) -> RABCWeightedSampler:
        """Shard by `torch.distributed`'s world size and rank if it is initialised, else do not shard.

        For plain DDP only: under accelerate or LeRobot (which also initialise the process group)
        the prepared loader shards every batch again, and each process would see 1/world^2 of the
        data. There, build the sampler unsharded: `RABCWeightedSampler(weights, seed=...)`.
        """
        if "num_replicas" in kwargs or "rank" in kwargs:
            raise TypeError(
                "from_distributed() reads num_replicas and rank from torch.distributed; to set them "
                "by hand call RABCWeightedSampler(weights, num_replicas=..., rank=...) instead"
            )
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            kwargs.update(num_replicas=dist.get_world_size(), rank=dist.get_rank())
        return cls(weights, **kwargs)

    def __len__(self) -> int:
        if self.replacement:
            return self._per_rank
        return len(self._kept_frames()) // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        if self.auto_epoch and self._epoch_started and not self._resume:
            self.epoch += 1
        self._epoch_started = True
        start = self._position() if self._resume else 0
        self._resume = False
        self._cursor_end, self._cursor_it = start, iter(())
        if self.replacement:
            pieces = self._draw_pieces(self.epoch, start)
        else:
            pieces = self._kept_pieces(self._kept_frames(), start)
        # one C list iterator per piece, chained in C: no Python frame per yielded int
        return itertools.chain.from_iterable(self._track(pieces))

    def batches(self, batch_size: int, drop_last: bool = False) -> RABCBatchSampler:
        """This sampler's stream cut into lists of `batch_size` positions, for
        `DataLoader(dataset, batch_sampler=sampler.batches(64))` (resumable at batch granularity)."""
        return RABCBatchSampler(self, batch_size, drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order; a pending resume survives only if `epoch` is the saved one."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"epoch should be a non-negative integer, but got epoch={epoch!r}")
        self._epoch_started = False  # the next __iter__ iterates `epoch` itself, even with auto_epoch
        if int(epoch) != self.epoch:
            if self._resume:
                log.warning(
                    "set_epoch(%d) discards the resume loaded for epoch %d at position %d; call "
                    "set_epoch(%d) (e.g. on accelerate's prepared loader) before iterating to resume",
                    epoch,
                    self.epoch,
                    self._position(),
                    self.epoch,
                )
            self.epoch = int(epoch)
            self._resume = False
            self._cursor_end, self._cursor_it = 0, iter(())

    def state_dict(self) -> dict[str, Any]:
        """Seed, epoch and this rank's position in the epoch, plus what identifies the stream."""
        state = {
            "version": _STATE_VERSION,
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self._position(),
        }
        return {**state, **{key: getattr(self, key) for key in _STREAM_KEYS}, "weights_sum": self._total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Adopt `seed`, `epoch` and `position`; the next `__iter__` continues from there."""
        if not isinstance(state, Mapping):
            raise TypeError(
                f"state should be a dict from RABCWeightedSampler.state_dict(), but got "
                f"{type(state).__name__}; was the sampler state saved with the checkpoint?"
            )
        missing = sorted(set(self.state_dict()) - set(state))
        if missing:
            raise ValueError(
                f"sampler state is missing {missing}; pass a dict from RABCWeightedSampler.state_dict()"
            )
        if state["version"] != _STATE_VERSION:
            raise ValueError(
                f"sampler state version {state['version']} is not supported (expected {_STATE_VERSION})"
            )
        mine = self.state_dict()
        for key in (*_STREAM_KEYS, "weights_sum"):
            if state[key] != mine[key]:
                raise ValueError(
                    f"sampler state has {key}={state[key]!r} but this sampler has {key}={mine[key]!r}; "
                    "build the sampler with the same weights and arguments as the run that saved it"
                )
        for key in ("seed", "epoch", "position"):
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{key} should be a non-negative integer, but got {key}={value!r}")
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        position = state["position"]
        if self.replacement and position > self._per_rank:
            raise ValueError(f"position={position} is past the end of the epoch ({self._per_rank} per rank)")
        self._cursor_end, self._cursor_it = int(position), iter(())
        self._resume = True
        self._epoch_started = False

    @property
    def nbytes(self) -> int:
        """Bytes held by the sampler's own arrays (the CDF or the kept list; not the caller's weights)."""
        return sum(a.nbytes for a in (self._cdf, self._kept) if a is not None)

    # -- internals ----------------------------------------------------------------------------

    def _position(self) -> int:
        return self._cursor_end - operator.length_hint(self._cursor_it)

    def _track(self, pieces: Iterator[list[int]]) -> Iterator[Iterator[int]]:
        """Hand out each piece's list iterator; the cursor (the one being consumed, and where it ends)
        makes `position` exact at every int, since `chain` asks for the next piece only at the end."""
        for items in pieces:
            self._cursor_end, self._cursor_it = self._cursor_end + len(items), iter(items)
            yield self._cursor_it

    def _draw_pieces(self, epoch: int, start: int) -> Iterator[list[int]]:
        size = self.chunk_size
        begin, end = self.rank * self._per_rank + start, (self.rank + 1) * self._per_rank  # global stream
        while begin < end:
            chunk, offset = divmod(begin, size)
            yield from _pieces(self._draw_chunk(epoch, chunk)[offset : min(size, end - chunk * size)])
            begin = (chunk + 1) * size

    def _draw_chunk(self, epoch: int, chunk: int) -> np.ndarray:
        """Draws `chunk * chunk_size ...` of the epoch's global stream: int64 (chunk_size,)."""
        rng = np.random.default_rng([self.seed, epoch, chunk])
        keys = rng.standard_exponential(self.chunk_size + 1)
        np.cumsum(keys, out=keys)
        keys, norm = keys[:-1], keys[-1]
        keys *= self._total / norm  # sorted uniforms on [0, total)
        positions = search_sorted_keys(self._cdf, keys, self._window)
        np.minimum(positions, self._last_positive, out=positions)  # u == total after rounding
        rng.shuffle(positions)
        return positions

    def _kept_pieces(self, kept: np.ndarray, start: int) -> Iterator[list[int]]:
        per_rank = len(kept) // self.num_replicas
        return _pieces(kept[self.rank * per_rank + start : (self.rank + 1) * per_rank])

    def _kept_frames(self) -> np.ndarray:
        """This epoch's shuffled kept positions (no-duplicates mode), built once per (seed, epoch)."""
        key = (self.seed, self.epoch)
        if self._kept_key != key:
            self._kept = None  # free the previous epoch's list first
            self._kept = thin_and_shuffle(self._weights, self._max_weight, self.seed, self.epoch)
            self._kept_key = key
        return self._kept


def _pieces(positions: np.ndarray) -> Iterator[list[int]]:
    """`positions` as lists of Python ints, `_PIECE` at a time (one `tolist` call each)."""
    for lo in range(0, positions.shape[0], _PIECE):
        yield positions[lo : lo + _PIECE].tolist()


class RABCBatchSampler(Sampler[list[int]]):
    """Lists of `batch_size` consecutive positions of a `RABCWeightedSampler`'s stream (the same order),
    for `DataLoader(batch_sampler=...)`; make it with `sampler.batches(batch_size)`.

    `set_epoch`, `state_dict` and `load_state_dict` are the sampler's own: the position counts the
    indices of the batches handed out, so a resume continues at the next batch. With `drop_last`
    a last batch shorter than `batch_size` is left out.
    """

    def __init__(self, sampler: RABCWeightedSampler, batch_size: int, drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size!r}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self) -> Iterator[list[int]]:
        stream, size = iter(self.sampler), self.batch_size
        while batch := list(itertools.islice(stream, size)):
            if len(batch) < size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
