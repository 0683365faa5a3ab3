"""accelerate's `prepare_data_loader` with `RABCWeightedSampler`, ranks simulated in one process.

accelerate shards a map-style DataLoader by wrapping its batch sampler in `BatchSamplerShard`: every
process iterates the full batch stream and keeps batches `r, r + P, ...` (or slice r of every batch with
`split_batches=True`). So the sampler must yield the same full stream on every rank: `num_replicas=None`.
`DataLoaderShard.__iter__` calls `set_epoch(self.iteration)` first and increments `iteration` after a
complete pass; `set_epoch` reaches our sampler as `loader.batch_sampler.batch_sampler.sampler`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard, SeedableRandomSampler, prepare_data_loader
from torch.utils.data import DataLoader

from rabc import RABCWeightedSampler

P, BS, SEED = 2, 8, 3  # processes, per-process batch size, sampler seed
W = np.random.default_rng(0).random(50).astype(np.float32)
DATASET = torch.arange(len(W))  # item i is position i


def _sampler(num_samples: int, **kwargs) -> RABCWeightedSampler:
    return RABCWeightedSampler(W, num_samples=num_samples, seed=SEED, chunk_size=16, **kwargs)


def _rank0_share(stream: np.ndarray) -> np.ndarray:
    """Rank 0's draws without padding: batches 0, P, 2P, ... of the stream."""
    return stream.reshape(-1, BS)[::P].ravel()


def _stream(num_samples: int, epoch: int = 0) -> np.ndarray:
    """The unsharded sampler's stream: what every rank's sampler yields under accelerate."""
    sampler = _sampler(num_samples)
    sampler.set_epoch(epoch)
    return np.fromiter(sampler, np.int64)


def _prepared(rank: int, sampler, drop_last: bool = False, **kwargs):
    """One simulated process: its own sampler and DataLoader, prepared as accelerate does on rank `rank`."""
    loader = DataLoader(DATASET, batch_size=BS, sampler=sampler, drop_last=drop_last)
    return prepare_data_loader(loader, num_processes=P, process_index=rank, put_on_device=False, **kwargs)


def _inner_sampler(prepared):
    """DataLoaderShard -> BatchSamplerShard -> the DataLoader's BatchSampler -> our sampler."""
    return prepared.batch_sampler.batch_sampler.sampler


def _interleave(per_rank: list[list[torch.Tensor]]) -> np.ndarray:
    """Step by step, rank 0's batch then rank 1's: the global order the ranks consume together."""
    steps = itertools.zip_longest(*per_rank, fillvalue=torch.empty(0, dtype=torch.int64))
    return torch.cat([b for step in steps for b in step]).numpy()


def _double_sharded(prepared) -> bool:
    """A cheap check for users: accelerate shards the batches *and* the sampler shards too."""
    return isinstance(prepared.batch_sampler, BatchSamplerShard) and _inner_sampler(prepared).num_replicas > 1


# -- set_epoch -----------------------------------------------------------------------------------------


def test_set_epoch_on_the_prepared_loader_reaches_the_sampler():
    samplers = [_sampler(128) for _ in range(P)]
    loaders = [_prepared(r, s) for r, s in enumerate(samplers)]
    assert all(_inner_sampler(p) is s for p, s in zip(loaders, samplers, strict=True))
    for epoch in (3, 1):
        for p in loaders:
            p.set_epoch(epoch)
        assert [s.epoch for s in samplers] == [epoch] * P
        np.testing.assert_array_equal(_interleave([list(p) for p in loaders]), _stream(128, epoch))


@pytest.mark.parametrize("auto_epoch", [False, True])
def test_each_complete_pass_is_the_next_epoch_without_set_epoch(auto_epoch):
    """accelerate's own counter: set_epoch(iteration) before each pass, iteration += 1 after it.

    With `auto_epoch=True` the epoch is not advanced twice: accelerate's set_epoch names it each pass.
    """
    samplers = [_sampler(128, auto_epoch=auto_epoch) for _ in range(P)]
    loaders = [_prepared(r, s) for r, s in enumerate(samplers)]
    for epoch in range(3):
        passes = [list(p) for p in loaders]
        assert [s.epoch for s in samplers] == [epoch] * P
        np.testing.assert_array_equal(_interleave(passes), _stream(128, epoch))
    assert [p.iteration for p in loaders] == [3] * P


def test_a_pass_left_early_does_not_advance_the_epoch():
    sampler = _sampler(128)
    loader = _prepared(0, sampler)
    for _ in zip(range(2), loader, strict=False):  # `break` after 2 steps: the generator never finishes
        pass
    assert (loader.iteration, sampler.epoch) == (0, 0)
    np.testing.assert_array_equal(torch.cat(list(loader)).numpy(), _rank0_share(_stream(128, 0)))
    assert (loader.iteration, sampler.epoch) == (1, 0)


# -- who shards: accelerate, not the sampler --------------------------------------------------------------


@pytest.mark.parametrize(
    ("split_batches", "even_batches", "drop_last", "total", "counts"),
    [
        (False, True, False, 112, [7, 7]),  # 100 draws padded to 7 steps x 2 ranks x 8 from the start
        (False, False, False, 100, [7, 6]),  # no padding: rank 0 ends with 4 draws, rank 1 a batch short
        (False, True, True, 96, [6, 6]),  # the last partial batch is dropped
        (True, True, False, 104, [13, 13]),  # batches of 8 split 4 + 4; the last (4 draws) padded to 8
        (True, False, False, 100, [13, 12]),  # the last batch's 4 draws all go to rank 0
    ],
)
def test_ranks_take_disjoint_slices_of_the_one_stream(split_batches, even_batches, drop_last, total, counts):
    samplers = [_sampler(100) for _ in range(P)]  # unsharded: every rank yields the same 100 draws
    loaders = [
        _prepared(r, s, drop_last, split_batches=split_batches, even_batches=even_batches)
        for r, s in enumerate(samplers)
    ]
    per_rank = [list(p) for p in loaders]
    assert [len(b) for b in per_rank] == counts
    # len() agrees, except that with split_batches and uneven batches accelerate reports 13 for rank 1 too
    assert [len(p) for p in loaders] == ([13, 13] if split_batches and not even_batches else counts)
    # Together the ranks consume the stream once, in order, and nothing else: the only extra draws are
    # even_batches' padding, which wraps around to the start of the epoch's stream.
    np.testing.assert_array_equal(_interleave(per_rank), np.resize(_stream(100), total))
    assert not any(_double_sharded(p) for p in loaders)


def test_double_sharding_leaves_each_rank_a_quarter_and_half_the_stream_unseen():
    """What `from_distributed` under `accelerate launch` would do: the sampler shards, then accelerate."""
    samplers = [_sampler(128, num_replicas=P, rank=r) for r in range(P)]
    loaders = [_prepared(r, s) for r, s in enumerate(samplers)]
    stream = _stream(128).reshape(-1, BS)  # 16 batches of the global stream
    got = [torch.cat(list(p)).numpy() for p in loaders]
    # rank r's sampler yields batches 8r..8r+7; accelerate then keeps every P-th of those
    np.testing.assert_array_equal(got[0], stream[0:8:2].ravel())
    np.testing.assert_array_equal(got[1], stream[9:16:2].ravel())
    assert [len(g) for g in got] == [128 // 4] * P  # half the steps per epoch
    assert all(_double_sharded(p) for p in loaders)


def test_use_seedable_sampler_keeps_our_sampler():
    """accelerate swaps only a `RandomSampler` for its `SeedableRandomSampler`; ours is kept."""
    sampler = _sampler(128)
    prepared = _prepared(0, sampler, use_seedable_sampler=True, data_seed=1)
    assert _inner_sampler(prepared) is sampler
    np.testing.assert_array_equal(torch.cat(list(prepared)).numpy(), _rank0_share(_stream(128)))
    shuffled = DataLoader(DATASET, batch_size=BS, shuffle=True)  # the replaced case, for contrast
    prepared = prepare_data_loader(
        shuffled, num_processes=P, process_index=0, put_on_device=False, use_seedable_sampler=True
    )
    assert isinstance(_inner_sampler(prepared), SeedableRandomSampler)


# -- mid-epoch resume under accelerate ----------------------------------------------------------------


@pytest.mark.parametrize("set_epoch", [True, False])
def test_mid_epoch_resume_with_the_global_consumed_count(set_epoch):
    """Every rank iterates the global stream, so the consumed count is `steps * BS * P` on every rank."""
    epoch, k = 1, 3
    full = [_sampler(100) for _ in range(P)]
    loaders = [_prepared(r, s) for r, s in enumerate(full)]
    for p in loaders:
        p.set_epoch(epoch)
    expected = [list(p) for p in loaders]  # 7 batches per rank; the 7th of rank 0 is 4 draws + 4 padding

    states = []
    for r in range(P):
        sampler = _sampler(100)
        loader = _prepared(r, sampler)
        loader.set_epoch(epoch)
        for _ in zip(range(k), loader, strict=False):
            pass
        assert sampler.state_dict()["position"] > k * BS * P  # accelerate and the DataLoader read ahead
        states.append({**sampler.state_dict(), "position": k * BS * P})
    assert states[0] == states[1]

    resumed, samplers = [], []
    for r in range(P):
        sampler = _sampler(100)
        sampler.load_state_dict(states[r])
        loader = _prepared(r, sampler)  # a fresh prepared loader has iteration 0 ...
        if set_epoch:
            loader.set_epoch(epoch)  # ... so name the saved epoch, or its set_epoch(0) drops the resume
        resumed.append(list(loader))
        samplers.append(sampler)
    if not set_epoch:
        assert [s.epoch for s in samplers] == [0] * P
        np.testing.assert_array_equal(_interleave(resumed)[:100], _stream(100, 0))  # epoch 0 from the start
        return
    for got, want in zip(resumed, expected, strict=True):
        assert len(got) == len(want) - k
        for a, b in zip(got[:-1], want[k:-1], strict=True):
            torch.testing.assert_close(a, b)
    # The padding of the tail comes from the first batches of *this* pass, so it differs after a resume:
    # rank 0's last batch is the stream's last 4 draws, then the 4 draws at the resumed position.
    stream = _stream(100, epoch)
    np.testing.assert_array_equal(resumed[0][-1].numpy(), np.concatenate([stream[96:], stream[48:52]]))
    np.testing.assert_array_equal(expected[0][-1].numpy(), np.concatenate([stream[96:], stream[:4]]))
