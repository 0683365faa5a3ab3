"""Tests for rabc.sampler: distribution, determinism, resume, sharding in one process, scale, errors."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from rabc.draws import search_sorted_keys
from rabc.sampler import RABCWeightedSampler

W = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.25, 0.0, 0.75, 1.0, 0.1], np.float32)


def _draws(sampler, count: int | None = None) -> np.ndarray:
    return np.fromiter(itertools.islice(iter(sampler), count), np.int64)


def _rabc_like(n: int, seed: int = 0) -> np.ndarray:
    """70% weight 1.0, 15% weight 0.0, 15% uniform(0, 1), like RA-BC weights."""
    rng = np.random.default_rng(seed)
    r = rng.random(n)
    w = np.ones(n, np.float32)
    w[r < 0.15] = 0.0
    mid = r > 0.85
    w[mid] = rng.random(int(mid.sum()))
    return w


# -- distribution ---------------------------------------------------------------------------------


def test_frequencies_match_weights_chi_square():
    w = _rabc_like(200, seed=1)
    n = 400_000
    counts = np.bincount(_draws(RABCWeightedSampler(w, num_samples=n, seed=7)), minlength=len(w))
    assert counts[w == 0].sum() == 0  # zero-weight frames are never drawn
    pos = w > 0
    expected = n * w[pos] / w.sum(dtype=np.float64)
    chi2 = float((((counts[pos] - expected) ** 2) / expected).sum())
    dof = int(pos.sum()) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)  # ~5 sigma: fails only on a real bias


@pytest.mark.parametrize("window", [1, 2, 8, 64, 1024])
def test_windowed_search_equals_searchsorted(window):
    rng = np.random.default_rng(window)
    w = _rabc_like(5000, seed=window)
    w[:7] = 0.0
    w[-9:] = 0.0
    cdf = np.cumsum(w, dtype=np.float64)
    keys = np.sort(rng.random(3000) * cdf[-1])
    keys[:3] = 0.0
    keys[-3:] = cdf[-1]  # u == total after rounding: N - 1 here, clamped by the sampler
    expected = np.minimum(np.searchsorted(cdf, keys, side="right"), len(cdf) - 1)
    np.testing.assert_array_equal(search_sorted_keys(cdf, keys, window), expected)


def test_total_rounding_edge_maps_to_last_positive_frame():
    s = RABCWeightedSampler(np.array([0.0, 1.0, 0.5, 0.0, 0.0]), num_samples=1000, chunk_size=64)
    assert s._last_positive == 2
    keys = np.array([s._total, s._total])
    got = np.minimum(search_sorted_keys(s._cdf, keys, s._window), s._last_positive)
    np.testing.assert_array_equal(got, [2, 2])
    assert set(_draws(s).tolist()) == {1, 2}


def test_inputs_numpy_tensor_list_give_the_same_stream():
    ref = _draws(RABCWeightedSampler(W, num_samples=500, seed=3))
    for weights in (
        torch.from_numpy(W),
        torch.from_numpy(W).to(torch.float64),
        W.tolist(),
        W.astype(np.float16),
    ):
        np.testing.assert_array_equal(_draws(RABCWeightedSampler(weights, num_samples=500, seed=3)), ref)
    assert (W[ref] > 0).all() and ref.dtype == np.int64


# -- determinism, epochs, global RNG --------------------------------------------------------------


def test_order_is_a_pure_function_of_seed_and_epoch():
    a = RABCWeightedSampler(W, num_samples=300, seed=5, chunk_size=64)
    b = RABCWeightedSampler(W, num_samples=300, seed=5, chunk_size=64)
    np.testing.assert_array_equal(_draws(a), _draws(b))
    np.testing.assert_array_equal(_draws(a), _draws(a))  # re-iterating repeats the epoch
    assert not np.array_equal(
        _draws(a), _draws(RABCWeightedSampler(W, num_samples=300, seed=6, chunk_size=64))
    )
    first = _draws(a)
    a.set_epoch(1)
    second = _draws(a)
    assert not np.array_equal(first, second)
    b.set_epoch(1)
    np.testing.assert_array_equal(_draws(b), second)


@pytest.mark.parametrize("replacement", [True, False])
def test_global_rng_is_never_used(replacement):
    kw = {"num_samples": 200} if replacement else {}
    ref = _draws(RABCWeightedSampler(_rabc_like(300), replacement=replacement, seed=1, **kw))
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 (the legacy global RNG is what must stay untouched)
    random.seed(123)
    torch.rand(10), np.random.rand(10), random.random()  # noqa: NPY002
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())  # noqa: NPY002
    got = _draws(RABCWeightedSampler(_rabc_like(300), replacement=replacement, seed=1, **kw))
    np.testing.assert_array_equal(got, ref)
    assert torch.equal(torch.get_rng_state(), states[0])
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert random.getstate() == states[2]


# -- resume -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replacement", "chunk_size", "stop"),
    [(True, 50, 123), (False, 50, 123), (True, 1 << 20, 70_000)],  # mid-chunk; mid-chunk past a 2^16 piece
)
def test_mid_epoch_resume_equals_uninterrupted_run(replacement, chunk_size, stop):
    w = _rabc_like(1000, seed=2)
    kw = {"num_samples": 100_000 if chunk_size > 50 else 777} if replacement else {}
    make = lambda: RABCWeightedSampler(w, replacement=replacement, seed=9, chunk_size=chunk_size, **kw)  # noqa: E731
    full = make()
    full.set_epoch(2)
    expected = _draws(full)
    first = make()
    first.set_epoch(2)
    it = iter(first)
    head = [next(it) for _ in range(stop)]
    state = first.state_dict()
    assert state["position"] == stop and state["epoch"] == 2 and state["seed"] == 9
    fresh = RABCWeightedSampler(
        w, replacement=replacement, seed=0, chunk_size=chunk_size, **kw
    )  # seed adopted
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # the usual epoch loop: same epoch keeps the pending resume
    assert fresh.state_dict()["position"] == stop
    np.testing.assert_array_equal(np.concatenate([head, _draws(fresh)]), expected)
    assert fresh.state_dict()["position"] == len(expected) == len(fresh)
    full.set_epoch(3)
    fresh.set_epoch(3)  # later epochs start at 0
    np.testing.assert_array_equal(_draws(fresh), _draws(full))
    first.load_state_dict(state)  # the same object resumes too
    np.testing.assert_array_equal(np.concatenate([head, _draws(first)]), expected)


def test_state_position_tracks_the_live_iterator_and_set_epoch_resets_it():
    s = RABCWeightedSampler(W, num_samples=100, chunk_size=8)
    it = iter(s)
    assert s.state_dict()["position"] == 0
    for k in range(1, 20):
        next(it)
        assert s.state_dict()["position"] == k
    s.set_epoch(1)
    assert s.state_dict()["position"] == 0
    assert len(_draws(s)) == 100  # no pending resume: a new iterator starts at 0


@pytest.mark.parametrize("replacement", [True, False])
def test_auto_epoch_gives_each_pass_the_next_epoch_and_resumes_mid_epoch(replacement):
    w, kw = _rabc_like(200, seed=5), ({"num_samples": 40} if replacement else {})
    by_epoch = []
    for epoch in range(3):
        ref = RABCWeightedSampler(w, replacement=replacement, seed=4, chunk_size=8, **kw)
        ref.set_epoch(epoch)
        by_epoch.append(_draws(ref))
    auto = RABCWeightedSampler(w, replacement=replacement, seed=4, chunk_size=8, auto_epoch=True, **kw)
    passes = [_draws(auto) for _ in range(3)]  # a `cycle(loader)` loop: iter() again, no set_epoch
    for got, want in zip(passes, by_epoch, strict=True):
        np.testing.assert_array_equal(got, want)
    assert auto.epoch == 2
    assert not np.array_equal(by_epoch[0], by_epoch[1])

    it = iter(auto)  # epoch 3, stop mid-way; the state names the epoch being iterated
    head = [next(it) for _ in range(5)]
    state = auto.state_dict()
    assert (state["epoch"], state["position"]) == (3, 5)
    fresh = RABCWeightedSampler(w, replacement=replacement, seed=4, chunk_size=8, auto_epoch=True, **kw)
    fresh.load_state_dict(state)
    ref = RABCWeightedSampler(w, replacement=replacement, seed=4, chunk_size=8, **kw)
    ref.set_epoch(3)
    np.testing.assert_array_equal(np.concatenate([head, _draws(fresh)]), _draws(ref))
    ref.set_epoch(4)
    np.testing.assert_array_equal(_draws(fresh), _draws(ref))  # after the resumed pass: epoch 4

    fresh.set_epoch(1)  # an explicit epoch is iterated itself, then auto-advance goes on from it
    np.testing.assert_array_equal(_draws(fresh), by_epoch[1])
    np.testing.assert_array_equal(_draws(fresh), by_epoch[2])


def test_without_auto_epoch_every_pass_repeats_the_epoch():
    s = RABCWeightedSampler(W, num_samples=40, chunk_size=8)
    np.testing.assert_array_equal(_draws(s), _draws(s))
    assert s.epoch == 0


def test_load_state_dict_rejects_a_different_sampler():
    s = RABCWeightedSampler(W, num_samples=100, chunk_size=8)
    state = s.state_dict()
    for other, key in [
        (RABCWeightedSampler(W, num_samples=100, chunk_size=16), "chunk_size"),
        (RABCWeightedSampler(W * 0.5, num_samples=100, chunk_size=8), "weights_sum"),
        (RABCWeightedSampler(np.append(W, 1.0), num_samples=100, chunk_size=8), "num_frames"),
        (RABCWeightedSampler(W, num_samples=100, chunk_size=8, num_replicas=2, rank=0), "num_replicas"),
        (RABCWeightedSampler(W, replacement=False, chunk_size=8), "num_samples"),
    ]:
        with pytest.raises(ValueError, match=f"sampler state has {key}=.*same weights and arguments"):
            other.load_state_dict(state)
    with pytest.raises(ValueError, match=r"sampler state is missing \['position'\]"):
        s.load_state_dict({k: v for k, v in state.items() if k != "position"})
    with pytest.raises(ValueError, match=r"position=101 is past the end of the epoch \(100 per rank\)"):
        s.load_state_dict({**state, "position": 101})
    with pytest.raises(ValueError, match=r"sampler state version 9 is not supported \(expected 1\)"):
        s.load_state_dict({**state, "version": 9})
    with pytest.raises(ValueError, match="position should be a non-negative integer, but got position=-1"):
        s.load_state_dict({**state, "position": -1})


# -- distributed (ranks simulated in one process) ---------------------------------------------------


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_rank_shards_are_contiguous_slices_of_one_stream(replicas, drop_last):
    w, num_samples = _rabc_like(500, seed=3), 1001
    shards = [
        RABCWeightedSampler(
            w,
            num_samples=num_samples,
            seed=4,
            num_replicas=replicas,
            rank=r,
            drop_last=drop_last,
            chunk_size=64,
        )
        for r in range(replicas)
    ]
    per_rank = num_samples // replicas if drop_last else -(-num_samples // replicas)
    assert [len(s) for s in shards] == [per_rank] * replicas
    draws = [_draws(s) for s in shards]
    assert [len(d) for d in draws] == [per_rank] * replicas
    unsharded = _draws(RABCWeightedSampler(w, num_samples=per_rank * replicas, seed=4, chunk_size=64))
    np.testing.assert_array_equal(np.concatenate(draws), unsharded)  # disjoint by position, covering


def test_no_duplicates_mode_shards_equal_disjoint_and_drop_the_remainder():
    w = _rabc_like(1000, seed=5)
    whole = _draws(RABCWeightedSampler(w, replacement=False, seed=2))
    shards = [
        _draws(RABCWeightedSampler(w, replacement=False, seed=2, num_replicas=3, rank=r)) for r in range(3)
    ]
    per_rank = len(whole) // 3
    assert [len(s) for s in shards] == [per_rank] * 3
    np.testing.assert_array_equal(np.concatenate(shards), whole[: 3 * per_rank])
    assert len(np.unique(np.concatenate(shards))) == 3 * per_rank


def test_from_distributed_without_a_process_group_does_not_shard():
    s = RABCWeightedSampler.from_distributed(W, num_samples=50, seed=1)
    assert (s.num_replicas, s.rank, len(s)) == (1, 0, 50)
    with pytest.raises(TypeError, match="from_distributed\\(\\) reads num_replicas and rank"):
        RABCWeightedSampler.from_distributed(W, rank=0)


def test_from_distributed_reads_the_process_group(tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        s = RABCWeightedSampler.from_distributed(W, num_samples=50, seed=1)
        assert (s.num_replicas, s.rank) == (1, 0) and s.state_dict()["num_replicas"] == 1
    finally:
        torch.distributed.destroy_process_group()


def test_works_in_a_dataloader():
    s = RABCWeightedSampler(W, num_samples=70, seed=0, num_replicas=2, rank=1)
    loader = DataLoader(torch.arange(len(W)), batch_size=8, sampler=s)
    got = torch.cat(list(loader))
    assert len(loader) == 5 and got.shape == (35,) and (torch.from_numpy(W)[got] > 0).all()


# -- no-duplicates mode -----------------------------------------------------------------------------


def test_no_duplicates_mode_inclusion_is_proportional_to_weight():
    w = np.array([0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.8, 0.05, 0.6, 0.4], np.float32)
    s = RABCWeightedSampler(w, replacement=False, seed=3)
    epochs, included = 2000, np.zeros(len(w))
    for epoch in range(epochs):
        s.set_epoch(epoch)
        kept = _draws(s)
        assert len(kept) == len(np.unique(kept)) == len(s)  # each kept frame at most once
        included[kept] += 1
    assert included[w == 0].sum() == 0  # zero weight: never
    assert (included[w == 1.0] == epochs).all()  # full weight: always
    p = w / w.max()
    sigma = np.sqrt(p * (1 - p) * epochs) + 1e-9
    assert (np.abs(included - p * epochs) < 5 * sigma + 1e-6).all(), included / epochs


def test_no_duplicates_mode_order_changes_with_epoch_and_is_cached():
    s = RABCWeightedSampler(_rabc_like(2000), replacement=False, seed=1)
    a = _draws(s)
    assert s._kept is not None and np.shares_memory(s._kept, s._kept_frames())
    s.set_epoch(1)
    assert not np.array_equal(a, _draws(s))


# -- scale ------------------------------------------------------------------------------------------


def test_more_than_2_pow_24_frames():
    n = (1 << 24) + 10
    w = np.ones(n, np.float32)
    w[-1] = 0.0
    with pytest.raises(RuntimeError, match=r"number of categories cannot exceed 2\^24"):
        next(iter(WeightedRandomSampler(torch.from_numpy(w), num_samples=5)))
    s = RABCWeightedSampler(w, num_samples=4096, seed=0, chunk_size=4096)
    got = _draws(s)
    assert len(got) == 4096 and got.max() < n - 1 and got.max() > (1 << 24) - 4096  # draws across the range
    assert s.nbytes == 8 * n and s._window > 1  # the windowed search, checked against np.searchsorted:
    keys = np.random.default_rng([0, 0, 0]).standard_exponential(4097).cumsum()
    keys = keys[:-1] * (s._total / keys[-1])
    np.testing.assert_array_equal(
        np.sort(got), np.searchsorted(np.cumsum(w, dtype=np.float64), keys, "right")
    )


def test_int64_positions_past_2_pow_31_without_allocating():
    big, chunk = 1 << 40, 1 << 10  # 2^40 draws per epoch, never materialised
    s = RABCWeightedSampler(W, num_samples=big, seed=11, chunk_size=chunk)
    assert len(s) == big
    position = 3 * (1 << 31) - 2  # two draws before a chunk boundary past 2^32
    s.load_state_dict({**s.state_dict(), "position": position})
    got = _draws(s, 5)
    c, off = divmod(position, chunk)
    expected = np.concatenate([s._draw_chunk(0, c)[off:], s._draw_chunk(0, c + 1)[:3]])
    np.testing.assert_array_equal(got, expected)
    assert s.state_dict()["position"] == position + 5
    # rank 2 of 3 starts at global position 2 * L > 2^31: same values as the unsharded stream there
    shard = RABCWeightedSampler(W, num_samples=big, seed=11, chunk_size=chunk, num_replicas=3, rank=2)
    per_rank = -(-big // 3)
    assert len(shard) == per_rank
    s.load_state_dict({**s.state_dict(), "position": 2 * per_rank})
    np.testing.assert_array_equal(_draws(shard, 7), _draws(s, 7))


@pytest.mark.parametrize("replacement", [True, False])
def test_own_arrays_at_most_8_bytes_per_frame_and_weights_not_copied(replacement):
    w = _rabc_like(100_000)
    s = RABCWeightedSampler(w, replacement=replacement, seed=0)
    _draws(s, 10)
    assert 0 < s.nbytes <= 8 * len(w)
    if not replacement:
        assert s._weights is w  # by reference
        assert s.nbytes < 8 * len(w)  # only the kept frames


# -- RABCWeights-like objects -----------------------------------------------------------------------


def test_aligned_weights_object_is_accepted():
    obj = SimpleNamespace(weights=W, index=np.arange(len(W), dtype=np.int64))
    np.testing.assert_array_equal(
        _draws(RABCWeightedSampler(obj, num_samples=100)), _draws(RABCWeightedSampler(W, num_samples=100))
    )


@pytest.mark.parametrize("index", [np.arange(5, 15), np.arange(0, 20, 2), np.arange(9)])
def test_misaligned_weights_object_is_rejected(index):
    obj = SimpleNamespace(weights=W, index=index.astype(np.int64))
    with pytest.raises(
        ValueError, match=r"index is not 0\.\.9 .*yields dataset positions 0\.\.N-1.*for_indices"
    ):
        RABCWeightedSampler(obj)


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.zeros(5), "all 5 weights are zero, so there is nothing to sample"),
        (
            np.array([1.0, -0.5, 2.0, -1.0]),
            r"2 are negative, 0 NaN and 0 infinite \(first at position 1: -0.5\)",
        ),
        (
            np.array([1.0, 1.0, np.nan], np.float32),
            r"0 are negative, 1 NaN and 0 infinite \(first at position 2",
        ),
        (np.array([np.inf, 1.0]), r"0 are negative, 0 NaN and 1 infinite \(first at position 0"),
        (np.array([]), "weights is empty"),
        (np.ones((2, 3)), r"1-D array with one weight per dataset position, but got shape \(2, 3\)"),
    ],
)
@pytest.mark.parametrize("replacement", [True, False])
def test_bad_weights_raise(weights, match, replacement):
    with pytest.raises(ValueError, match=match):
        RABCWeightedSampler(weights, replacement=replacement)


def test_bad_weights_are_counted_across_blocks():
    w = np.ones(200_000)
    w[[70_000, 150_000, 150_001]] = -1.0
    with pytest.raises(ValueError, match=r"3 are negative, 0 NaN and 0 infinite \(first at position 70000"):
        RABCWeightedSampler(w)


def test_weights_above_one_raise():  # RA-BC weights lie in [0, 1] (so their float64 sum cannot overflow)
    with pytest.raises(ValueError, match=r"in \[0, 1\].*but 2 are above 1, 0 are negative.*position 0"):
        RABCWeightedSampler(np.array([1e308, 1e308]))


def test_bad_weight_types_raise():
    with pytest.raises(TypeError, match="weights should be a 1-D array or sequence of non-negative floats"):
        RABCWeightedSampler(["a", "b"])
    with pytest.raises(TypeError, match="real .float or integer. dtype, but got dtype=complex128"):
        RABCWeightedSampler(np.ones(3, np.complex128))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"num_samples": 0},
            ValueError,
            "num_samples should be a positive integer value, but got num_samples=0",
        ),
        ({"num_samples": -3}, ValueError, "but got num_samples=-3"),
        ({"num_samples": 2.5}, ValueError, "but got num_samples=2.5"),
        ({"num_samples": True}, ValueError, "but got num_samples=True"),
        (
            {"replacement": False, "num_samples": 5},
            ValueError,
            "num_samples must be None when replacement=False",
        ),
        ({"replacement": 1}, TypeError, "replacement should be a boolean value, but got replacement=1"),
        ({"drop_last": None}, TypeError, "drop_last should be a boolean value"),
        ({"seed": 1.5}, TypeError, r"seed should be an integer, but got seed=1.5 \(float\)"),
        ({"seed": "0"}, TypeError, "seed should be an integer"),
        ({"seed": -1}, ValueError, "seed should be a non-negative integer, but got seed=-1"),
        (
            {"chunk_size": 0},
            ValueError,
            "chunk_size should be a positive integer value, but got chunk_size=0",
        ),
        ({"num_replicas": 0, "rank": 0}, ValueError, "num_replicas should be a positive integer value"),
        (
            {"num_replicas": 2, "rank": 3},
            ValueError,
            r"Invalid rank 3, rank should be in the interval \[0, 1\]",
        ),
        (
            {"num_replicas": 2, "rank": -1},
            ValueError,
            r"Invalid rank -1, rank should be in the interval \[0, 1\]",
        ),
        ({"num_replicas": 2}, ValueError, "num_replicas=2 was given without rank"),
        ({"rank": 1}, ValueError, "rank=1 was given without num_replicas"),
        (
            {"num_samples": 3, "num_replicas": 4, "rank": 0, "drop_last": True},
            ValueError,
            "num_samples=3 with drop_last=True leaves no sample for each of 4 replicas",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        RABCWeightedSampler(W, **kwargs)


def test_bad_epoch_raises():
    with pytest.raises(ValueError, match="epoch should be a non-negative integer, but got epoch=-1"):
        RABCWeightedSampler(W).set_epoch(-1)


def test_set_epoch_that_discards_a_pending_resume_warns(caplog):
    s = RABCWeightedSampler(W, num_samples=40, chunk_size=8)
    s.set_epoch(2)
    it = iter(s)
    next(it)
    state = s.state_dict()
    fresh = RABCWeightedSampler(W, num_samples=40, chunk_size=8)
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # the saved epoch: the resume stays, no warning
    assert not caplog.records
    fresh.set_epoch(0)  # e.g. accelerate's first pass in a new process
    assert "set_epoch(0) discards the resume loaded for epoch 2 at position 1" in caplog.text
    assert len(_draws(fresh)) == 40  # epoch 0 from its start
