"""The model card (README.md) saved with every checkpoint: what the model is, its sizes and stages."""

from __future__ import annotations

from torch import nn

__all__ = ["model_card"]


def model_card(model: nn.Module) -> str:
    """The card of a model with a `config` (`SARMConfig`) and `num_parameters()`, as `SARM` has."""
    c = model.config
    lines = [
        "---",
        "library_name: sarm-rabc",
        "tags:",
        "- sarm",
        "- reward-model",
        "- robotics",
        "---",
        "",
        "# SARM reward model",
        "",
        "A Stage-Aware Reward Model (SARM, arXiv 2509.25358) trained with `sarm-rabc`. It predicts the "
        "normalised progress of a task from per-frame image features, the task text feature and robot state.",
        "",
        "```python",
        "from sarm import SARM",
        'model = SARM.from_pretrained("<this repo>")',
        "```",
        "",
        "| setting | value |",
        "|---|---|",
        f"| parameters | {model.num_parameters():,} |",
        f"| width / layers / heads | {c.hidden_dim} / {c.num_layers} / {c.num_heads} |",
        f"| inputs | image {c.image_dim} x {c.num_cameras} camera(s), text {c.text_dim}, "
        f"state <= {c.max_state_dim} |",
        f"| attention / window | {c.attention} / {c.window} |",
        f"| slots | {c.num_slots} (n_obs_steps {c.n_obs_steps}, frame_gap {c.frame_gap}, "
        f"rewind {c.max_rewind_steps}) |",
        "",
        "## Stages",
        "",
    ]
    for head in c.heads:
        for task, schema in c.task_schemas(head).items():
            where = "any task" if task == "*" else f"task `{task}`"
            stages = ", ".join(
                f"{n} ({p:.3g})" for n, p in zip(schema.names, schema.proportions, strict=True)
            )
            lines.append(f"- **{head}**, {where}: {stages}")
    return "\n".join(lines) + "\n"
