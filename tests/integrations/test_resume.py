"""Mid-epoch resume at the DataLoader level: stop after k steps, restore, finish the epoch identically.

A DataLoader reads ahead (with workers, `prefetch_factor` batches per worker), so the checkpoint stores
the consumed count, `k * batch_size` on this rank, as the sampler state's `position`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rabc import RABCWeightedSampler

BS, K, EPOCH = 8, 5, 2  # batch size, steps before the interruption, epoch interrupted
W = np.where(np.random.default_rng(1).random(300) < 0.15, 0.0, np.random.default_rng(2).random(300))
DATASET = torch.arange(len(W))  # item i is position i, so a batch shows what went through the workers
MODES = {
    "replacement": {"num_samples": 203, "chunk_size": 32},  # a partial last batch; chunks of 4 batches
    "no_duplicates": {"replacement": False},
}


def _loader(mode: str, num_workers: int, rank: int | None, auto_epoch: bool = False):
    shard = {} if rank is None else {"num_replicas": 2, "rank": rank}
    sampler = RABCWeightedSampler(W, seed=11, auto_epoch=auto_epoch, **MODES[mode], **shard)
    return sampler, DataLoader(DATASET, batch_size=BS, sampler=sampler, num_workers=num_workers)


def _interrupt(sampler, loader, num_workers: int) -> dict:
    """Train K steps of the current pass, then checkpoint the sampler with the consumed count."""
    for _ in zip(range(K), loader, strict=False):
        pass
    ahead = sampler.state_dict()["position"]
    assert ahead > K * BS if num_workers else ahead == K * BS  # workers prefetch: the sampler is ahead
    return {**sampler.state_dict(), "position": K * BS}


def _assert_batches_equal(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert [len(b) for b in got] == [len(b) for b in want]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("rank", [None, 0, 1], ids=["unsharded", "rank0", "rank1"])
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("mode", list(MODES))
def test_resume_with_set_epoch_gives_the_rest_of_the_epoch(mode, num_workers, rank):
    sampler, loader = _loader(mode, num_workers, rank)
    expected = {}
    for epoch in (EPOCH, EPOCH + 1):
        sampler.set_epoch(epoch)
        expected[epoch] = list(loader)
        assert len(expected[epoch]) == len(loader) > K + 2  # (no-duplicates: the length varies by epoch)

    sampler, loader = _loader(mode, num_workers, rank)
    sampler.set_epoch(EPOCH)
    state = _interrupt(sampler, loader, num_workers)

    sampler, loader = _loader(mode, num_workers, rank)  # a fresh process
    sampler.load_state_dict(state)
    sampler.set_epoch(EPOCH)  # the training loop's set_epoch: the same epoch keeps the resume
    _assert_batches_equal(list(loader), expected[EPOCH][K:])
    sampler.set_epoch(EPOCH + 1)
    _assert_batches_equal(list(loader), expected[EPOCH + 1])


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("mode", list(MODES))
def test_resume_with_auto_epoch_in_a_loop_that_never_calls_set_epoch(mode, num_workers):
    """LeRobot's / openpi's `cycle(loader)`: each pass is the next epoch, the resumed pass included."""
    sampler, loader = _loader(mode, num_workers, None, auto_epoch=True)
    expected = [list(loader) for _ in range(3)]  # epochs 0, 1, 2
    assert not torch.equal(torch.cat(expected[1]), torch.cat(expected[2]))

    sampler, loader = _loader(mode, num_workers, None, auto_epoch=True)
    _assert_batches_equal(list(loader), expected[0])
    state = _interrupt(sampler, loader, num_workers)  # K steps into epoch 1
    assert state["epoch"] == 1

    sampler, loader = _loader(mode, num_workers, None, auto_epoch=True)
    sampler.load_state_dict(state)
    _assert_batches_equal(list(loader), expected[1][K:])
    _assert_batches_equal(list(loader), expected[2])
    assert sampler.epoch == 2
