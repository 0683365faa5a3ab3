"""Vectorised kernels behind `RABCWeightedSampler`: the weights as an array, their validation + CDF,
sorted-key search, thinning.

Each works on whole numpy blocks so that no per-frame Python object is ever built, and none needs an
N-sized temporary beyond the arrays it returns.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_weight_array", "scan_weights", "search_sorted_keys", "thin_and_shuffle"]

BLOCK = 1 << 16  # frames per block when validating weights / building the CDF / thinning
THINNING_STREAM = (1 << 64) - 1  # SeedSequence word of the no-duplicates mode (no chunk reaches it)


def _check_block(block: np.ndarray, start: int, bad: list[int]) -> float:
    """Count negative / NaN / inf / above-1 weights into `bad` = [neg, nan, inf, first position,
    above 1 (finite)]; return the max."""
    low, high = block.min(), block.max()
    if not (low >= 0 and high <= 1):  # slow path only for bad blocks; NaN fails `low >= 0`
        flags = (block < 0, np.isnan(block), np.isinf(block), (block > 1) & np.isfinite(block))
        for k, flag in zip((0, 1, 2, 4), flags, strict=True):
            bad[k] += int(np.count_nonzero(flag))
        if bad[3] < 0:
            bad[3] = start + int(np.flatnonzero(flags[0] | flags[1] | flags[2] | flags[3])[0])
    return float(high)


def scan_weights(weights: np.ndarray, cdf: np.ndarray | None = None) -> tuple[float, float]:
    """Validate block by block and return (float64 sum, max); if given, fill `cdf` with the running
    sum, equal to `np.cumsum(weights, dtype=np.float64)` without an N-sized temporary."""
    bad, total, high = [0, 0, 0, -1, 0], 0.0, 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, with counts and positions
        for lo in range(0, weights.shape[0], BLOCK):
            block = weights[lo : lo + BLOCK]
            high = max(high, _check_block(block, lo, bad))
            if cdf is None:
                total += float(block.sum(dtype=np.float64))
                continue
            out = cdf[lo : lo + BLOCK]
            out[...] = block
            out[0] += total
            np.cumsum(out, out=out)
            total = float(out[-1])
    if bad[3] >= 0:
        raise ValueError(
            f"weights should be finite and in [0, 1] (RA-BC weights), but {bad[4]} are above 1, {bad[0]} "
            f"are negative, {bad[1]} NaN and {bad[2]} infinite (first at position {bad[3]}: "
            f"{weights[bad[3]]}); fix them upstream (RABCWeights gives unknown progress an explicit "
            "fallback weight), or divide other non-negative scores by their maximum"
        )
    if total <= 0:
        raise ValueError(
            f"all {weights.shape[0]} weights are zero, so there is nothing to sample; check how they were "
            "computed (e.g. a kappa above every progress delta) or use uniform weights"
        )
    return total, high


def search_sorted_keys(cdf: np.ndarray, keys: np.ndarray, window: int) -> np.ndarray:
    """`np.searchsorted(cdf, keys, side="right")` for sorted keys, except that N comes out as N - 1.

    A coarse search over every `window`-th CDF value (window a power of two) finds each key's
    window; a branchless binary search, vectorised over the keys level by level, finishes inside it.
    Each level is one gather of monotone addresses, so the memory latency of the N-sized CDF is
    overlapped across keys instead of paid ~log2(N) times in series per key.
    """
    n = cdf.shape[0]
    pos = np.searchsorted(cdf[window - 1 :: window], keys, side="right")
    pos *= window
    np.minimum(pos, n - window, out=pos)  # the last (partial) window ends at N - 1
    pos -= 1  # invariant: cdf[pos] <= key (pos = -1 stands for -inf)
    probe, hit = np.empty_like(pos), np.empty(keys.shape, np.bool_)
    step = window >> 1
    while step:
        np.add(pos, step, out=probe)
        np.less_equal(cdf.take(probe), keys, out=hit)
        pos += hit * step
        step >>= 1
    pos += 1
    return pos


def thin_and_shuffle(weights: np.ndarray, max_weight: float, seed: int, epoch: int) -> np.ndarray:
    """Keep frame i with probability w_i / max(w), then shuffle: int64 positions, each at most once."""
    rng = np.random.default_rng([seed, epoch, THINNING_STREAM])
    kept, count = np.empty(weights.shape[0], np.int64), 0  # untouched pages cost no memory
    for lo in range(0, weights.shape[0], BLOCK):
        block = weights[lo : lo + BLOCK]
        coins = rng.random(block.shape[0])
        coins *= max_weight  # u * max < w  <=>  u < w / max, and it always holds for w == max
        hits = np.flatnonzero(coins < block)
        hits += lo
        kept[count : count + hits.shape[0]] = hits
        count += hits.shape[0]
    kept.resize(count, refcheck=False)  # shrink in place (realloc), no second copy
    rng.shuffle(kept)
    return kept


def as_weight_array(weights) -> np.ndarray:
    """The caller's weights as a 1-D numpy array, without copying a numpy or CPU float tensor."""
    if hasattr(weights, "weights") and hasattr(weights, "index"):
        index, owner = np.asarray(weights.index), type(weights).__name__
        weights = np.asarray(weights.weights)
        n = weights.shape[0] if weights.ndim else 0
        if index.shape != (n,) or (n > 0 and (index[0] != 0 or index[-1] != n - 1)):
            span = f"{index[0]}..{index[-1]}" if index.size else "empty"
            raise ValueError(
                f"{owner}.index is not 0..{n - 1} (it has {index.size} rows, {span}), but the sampler yields "
                f"dataset positions 0..N-1; pass weights aligned with your dataset instead, e.g. "
                f"RABCWeightedSampler(w.for_indices(dataset_global_indices))"
            )
    elif isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu()
        if weights.dtype in (torch.float16, torch.bfloat16):
            weights = weights.float()
        weights = weights.numpy()
    elif not isinstance(weights, np.ndarray):
        try:
            weights = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"weights should be a 1-D array or sequence of non-negative floats, but got "
                f"{type(weights).__name__} ({err})"
            ) from None
    if weights.dtype.kind not in "biuf":
        raise TypeError(f"weights should have a real (float or integer) dtype, but got dtype={weights.dtype}")
    if weights.ndim != 1:
        raise ValueError(
            f"weights should be a 1-D array with one weight per dataset position, but got shape "
            f"{weights.shape}; flatten it or select one weight per frame"
        )
    if weights.shape[0] == 0:
        raise ValueError("weights is empty; the sampler needs one weight per dataset position")
    return weights
