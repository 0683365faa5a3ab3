"""RA-BC in a plain PyTorch loop: the smallest complete loops with the sampler and with the loss.

    python examples/custom_loop.py                  # both modes
    python examples/custom_loop.py --mode sampler   # weighted sampling, unchanged loss
    python examples/custom_loop.py --mode loss      # uniform shuffle, RA-BC weighted loss

The same per-frame weights can be used in two ways; use one of them, not both (sampling by w and also
weighting the loss by w would weight each frame by w^2):

* sampler: frame i is drawn with probability proportional to w_i, the loss stays plain MSE;
* loss: frames are shuffled uniformly and each sample's loss is weighted by w_i (SARM Eq. 8-9).

The weights come from the progress file shipped with `rabc`; the dataset is synthetic (random observations
and actions, one item per frame of that file), so this shows the wiring, not a policy worth training.
Under plain DDP (a DataLoader per rank) build the sampler with `RABCWeightedSampler.from_distributed(...)`;
under accelerate or LeRobot leave it unsharded, they split the batches themselves.
"""

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import rabc
from rabc import RABCLoss, RABCWeightedSampler, RABCWeights

PROGRESS = Path(rabc.__file__).parent / "data" / "example_progress.parquet"  # LeRobot's sarm_progress schema
BATCH_SIZE, EPOCHS, OBS_DIM, ACT_DIM = 64, 3, 8, 2


class FrameDataset(Dataset):
    """Item i is frame i of the progress file: its global `index`, an observation and an action."""

    def __init__(self, index: torch.Tensor, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.index = index
        self.observation = torch.randn(len(index), OBS_DIM, generator=g)
        self.action = torch.tanh(self.observation @ torch.randn(OBS_DIM, ACT_DIM, generator=g))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"index": self.index[i], "observation": self.observation[i], "action": self.action[i]}


def make_policy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(OBS_DIM, 64), nn.ReLU(), nn.Linear(64, ACT_DIM))


def train_with_sampler(weights: RABCWeights, dataset: Dataset) -> dict:
    """(a) Weighted sampling: low-progress frames are drawn less often; the loss is plain MSE."""
    # The progress file's index is 0..N-1, the dataset's positions; for a subset of a dataset pass
    # `weights.for_indices(global_indices_of_the_subset)` instead.
    sampler = RABCWeightedSampler(weights, num_samples=4096, seed=0)  # 4096 draws per epoch
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler)
    policy = make_policy()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    checkpoint, seen = None, []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)  # a new order each epoch, a pure function of (seed, epoch)
        total = 0.0
        for step, batch in enumerate(loader):
            loss = nn.functional.mse_loss(policy(batch["observation"]), batch["action"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            if epoch == 1:
                seen.append(batch["index"])  # only to check the resume below
            if epoch == 1 and step == 9:  # a checkpoint mid-epoch, after 10 optimizer steps
                # The DataLoader prefetches, so the sampler's own position is a little ahead of training:
                # store the consumed count instead (steps done x batch size, on this rank).
                state = {**sampler.state_dict(), "position": (step + 1) * BATCH_SIZE}
                checkpoint = {"sampler": state, "step": step + 1, "policy": policy.state_dict(),
                              "optimizer": optimizer.state_dict()}  # fmt: skip
        print(f"sampler epoch {epoch}: mean loss {total / len(loader):.4f}")
    return {"checkpoint": checkpoint, "rest_of_epoch_1": seen[checkpoint["step"] :]}


def resume_from(weights: RABCWeights, dataset: Dataset, checkpoint: dict) -> list[torch.Tensor]:
    """What a restarted run does: the same sampler arguments, its saved state, the rest of the epoch.

    (The policy and optimizer are restored from the same checkpoint as usual; omitted here.)
    """
    sampler = RABCWeightedSampler(weights, num_samples=4096, seed=0)
    sampler.load_state_dict(checkpoint["sampler"])
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler)
    sampler.set_epoch(checkpoint["sampler"]["epoch"])  # the same epoch keeps the pending resume
    return [batch["index"] for batch in loader]  # the rest of the epoch; the next set_epoch starts at 0


def train_with_loss(weights: RABCWeights, dataset: Dataset) -> None:
    """(b) Weighted loss: uniform shuffling; each sample's loss is weighted by its frame's weight."""
    shuffle = torch.Generator().manual_seed(0)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, drop_last=True, generator=shuffle)
    # Per-sample losses (reduction="none"); RABCLoss finds each sample's weight by batch["index"].
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=weights)
    policy = make_policy()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for epoch in range(EPOCHS):
        total = 0.0
        for batch in loader:
            loss = loss_fn(policy(batch["observation"]), batch["action"], batch=batch)  # or index=...
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        stats = loss_fn.last_stats  # the last batch's raw weights: plain floats for any logger
        print(
            f"loss epoch {epoch}: mean loss {total / len(loader):.4f} (last batch mean weight "
            f"{stats['mean_weight']:.2f}, zero-weight fraction {stats['zero_weight_fraction']:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["sampler", "loss", "both"], default="both")
    args = parser.parse_args()
    weights = RABCWeights.from_progress(PROGRESS, chunk_size=30, kappa="auto")  # chunk_size: the action chunk
    dataset = FrameDataset(torch.from_numpy(weights.index))
    print(f"{len(dataset)} frames, mean weight {weights.mean_weight:.3f}")
    if args.mode in ("sampler", "both"):
        run = train_with_sampler(weights, dataset)
        resumed = resume_from(weights, dataset, run["checkpoint"])
        expected = run["rest_of_epoch_1"]
        if len(resumed) != len(expected) or not all(map(torch.equal, resumed, expected)):
            raise SystemExit("resume: the resumed batches differ from the uninterrupted run")
        print(
            f"mode=sampler done: resumed after {run['checkpoint']['step']} steps, the other "
            f"{len(resumed)} batches of epoch 1 match the uninterrupted run"
        )
    if args.mode in ("loss", "both"):
        train_with_loss(weights, dataset)
        print("mode=loss done")


if __name__ == "__main__":
    main()
