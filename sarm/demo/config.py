"""`sarm demo`'s settings: budgets, SARM's label policy, torch threads, and the reward models' optimiser.

`DemoConfig` is the demo's one configuration (`DemoConfig.small()` the CI smoke run);
`reward_model_config` and `REWARD_MODEL_SIZE` are shared with the Meta-World benchmark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sarm.labels.mistakes import FAILURE_POLICIES, MISTAKE_POLICIES

__all__ = [
    "REWARD_MODEL_SIZE",
    "SMOKE_NOTICE",
    "DemoConfig",
    "auto_threads",
    "reward_model_config",
    "set_threads",
]

REWARD_MODEL_SIZE = {"hidden_dim": 128, "num_layers": 2, "num_heads": 4, "frame_gap": 5}  # SARM overrides


def reward_model_config(steps: int, *, seed: int = 0, evaluations: int = 1, rewind_probability: float = 0.8):
    """The reward models' optimisation settings, shared by the demo and the benchmark."""
    from sarm.training.loop import TrainConfig

    return TrainConfig(
        steps=steps, batch_size=32, lr=3e-4, min_lr=3e-5, warmup_steps=min(100, steps),
        eval_every=max(steps // evaluations, 1), checkpoint_every=steps,
        rewind_probability=rewind_probability, seed=seed,
    )  # fmt: skip


@dataclass(frozen=True)
class DemoConfig:
    task: str = "pick-place-v3"
    train_episodes: int = 60
    held_out_episodes: int = 16
    sarm_steps: int = 1500
    policy_steps: int = 2000
    rollouts: int = 50
    seed: int = 0
    kappa: float | str = "auto"
    threads: int | None = None  # torch.set_num_threads; None: one per core the load leaves free
    # SARM's label policy (docs/labels.md), from the recorded mistake spans and outcomes: the best one of
    # the Meta-World v2 benchmark (benchmarks/metaworld/results/RESULTS.md); "ignore", "keep" is v1's
    mistakes: str = "hold"
    failures: str = "exclude"
    smoke: bool = False  # tiny budgets: the numbers printed test that every stage runs, they are no result

    def __post_init__(self) -> None:
        for name, allowed in (("mistakes", MISTAKE_POLICIES), ("failures", FAILURE_POLICIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} should be one of {allowed}, but got {name}={getattr(self, name)!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads <= 0
        ):
            raise ValueError(
                f"threads should be a positive integer value or None, but got threads={self.threads!r}"
            )

    @classmethod
    def small(cls) -> DemoConfig:
        """The CI smoke run: every stage, tiny budgets."""
        return cls(
            train_episodes=12, held_out_episodes=4, sarm_steps=60, policy_steps=100, rollouts=4, smoke=True
        )


SMOKE_NOTICE = (
    "--small: a smoke run with tiny budgets; its numbers only show that every stage runs, they are not "
    "results (run without --small for those)"
)


def auto_threads(default: int, cores: int, load: float) -> int:
    """Torch threads for a machine whose other work keeps `load` cores busy (the 1-minute load average).

    Measured here (`benchmarks/bench_demo_threads.py`, docs/benchmarks.md): on 2 idle cores two threads
    train the demo's SARM 1.38x faster than one; with two other busy processes one thread is 2.4x
    (SARM) and 4.8x (policy) faster than two, because the threads wait for each other. So: one thread
    per core left free, at least one, never more than torch's `default`.
    """
    return max(1, min(default, round(cores - load)))


def set_threads(threads: int | None) -> str:
    """Apply `threads` to torch (None: `auto_threads` from the load when the demo starts) and say so."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
        return f"torch threads: {torch.get_num_threads()} (--threads {threads})"
    default, cores, load = torch.get_num_threads(), os.cpu_count() or 1, os.getloadavg()[0]
    chosen = auto_threads(default, cores, load)
    torch.set_num_threads(chosen)
    return (
        f"torch threads: {chosen} (auto: load {load:.1f} on {cores} cores, torch's default {default}; "
        "--threads N to choose)"
    )
