"""Resuming a run safely: a rerun into an existing `out_dir` must use the run's model config, training
settings and training windows. `check_run` compares them with the checkpoint's, before anything is
written or loaded into the model, and names every difference with its old and new value (in the
caller's terms: Python arguments, or the CLI's flags through `names`). `extend=True` allows a larger
`steps` and nothing else."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm.model.hub import read_config
from sarm.model.network import SARM
from sarm.training.config import TrainConfig
from sarm.training.windows import WindowDataset

__all__ = ["check_run", "data_facts"]


def data_facts(windows: WindowDataset | None) -> dict[str, Any] | None:
    """What identifies a window set across runs, compactly: its size, stride and episodes' digest."""
    if windows is None:
        return None
    digest = hashlib.sha1(np.ascontiguousarray(windows.episodes, np.int64).tobytes())
    digest.update(np.ascontiguousarray(windows.episode_lengths[windows.episodes], np.int64).tobytes())
    labels = hashlib.sha1()  # the targets: other labels, stage maps or --order give other targets
    for head in sorted(windows.targets):
        labels.update(head.encode())
        labels.update(np.ascontiguousarray(windows.targets[head], np.float64).tobytes())
    facts = {
        "windows": len(windows),
        "anchor_stride": windows.anchor_stride,
        "episodes": digest.hexdigest(),
        "targets": labels.hexdigest(),
    }
    if getattr(windows, "labels", None):  # the label policies, even where they give the same targets
        facts["labels"] = dict(sorted(windows.labels.items()))
    return facts


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_run(
    found: Path,
    model: SARM,
    config: TrainConfig,
    data: dict[str, Any],
    world: int,
    *,
    extend: bool,
    names: dict[str, str],
) -> dict[str, Any]:
    """Refuse to resume `found` with other settings (before anything is read into the model or
    written); return its train state. Every differing setting is named with its old and new value."""
    name = lambda key: names.get(key, key)  # noqa: E731 - Python names, or the CLI's flags
    restart = f"or start over with {name('resume')} / another output directory"
    saved_model = read_config(found).to_dict()
    saved_model = {k: v for k, v in json.loads(json.dumps(saved_model)).items() if k != "encoder" or v}
    wanted = json.loads(json.dumps(model.config.to_dict()))
    diffs = [(k, saved_model[k], wanted.get(k)) for k in saved_model if saved_model[k] != wanted.get(k)]
    state = torch.load(found / "train_state.pt", map_location="cpu", weights_only=True)
    wanted_train = dataclasses.asdict(config)
    saved_train = state["config"]
    ignored = {"num_workers"}  # batches are identical whatever the number of workers
    train_diffs = [
        (k, saved_train.get(k), v)
        for k, v in wanted_train.items()
        if k not in ignored and saved_train.get(k) != v
    ]
    steps = [d for d in train_diffs if d[0] == "steps"]
    if extend and steps:
        if config.steps < state["step"]:
            raise ValueError(
                f"`{found}` is at step {state['step']}; {name('extend')} needs {name('steps')} above it, "
                f"but got {config.steps}"
            )
        train_diffs.remove(steps[0])
    for key, old in (state.get("data") or {}).items():
        if data.get(key) is not None and data[key] != old:
            diffs.append((f"train_set.{key}", old, data[key]))
    if diffs or train_diffs:
        listed = "; ".join(f"{name(k)}: run {_short(a)}, now {_short(b)}" for k, a, b in diffs + train_diffs)
        hint = ""
        if [k for k, _, _ in train_diffs] == ["steps"]:
            hint = f"; to train a finished run further, pass {name('extend')} with the larger {name('steps')}"
        raise ValueError(
            f"the run in `{found.parent}` was trained with other training settings ({listed}); rerun with "
            f"its settings{hint}, {restart}"
        )
    if state["world_size"] != world:
        raise ValueError(
            f"`{found}` was written by {state['world_size']} rank(s), but this run has {world}: the data "
            f"stream is split per rank, so resume with the same number of ranks, {restart}"
        )
    return state
