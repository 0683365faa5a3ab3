"""Rerunning `train` into an existing run: other settings are refused before anything is written (each
named with its old and new value), `extend=True` trains a run further, errors name the caller's options,
and every file gets the user's umask."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from sarm import SARM
from sarm.training.loop import TrainConfig, train
from sarm.training.windows import WindowDataset
from tests.sarm.training.test_loop import _setup

SETTINGS = TrainConfig(steps=4, batch_size=4, warmup_steps=1, checkpoint_every=2, log_every=1)


def _run(out_dir, *, settings=SETTINGS, stride=1, model=None, relabel=None, **kwargs):
    """Train the tiny synthetic model of test_loop (12 episodes); `model` edits its SARMConfig, `relabel`
    maps its targets to others, `kwargs` go to `train`."""
    _, _, train_set, _, config, texts = _setup(num_episodes=12)
    if stride != 1 or relabel is not None:
        train_set = WindowDataset(
            train_set.features,
            episode_lengths=train_set.episode_lengths,
            targets={h: (relabel or (lambda y: y))(y) for h, y in train_set.targets.items()},
            tasks=train_set.tasks,
            state=train_set.state,
            episodes=train_set.episodes,
            anchor_stride=stride,
            mode="past",
            n_obs_steps=4,
            frame_gap=5,
            max_rewind_steps=2,
        )
    torch.manual_seed(0)
    net = SARM(dataclasses.replace(config, **(model or {})))
    return train(net, train_set, out_dir=out_dir, config=settings, progress=False, **texts, **kwargs), net


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_other_model_settings_are_refused_before_anything_is_written(tmp_path):
    _run(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(ValueError) as error:
        _run(tmp_path, model={"attention": "lerobot", "dropout": 0.2})
    text = str(error.value)
    assert "attention: run 'causal', now 'lerobot'" in text and "dropout: run 0.1, now 0.2" in text
    assert "resume=False" in text and "\n" not in text
    assert _files(tmp_path) == before  # model/config.json and the weights untouched


def test_a_size_mismatch_is_one_line_not_a_torch_traceback(tmp_path):
    _run(tmp_path)
    with pytest.raises(ValueError) as error:
        _run(tmp_path, model={"hidden_dim": 64})
    assert "hidden_dim: run 32, now 64" in str(error.value) and "\n" not in str(error.value)


def test_other_training_settings_and_windows_are_named_with_old_and_new_values(tmp_path):
    _run(tmp_path)
    with pytest.raises(ValueError, match=r"batch_size: run 4, now 2; lr: run 5e-05, now 0\.001\)"):
        _run(tmp_path, settings=dataclasses.replace(SETTINGS, lr=1e-3, batch_size=2))
    with pytest.raises(ValueError, match=r"train_set.anchor_stride: run 1, now 2"):
        _run(tmp_path, stride=2)
    _run(tmp_path, settings=dataclasses.replace(SETTINGS, num_workers=0))  # same run: fine


def test_other_labels_are_refused_on_resume(tmp_path):
    """Other annotations, stage maps or --order change the targets, not the windows: still refused."""
    _run(tmp_path)
    with pytest.raises(ValueError, match=r"train_set.targets: run '[0-9a-f]{12}"):
        _run(tmp_path, relabel=lambda y: y.copy() * 0.5)
    _run(tmp_path, relabel=lambda y: y.copy())  # the same labels: resumes


def test_more_steps_need_extend_which_trains_further(tmp_path):
    first, _ = _run(tmp_path)
    more = dataclasses.replace(SETTINGS, steps=6)
    with pytest.raises(ValueError, match=r"steps: run 4, now 6.*pass extend=True"):
        _run(tmp_path, settings=more)
    result, model = _run(tmp_path, settings=more, extend=True)
    assert first.step == 4 and result.step == 6
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[4]["lr"] == pytest.approx(more.learning_rate(5))  # the new schedule from step 4 on
    saved = SARM.from_pretrained(tmp_path / "model")
    for (name, a), (_, b) in zip(saved.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(a, b.cpu()), name
    with pytest.raises(ValueError, match=r"at step 6.*above it, but got 5"):
        _run(tmp_path, settings=dataclasses.replace(SETTINGS, steps=5), extend=True)
    with pytest.raises(ValueError, match=r"lr: run"):  # extend allows more steps, nothing else
        _run(tmp_path, settings=dataclasses.replace(SETTINGS, steps=8, lr=1e-3), extend=True)


def test_errors_name_the_options_the_caller_gives(tmp_path):
    _run(tmp_path)
    flags = {"resume": "--no-resume", "extend": "--extend", "steps": "--steps", "lr": "--lr"}
    with pytest.raises(ValueError) as error:
        _run(tmp_path, settings=dataclasses.replace(SETTINGS, steps=6), option_names=flags)
    text = str(error.value)
    assert "--steps: run 4, now 6" in text and "pass --extend" in text and "--no-resume" in text
    assert "resume=False" not in text and "extend=True" not in text


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_run_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        _run(tmp_path)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "config.json", "train_state.pt", "metrics.jsonl"}
    wrong = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files}
    assert wrong == {k: oct(0o666 & ~umask) for k in wrong}
