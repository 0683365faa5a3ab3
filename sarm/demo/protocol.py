"""The noisy-demonstration protocol of the Meta-World benchmark, fixed before any policy was trained.

Everything that decides which mistakes go into which demonstration lives here, in one frozen
dataclass that the benchmark and `sarm demo` print next to their results. Changing it is a new
protocol (bump `version`), not a tweak after seeing results.

Mistakes are human-like and come from a fixed menu. Each noisy episode gets exactly one segment, its
kind drawn uniformly:

* pause: the arm holds still (zero motion, gripper command unchanged) for a while, then the expert
  resumes;
* detour: the arm moves toward a random point 10-20 cm away, then the expert resumes;
* drop-and-regrasp: while carrying the object the gripper opens, the object falls, and the expert
  goes back to grasp it (the stage sequence regresses);
* random: uniformly random actions for a while, which often ends in failure.

The segment starts at a random step inside the expert's manipulation phase (see `onset`), and the
simulator's own success flag at the last recorded step labels every episode, noisy or clean.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["DEFAULT_EVALUATION", "DEFAULT_PROTOCOL", "METHODS", "MISTAKES", "Evaluation", "Protocol"]

MISTAKES = ("pause", "detour", "drop_regrasp", "random")


@dataclass(frozen=True)
class Protocol:
    """How demonstrations are recorded and which mistakes are injected (all lengths in env steps)."""

    version: int = 1
    tasks: tuple[str, ...] = ("pick-place-v3", "assembly-v3", "shelf-place-v3")
    noisy_share: float = 0.5  # fraction of episodes that get one mistake
    mistakes: tuple[str, ...] = MISTAKES  # drawn uniformly per noisy episode
    pause_steps: tuple[int, int] = (15, 40)  # inclusive ranges, drawn uniformly
    detour_steps: tuple[int, int] = (15, 30)
    detour_distance_m: tuple[float, float] = (0.10, 0.20)
    drop_open_steps: tuple[int, int] = (8, 15)  # gripper forced open while carrying
    random_steps: tuple[int, int] = (20, 40)
    onset: tuple[int, int] = (5, 45)  # first step of the segment (drop_regrasp: first carrying step after it)
    max_steps: int = 220  # episode cap (the experts succeed in 50-100 steps)
    steps_after_success: int = 10  # recording stops this long after the first success
    image_size: int = 64  # rendered RGB, corner camera
    fps: int = 30
    seed: int = 0  # episode e of task t uses seed (seed, t, e) for its goal, mistake and noise
    held_out_share: float = 0.2  # last episodes of each task: reward-model evaluation only
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.noisy_share <= 1:
            raise ValueError(f"noisy_share should lie in [0, 1], but got {self.noisy_share}")
        unknown = sorted(set(self.mistakes) - set(MISTAKES))
        if unknown or not self.mistakes:
            raise ValueError(f"mistakes should be a non-empty subset of {MISTAKES}, but got {self.mistakes}")
        for name in ("pause_steps", "detour_steps", "drop_open_steps", "random_steps", "onset"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} should be a range (lo, hi) with 0 <= lo <= hi, but got {(lo, hi)}")

    def describe(self, task: str | None = None) -> str:
        """The protocol, one field a line, to print with every result.

        With `task`, the `tasks` line names only that task (a run of one task prints the task it ran);
        its seeds still come from its position in `tasks`, see `sarm.demo.collect.collect`.
        """
        fields = asdict(self)
        if task is not None:
            fields = {("task" if k == "tasks" else k): task if k == "tasks" else v for k, v in fields.items()}
        return _describe(fields)


METHODS = (
    "bc_all",  # behaviour cloning on every training episode
    "rabc_sampler",  # RA-BC weights (SARM progress) through RABCWeightedSampler
    "rabc_loss",  # RA-BC weights (SARM progress) through RABCLoss
    "bc_clean",  # BC on the clean episodes only: an oracle real users do not have
    "rabc_true_progress",  # RA-BC weights from ground-truth progress (a perfect reward model)
)


@dataclass(frozen=True)
class Evaluation:
    """How policies are compared: the same policy, data and step budget for every method."""

    methods: tuple[str, ...] = METHODS
    train_seeds: tuple[int, ...] = (0, 1, 2)
    rollouts: int = 50  # simulator rollouts per (method, seed), new goals not seen in training
    chunk_size: int = 10  # policy action chunk = RA-BC Delta
    steps: int = 3000  # optimiser steps per policy, whatever the method
    batch_size: int = 256
    kappa: float | str = "auto"  # RA-BC kappa for the main table
    kappa_sweep: tuple[float | str, ...] = (0.0, 0.01, "auto", 0.05)
    success_rule: tuple[float, float] = (0.8, 0.6)  # final progress > a and mean of last third > b

    def describe(self) -> str:
        return _describe(asdict(self))


def _describe(fields: dict) -> str:
    return "\n".join(f"  {key}: {json.dumps(value)}" for key, value in fields.items())


DEFAULT_PROTOCOL = Protocol()
DEFAULT_EVALUATION = Evaluation()
