"""The sampler's iteration path: the stream is the chunks' definition, positions are exact at every
int (piece boundaries included), and `batches()` cuts the same stream for `DataLoader(batch_sampler=)`."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import rabc.sampler as sampler_module
from rabc import RABCWeightedSampler
from rabc.sampler import RABCBatchSampler

N = 500


@pytest.fixture
def weights():
    w = np.random.default_rng(0).random(N)
    w[::7] = 0.0
    return w


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(sampler_module, "_PIECE", 7)  # many piece boundaries in a short stream


def test_the_stream_is_the_chunks_in_order(weights, small_pieces):
    s = RABCWeightedSampler(weights, num_samples=300, seed=3, chunk_size=64)
    s.set_epoch(2)
    chunks = np.concatenate([s._draw_chunk(2, c) for c in range(5)])[:300]
    assert list(s) == chunks.tolist()


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("shard", [None, (3, 1)])
def test_position_is_exact_at_every_int_and_resume_continues_there(weights, small_pieces, replacement, shard):
    kwargs = {"chunk_size": 32, "seed": 1, "replacement": replacement}
    if shard:
        kwargs.update(num_replicas=shard[0], rank=shard[1])
    full = list(RABCWeightedSampler(weights, **kwargs))
    for stop in [0, 1, 6, 7, 8, 13, 14, 31, 32, 33, len(full) - 1, len(full)]:
        s = RABCWeightedSampler(weights, **kwargs)
        it = iter(s)
        head = list(itertools.islice(it, stop))
        assert s.state_dict()["position"] == stop
        state = s.state_dict()
        resumed = RABCWeightedSampler(weights, **kwargs)
        resumed.load_state_dict(state)
        assert head + list(resumed) == full


def test_the_iterator_yields_python_ints(weights):
    assert all(type(i) is int for i in itertools.islice(iter(RABCWeightedSampler(weights)), 50))


def test_batches_cut_the_same_stream(weights, small_pieces):
    s = RABCWeightedSampler(weights, num_samples=103, seed=5, chunk_size=16)
    flat = list(s)
    batches = list(s.batches(10))
    assert [i for b in batches for i in b] == flat
    assert [len(b) for b in batches] == [10] * 10 + [3] and len(s.batches(10)) == 11
    dropped = list(s.batches(10, drop_last=True))
    assert dropped == batches[:10] and len(s.batches(10, drop_last=True)) == 10


def test_batches_resume_at_the_next_batch(weights):
    s = RABCWeightedSampler(weights, num_samples=100, seed=2)
    full = list(s.batches(8))
    run = RABCWeightedSampler(weights, num_samples=100, seed=2).batches(8)
    it = iter(run)
    first = [next(it) for _ in range(4)]
    state = run.state_dict()
    assert state["position"] == 32
    again = RABCWeightedSampler(weights, num_samples=100, seed=2).batches(8)
    again.load_state_dict(state)
    assert first + list(again) == full


def test_batches_set_epoch_is_the_samplers(weights):
    b = RABCWeightedSampler(weights, num_samples=64, seed=0).batches(16)
    b.set_epoch(1)
    reference = RABCWeightedSampler(weights, num_samples=64, seed=0)
    reference.set_epoch(1)
    assert b.sampler.epoch == 1 and [i for batch in b for i in batch] == list(reference)
    reference.set_epoch(0)
    assert list(reference) != [i for batch in b for i in batch]  # epochs differ


def test_batches_in_a_dataloader(weights):
    data = torch.arange(N) * 10
    s = RABCWeightedSampler(weights, num_samples=40, seed=4)
    loader = DataLoader(data, batch_sampler=s.batches(16))
    got = [b.tolist() for b in loader]
    assert got == [[i * 10 for i in b] for b in s.batches(16)]
    assert [len(b) for b in got] == [16, 16, 8]


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_bad_batch_size_is_named_like_torch(weights, batch_size):
    with pytest.raises(
        ValueError, match=rf"batch_size should be a positive integer value, but got batch_size={batch_size!r}"
    ):
        RABCWeightedSampler(weights).batches(batch_size)


def test_bad_drop_last(weights):
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        RABCBatchSampler(RABCWeightedSampler(weights), 4, drop_last=1)
