"""Draw docs/label_policies.png: one episode's progress labels under each mistake / failure policy.

    python docs/plot_label_policies.py        # needs matplotlib

The episode (120 frames, 3 stages reach / grasp / transport, proportions 0.3 / 0.2 / 0.5): the annotator
marked the stages as the running maximum (what a person marks as subtask boundaries), so "transport"
runs from frame 50 to the end, through a drop at frames 70-89 (mistake span "drop_regrasp") after
which the robot regrasps and carries on; the task failed at the end (outcome "failure").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sarm.labels.schema import StageSchema

SCHEMA = StageSchema(["reach", "grasp", "transport"], [0.3, 0.2, 0.5])
SPANS = [("reach", 0, 29), ("grasp", 30, 49), ("transport", 50, 119)]
MISTAKES = [("drop_regrasp", 70, 89)]
N = 120
POLICIES = [
    ("--mistakes ignore --failures keep (default, LeRobot)", {}),
    ("--mistakes hold", {"mistakes": "hold"}),
    ("--failures truncate", {"failures": "truncate"}),
    ("--mistakes hold --failures truncate", {"mistakes": "hold", "failures": "truncate"}),
]


def labels() -> dict[str, np.ndarray]:
    """Progress labels of the example episode under each policy (`StageSchema.targets` + Formula 2)."""
    return {
        name: SCHEMA.progress(SCHEMA.targets(SPANS, N, mistake_spans=MISTAKES, outcome="failure", **kw))
        for name, kw in POLICIES
    }


OUT = Path(__file__).with_name("label_policies.png")


def main(out: Path = OUT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for (name, p), style in zip(labels().items(), ("-", "--", "-.", ":"), strict=True):
        ax.plot(np.arange(N), p, style, lw=2, label=name)
    ax.axvspan(70, 89, color="tab:red", alpha=0.12, label='mistake span "drop_regrasp" (70-89)')
    for _, start, _ in SPANS[1:]:
        ax.axvline(start, color="gray", lw=0.6)
    for bp in SCHEMA.breakpoints[1:-1]:
        ax.axhline(bp, color="gray", lw=0.4, ls=":")
    exclude = "--failures exclude: this episode leaves reward-model training"
    ax.text(N - 2, 0.03, exclude, ha="right", fontsize=8)
    ax.set(xlabel="frame", ylabel="progress label", ylim=(-0.02, 1.05), xlim=(0, N - 1))
    ax.set_title("One failed episode (reach 0-29, grasp 30-49, transport 50-119) under each label policy")
    ax.legend(fontsize=7.5, loc="upper left")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
