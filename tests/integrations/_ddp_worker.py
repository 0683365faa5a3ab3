"""Worker for test_distributed.py, launched by `torchrun --standalone --nproc_per_node=2 _ddp_worker.py OUT`.

Each rank builds `RABCWeightedSampler.from_distributed(...)` and a DataLoader of its own, iterates two
epochs and saves what it drew to `OUT/{case}_rank{r}_epoch{e}.npy`; then it takes a few DDP steps of a
tiny model with `RABCLoss` and saves the parameters. The test compares the files with an unsharded
sampler built in one process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import rabc
from rabc import RABCLoss, RABCWeightedSampler, RABCWeights

PROGRESS = Path(rabc.__file__).parent / "data" / "example_progress.parquet"
EPOCHS, BATCH_SIZE = 2, 8
# case -> (sampler kwargs, DataLoader num_workers); num_samples is over all ranks
CASES = {
    "replacement": ({"num_samples": 1001, "seed": 7, "chunk_size": 64}, 0),
    "replacement_workers": ({"num_samples": 1001, "seed": 7, "chunk_size": 64}, 1),
    "no_duplicates": ({"replacement": False, "seed": 7}, 1),
}
DDP_STEPS, DDP_LR = 3, 0.1


def weights() -> RABCWeights:
    return RABCWeights.from_progress(PROGRESS, chunk_size=30, kappa="auto")


def features(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic (x, y) pair per global frame index, for the DDP step."""
    t = index.double().unsqueeze(1) * torch.tensor([[0.01, 0.02, 0.03, 0.05]], dtype=torch.float64)
    x = torch.sin(t)
    return x, x.sum(dim=1, keepdim=True) * 0.5 + 1.0


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    w = weights()
    dataset = torch.arange(len(w))  # item i is position i: what a batch holds went through the workers
    meta = {}
    for case, (kwargs, num_workers) in CASES.items():
        sampler = RABCWeightedSampler.from_distributed(w, **kwargs)
        loader = DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler, num_workers=num_workers)
        meta[case] = {"num_replicas": sampler.num_replicas, "rank": sampler.rank, "len": len(sampler)}
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            drawn = torch.cat(list(loader)).numpy()
            np.save(out / f"{case}_rank{rank}_epoch{epoch}.npy", drawn)

    # DDP: each rank trains on its own batches; DDP all-reduces (averages) the gradients.
    sampler = RABCWeightedSampler.from_distributed(w, **CASES["replacement"][0])
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler)
    torch.manual_seed(rank)  # different initial values: DDP broadcasts rank 0's parameters
    model = DistributedDataParallel(nn.Linear(4, 1).double())
    optimizer = torch.optim.SGD(model.parameters(), lr=DDP_LR)
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=w)
    initial = [p.detach().clone() for p in model.parameters()]
    for _, index in zip(range(DDP_STEPS), loader, strict=False):
        x, y = features(index)
        loss = loss_fn(model(x), y, index=index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = [p.detach() for p in model.parameters()]
    for name, params in (("initial", initial), ("final", final)):
        np.save(out / f"ddp_rank{rank}_{name}.npy", torch.cat([p.flatten() for p in params]).numpy())
    (out / f"meta_rank{rank}.json").write_text(json.dumps({"world_size": world, **meta}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
