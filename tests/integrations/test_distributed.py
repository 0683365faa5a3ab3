"""Plain DDP under `torchrun --nproc_per_node=2` (gloo, CPU): the sampler shards one global stream.

The worker (`_ddp_worker.py`) builds `RABCWeightedSampler.from_distributed(...)` and a DataLoader per
rank and saves what each rank drew; here the files are compared with an unsharded sampler built in
this process. One launch serves every test in the module.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rabc import RABCLoss, RABCWeightedSampler
from tests.integrations import _ddp_worker as worker
from tests.waiting import HANG_S

WORLD = 2
_weights = functools.cache(worker.weights)  # the worker's RABCWeights, built once here


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
        worker.__file__, str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_S, env=env)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"torchrun did not finish in 120 s\nstdout:\n{err.stdout}\nstderr:\n{err.stderr}")
    assert proc.returncode == 0, (
        f"torchrun exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return out


def _drawn(out: Path, case: str, epoch: int) -> list[np.ndarray]:
    return [np.load(out / f"{case}_rank{r}_epoch{epoch}.npy") for r in range(WORLD)]


def _unsharded(case: str, num_samples: int | None, epoch: int) -> np.ndarray:
    kwargs = dict(worker.CASES[case][0])
    if num_samples is not None:
        kwargs["num_samples"] = num_samples
    sampler = RABCWeightedSampler(_weights(), **kwargs)
    sampler.set_epoch(epoch)
    return np.fromiter(sampler, np.int64)


def test_from_distributed_reads_world_size_and_rank(launched):
    for rank in range(WORLD):
        meta = json.loads((launched / f"meta_rank{rank}.json").read_text())
        assert meta["world_size"] == WORLD
        for case in worker.CASES:
            assert (meta[case]["num_replicas"], meta[case]["rank"]) == (WORLD, rank)
        assert meta["replacement"]["len"] == 501  # ceil(1001 / 2)


@pytest.mark.parametrize("case", ["replacement", "replacement_workers"])
def test_ranks_draw_disjoint_slices_that_concatenate_to_the_unsharded_stream(launched, case):
    per_rank = -(-worker.CASES[case][0]["num_samples"] // WORLD)
    by_epoch = []
    for epoch in range(worker.EPOCHS):
        shards = _drawn(launched, case, epoch)
        assert [len(s) for s in shards] == [per_rank] * WORLD
        # rank r holds positions [r * L, (r + 1) * L) of the one stream of L * WORLD draws: disjoint, covering
        np.testing.assert_array_equal(np.concatenate(shards), _unsharded(case, per_rank * WORLD, epoch))
        by_epoch.append(np.concatenate(shards))
    assert not np.array_equal(by_epoch[0], by_epoch[1])  # set_epoch reached the sampler on every rank


def test_dataloader_workers_pass_the_same_indices(launched):
    for epoch in range(worker.EPOCHS):
        plain, through_workers = (_drawn(launched, c, epoch) for c in ("replacement", "replacement_workers"))
        for a, b in zip(plain, through_workers, strict=True):
            np.testing.assert_array_equal(a, b)


def test_no_duplicates_mode_ranks_are_disjoint_frames(launched):
    previous = None
    for epoch in range(worker.EPOCHS):
        shards = _drawn(launched, "no_duplicates", epoch)
        whole = _unsharded("no_duplicates", None, epoch)
        per_rank = len(whole) // WORLD
        assert [len(s) for s in shards] == [per_rank] * WORLD and per_rank > 1000
        np.testing.assert_array_equal(np.concatenate(shards), whole[: per_rank * WORLD])
        assert np.intersect1d(shards[0], shards[1]).size == 0  # no frame on both ranks
        assert all(len(np.unique(s)) == len(s) for s in shards)  # nor twice on one
        assert previous is None or not np.array_equal(previous, np.concatenate(shards))
        previous = np.concatenate(shards)


def test_ddp_steps_with_rabc_loss_average_the_ranks_gradients(launched):
    initial = [np.load(launched / f"ddp_rank{r}_initial.npy") for r in range(WORLD)]
    final = [np.load(launched / f"ddp_rank{r}_final.npy") for r in range(WORLD)]
    np.testing.assert_array_equal(initial[0], initial[1])  # DDP broadcast rank 0's parameters
    np.testing.assert_array_equal(final[0], final[1])  # and kept the replicas in sync

    # Replay in one process: each rank's batch is its next BATCH_SIZE draws of epoch 0; DDP averages grads.
    model = nn.Linear(4, 1).double()
    nn.utils.vector_to_parameters(torch.from_numpy(initial[0]), model.parameters())
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=_weights())
    shards = [torch.from_numpy(s) for s in _drawn(launched, "replacement", 0)]
    bs = worker.BATCH_SIZE
    for step in range(worker.DDP_STEPS):
        grads = []
        for shard in shards:
            index = shard[step * bs : (step + 1) * bs]
            x, y = worker.features(index)
            model.zero_grad()
            loss_fn(model(x), y, index=index).backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        with torch.no_grad():
            params = nn.utils.parameters_to_vector(model.parameters())
            params -= worker.DDP_LR * torch.stack(grads).mean(dim=0)  # DDP: the mean of the ranks' gradients
            nn.utils.vector_to_parameters(params, model.parameters())
    expected = nn.utils.parameters_to_vector(model.parameters()).detach().numpy()
    assert not np.allclose(expected, initial[0])
    np.testing.assert_allclose(final[0], expected, rtol=1e-12, atol=1e-12)
