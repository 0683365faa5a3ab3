"""`TrainConfig`: the optimisation settings of `sarm.training.loop.train`, and their learning-rate schedule.

In its own module so that both the loop and `resume` (which compares a rerun's settings with the
checkpoint's) import it, and neither imports the other."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Optimisation settings (defaults: LeRobot's SARM preset, the paper's gradient clip)."""

    steps: int = 20_000  # optimiser steps in total
    batch_size: int = 32  # windows per step and per rank
    lr: float = 5e-5  # peak learning rate after warmup
    min_lr: float = 5e-6  # the cosine ends here at `steps`
    warmup_steps: int = 500  # linear warmup from 0
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0  # max global gradient norm (opensarm: 1.0; LeRobot's generic default: 10)
    teacher_forcing: float = 0.75  # chance a sample's tau sees its ground-truth stage
    rewind_probability: float = 0.8
    language_negative_probability: float = 0.2
    masked_loss: bool = True  # average losses over valid slots only (LeRobot: over all slots)
    eval_every: int = 1000  # steps between evaluations (and at the end) when an eval set is given
    eval_batch_size: int = 64
    checkpoint_every: int = 1000  # steps between checkpoints (and at the end)
    log_every: int = 50  # steps between lines in metrics.jsonl
    num_workers: int = 0  # DataLoader workers
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size", "checkpoint_every", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(
                    f"{name} should be a positive integer, but got {name}={getattr(self, name)!r}"
                )
        if not 0 <= self.teacher_forcing <= 1:
            raise ValueError(f"teacher_forcing should be in [0, 1], but got {self.teacher_forcing}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr} should not exceed lr={self.lr}")
        self.betas = tuple(self.betas)

    def learning_rate(self, step: int) -> float:
        """Linear warmup to `lr`, then cosine down to `min_lr` at `steps`."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
