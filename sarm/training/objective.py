"""SARM's training loss and held-out evaluation.

Loss per head (SARM paper, LeRobot's `_train_step`), with two fixes that are switches:
    stage: cross-entropy of the stage logits against floor(y);   tau: MSE of tau against y - floor(y)
    masked=True   averages over valid slots only (slot < lengths); LeRobot averages over all slots, so
                  padding trains toward stage 0 / tau 0 (masked=False reproduces that)
    teacher forcing: each SAMPLE's tau is conditioned on its ground-truth stage with probability
                  `teacher_forcing` (0.75), else on the predicted stage; LeRobot draws one coin per batch.
Coins come from `np.random.default_rng([seed, epoch, key, 1])` (the rewind coins use `[seed, epoch, key]`:
a separate stream), so they depend on the sample and the epoch, not on the batch.

Evaluation (`evaluate`) reads every anchor's progress at the window's current slot on clean windows
(no rewind, no language negatives): demo MSE of normalised progress against Formula-2 labels, and stage
accuracy over valid slots.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

__all__ = ["evaluate", "sarm_loss", "teacher_coins"]

_TEACHER_STREAM = 1


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DDP / accelerate wrappers keep the model in .module


def teacher_coins(keys: Tensor, probability: float, seed: int, epoch: int = 0) -> Tensor:
    """(b,) bool: True where a sample's tau is conditioned on its ground-truth stage."""
    draws = [np.random.default_rng([seed, epoch, int(k), _TEACHER_STREAM]).random() for k in keys.tolist()]
    return torch.tensor(draws) < probability


def sarm_loss(
    model: nn.Module,
    batch: Mapping,
    *,
    teacher_forcing: float = 0.75,
    seed: int = 0,
    masked: bool = True,
    epoch: int = 0,
) -> tuple[Tensor, dict[str, float]]:
    """Total loss (sum over heads of CE + MSE) and per-head values for logging.

    `epoch` (with `seed` and each sample's key) seeds the teacher-forcing coins; the loop gives every
    sample of its stream a unique key, so it leaves epoch at 0.
    """
    config = _unwrap(model).config
    device = next(model.parameters()).device
    heads = list(config.heads)
    missing = [h for h in heads if h not in batch["targets"]]
    if missing:
        raise ValueError(
            f"batch has targets for {sorted(batch['targets'])} but the model has heads {heads}: heads "
            f"{missing} would stay untrained (and DDP would fail); give WindowDataset targets for every head "
            "or build the model with only the heads you have labels for"
        )
    lengths = batch["lengths"].to(device)
    targets = {h: batch["targets"][h].to(device) for h in heads}
    teacher = teacher_coins(batch["key"], teacher_forcing, seed, epoch).to(device)
    stages = {h: targets[h].floor().long().clamp(0, config.num_stages(h) - 1) for h in heads}
    prior = {h: torch.where(teacher[:, None], stages[h], -1) for h in heads}
    out = model(
        batch["text_features"].to(device),
        batch["video_features"].to(device),
        batch["state_features"].to(device),
        lengths,
        heads=heads,
        stage_prior=prior,
    )
    slots = targets[heads[0]].shape[1]
    valid = (
        (torch.arange(slots, device=device)[None, :] < lengths[:, None])
        if masked
        else torch.ones(len(lengths), slots, dtype=torch.bool, device=device)
    )
    weight = valid.float() / valid.sum()
    total = torch.zeros((), device=device)
    stats: dict[str, float] = {}
    for h in heads:
        logits = out[h].stage_logits.float()
        ce = F.cross_entropy(logits.flatten(0, 1), stages[h].flatten(), reduction="none").view_as(weight)
        mse = (out[h].tau.float() - (targets[h] - targets[h].floor())) ** 2
        stage_loss, tau_loss = (ce * weight).sum(), (mse * weight).sum()
        total = total + stage_loss + tau_loss
        stats[f"{h}/stage_loss"], stats[f"{h}/tau_loss"] = stage_loss.item(), tau_loss.item()
    stats["loss"] = total.item()
    return total, stats


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, *, current_slot: int) -> dict[str, float]:
    """Demo MSE of normalised progress at `current_slot` and stage accuracy over valid slots, per head.

    `loader` yields collated clean windows (`RewindCollate` with both probabilities 0).
    """
    sarm = _unwrap(model)
    config = sarm.config
    sums: dict[str, float] = {}
    for batch in loader:
        lengths = batch["lengths"]
        valid = torch.arange(batch["video_features"].shape[1])[None, :] < lengths[:, None]
        for head in config.heads:
            if head not in batch["targets"]:
                continue
            y = batch["targets"][head]
            pred = sarm.predict(
                batch["text_features"],
                batch["video_features"],
                batch["state_features"],
                lengths,
                head=head,
                tasks=batch["tasks"],
            )
            schemas = config.task_schemas(head)
            anchors = y[:, current_slot].double().numpy()
            tasks = np.asarray(batch["tasks"], dtype=object)
            truth = np.empty(len(anchors))
            for task in set(batch["tasks"]):  # one vectorised Formula-2 call per task in the batch
                rows = tasks == task
                truth[rows] = schemas.schema_for(task).progress(anchors[rows])
            err = (pred.progress[:, current_slot].cpu().double().numpy() - truth) ** 2
            stage = y.floor().long().clamp(0, config.num_stages(head) - 1)
            hits = (pred.stage.cpu() == stage) & valid
            for name, value in (
                (f"{head}/sq_err", float(err.sum())),
                (f"{head}/count", float(len(err))),
                (f"{head}/hits", float(hits.sum())),
                (f"{head}/slots", float(valid.sum())),
            ):
                sums[name] = sums.get(name, 0.0) + value
    metrics = {}
    for head in config.heads:
        if sums.get(f"{head}/count"):
            metrics[f"{head}/demo_mse"] = sums[f"{head}/sq_err"] / sums[f"{head}/count"]
            metrics[f"{head}/stage_accuracy"] = sums[f"{head}/hits"] / sums[f"{head}/slots"]
    return metrics
