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

Version 2 (issue 14, written down before any v2 run): a success's last stage span ends at its first
success (`last_span_end`), and every dataset records its injected mistake as a mistake span
(`sarm.demo.collect.mistake_record`: the injected segment until ground-truth progress is back where
it was) and the success flag as the outcome. `EVALUATION_V2` is the comparison plan of "Evidence v2":
RA-BC with every reward model's weights, SARM under each label policy, 5 training seeds per arm, and
`summary.json` (`SUMMARY_SCHEMA`). `DEFAULT_EVALUATION` stays the v1 plan of the committed results.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = [
    "DEFAULT_EVALUATION",
    "DEFAULT_PROTOCOL",
    "EVALUATION_V2",
    "LABEL_POLICIES",
    "METHODS",
    "METHODS_V2",
    "MISTAKES",
    "REWARD_MODELS_V2",
    "SUMMARY_SCHEMA",
    "Evaluation",
    "Protocol",
    "sarm_model_name",
]

MISTAKES = ("pause", "detour", "drop_regrasp", "random")
LAST_SPAN_ENDS = ("first_success", "last_frame")


@dataclass(frozen=True)
class Protocol:
    """How demonstrations are recorded and which mistakes are injected (all lengths in env steps)."""

    version: int = 2
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
    # where a successful episode's last stage span ends: at its first success (v2; the frames recorded
    # after it are labelled finished) or at its last recorded frame (v1: SARM ended successes near 0.87)
    last_span_end: str = "first_success"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.noisy_share <= 1:
            raise ValueError(f"noisy_share should lie in [0, 1], but got {self.noisy_share}")
        unknown = sorted(set(self.mistakes) - set(MISTAKES))
        if unknown or not self.mistakes:
            raise ValueError(f"mistakes should be a non-empty subset of {MISTAKES}, but got {self.mistakes}")
        if self.last_span_end not in LAST_SPAN_ENDS:
            raise ValueError(
                f"last_span_end should be one of {list(LAST_SPAN_ENDS)}, but got {self.last_span_end!r}"
            )
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


# ---------------------------------------------------------------------------------------- Evidence v2

LABEL_POLICIES = (  # (--mistakes, --failures) of every SARM of v2 (docs/labels.md)
    ("ignore", "keep"),  # the annotator's running-maximum spans as they are (v1's labels)
    ("hold", "keep"),
    ("ignore", "truncate"),
    ("hold", "truncate"),
    ("ignore", "exclude"),
    ("hold", "exclude"),
)


def sarm_model_name(mistakes: str, failures: str) -> str:
    """The reward-model name of a SARM under a label policy: "sarm_hold_truncate"."""
    return f"sarm_{mistakes}_{failures}"


# every reward model of v2, on the same features, size and budget (1,500 steps, batch 32, seed 0);
# mistake spans come from the protocol's own record (`mistake_record`), outcomes from the success flag
REWARD_MODELS_V2 = (
    *(sarm_model_name(m, f) for m, f in LABEL_POLICIES),  # stages + rewind (p = 0.8)
    "linear_time",  # one stage, labels linear in time, no rewind
    "rewind_single",  # one stage with rewind (ReWiND-style)
)

METHODS_V2 = (  # one name per policy arm; every arm: same policy, data, budget, 5 seeds, 50 rollouts
    "bc_all",
    "bc_clean",  # oracle: clean successful episodes only
    "rabc_true_progress",  # sampler, weights from ground-truth progress
    "rabc_sampler_sarm_ignore_keep",  # v1's rabc_sampler / rabc_loss (SARM, the annotator's labels)
    "rabc_loss_sarm_ignore_keep",
    "rabc_sampler_sarm_best",  # SARM under the label policy chosen by `best_sarm_rule`
    "rabc_loss_sarm_best",
    "rabc_sampler_linear_time",
    "rabc_loss_linear_time",
    "rabc_sampler_rewind_single",
    "rabc_loss_rewind_single",
)

# summary.json beside RESULTS.md; "x" is a float (NaN where undefined, e.g. AUROC with one class)
SUMMARY_SCHEMA = {
    "protocol": {"data": "asdict(Protocol)", "evaluation": "asdict(Evaluation)", "budget": "{...}"},
    "policies": {"<method>": {"<task>": ["success rate of seed 0", "...", "seed 4"]}},
    "reward_models": {
        "<model>": {"<task>": {"voc": "x", "auroc_held_out": "x", "auroc_rollouts": "x", "demo_mse": "x"}}
    },
    "sarm_best": {"<task>": "<the SARM model name the rule chose>"},
    "wall_s": {"<task>": {"<stage>": "seconds"}},
    "cpu_s": {"<task>": {"<stage>": "CPU seconds of the task's process"}},
}


@dataclass(frozen=True)
class Evaluation:
    """How policies are compared: the same policy, data and step budget for every method."""

    version: int = 1
    methods: tuple[str, ...] = METHODS
    train_seeds: tuple[int, ...] = (0, 1, 2)
    rollouts: int = 50  # simulator rollouts per (method, seed), new goals not seen in training
    chunk_size: int = 10  # policy action chunk = RA-BC Delta
    steps: int = 3000  # optimiser steps per policy, whatever the method
    batch_size: int = 256
    kappa: float | str = "auto"  # RA-BC kappa for the main table
    kappa_sweep: tuple[float | str, ...] = (0.0, 0.01, "auto", 0.05)
    success_rule: tuple[float, float] = (0.8, 0.6)  # final progress > a and mean of last third > b
    reward_models: tuple[str, ...] = ("sarm", "linear_time", "rewind_single")
    # how the "_sarm_best" arms choose their SARM, per task, from reward-model metrics only (never from
    # policy results): the highest held-out AUROC, ties by the lowest held-out demo MSE, then the first
    # in `reward_models`
    best_sarm_rule: str = ""
    # `sarm eval` metrics: VOC (value-order correlation: Spearman's rho between predicted progress and
    # frame index, mean over the clean successful held-out episodes), AUROC of final progress for
    # success vs failure (held-out episodes; `rollout_episodes` BC-all rollouts of seed 0 on unseen
    # goals), the paper's rule accuracy, demo MSE (clean successful held-out episodes, every 10th frame)
    metrics: tuple[str, ...] = ("demo_mse", "auroc_held_out", "auroc_rollouts", "rule_accuracy")

    def describe(self) -> str:
        return _describe(asdict(self))


def _describe(fields: dict) -> str:
    return "\n".join(f"  {key}: {json.dumps(value)}" for key, value in fields.items())


DEFAULT_PROTOCOL = Protocol()
DEFAULT_EVALUATION = Evaluation()  # v1: the plan of the committed 2026-11-21 results
EVALUATION_V2 = Evaluation(
    version=2,
    methods=METHODS_V2,
    train_seeds=(0, 1, 2, 3, 4),
    kappa_sweep=(),  # not rerun in v2: v1's sweep stands, the budget goes to seeds and arms
    reward_models=REWARD_MODELS_V2,
    best_sarm_rule="max auroc_held_out, then min demo_mse, then order in reward_models",
    metrics=("voc", "demo_mse", "auroc_held_out", "auroc_rollouts", "rule_accuracy"),
)
