"""Training: it learns stage-aware progress, resumes exactly, masks padding, and runs under torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sarm import SARM, SARMConfig
from sarm.training.loop import TrainConfig, _Positions, train
from sarm.training.objective import sarm_loss, teacher_coins
from sarm.training.rewind import RewindCollate
from sarm.training.synthetic import synthetic_episodes
from sarm.training.windows import WindowDataset, split_episodes

WINDOW = dict(mode="past", n_obs_steps=4, frame_gap=5, max_rewind_steps=2)


def _setup(num_episodes=60, seed=0):
    data = synthetic_episodes(num_episodes, seed=seed)
    train_eps, eval_eps = split_episodes(num_episodes, eval_fraction=0.2, seed=0)
    common = dict(
        episode_lengths=data.lengths,
        targets={"sparse": data.targets()},
        tasks=data.tasks,
        state=data.state,
        **WINDOW,
    )
    train_set = WindowDataset(data.features, episodes=train_eps, **common)
    eval_set = WindowDataset(data.features, episodes=eval_eps, anchor_stride=3, **common)
    config = SARMConfig(
        image_dim=16,
        text_dim=8,
        max_state_dim=4,
        hidden_dim=32,
        num_layers=2,
        num_heads=4,
        window="past",
        n_obs_steps=4,
        frame_gap=5,
        max_rewind_steps=2,
        schemas={"sparse": {"*": data.schema.to_dict()}},
    )
    g = torch.Generator().manual_seed(0)
    texts = {
        "task_features": {"synthetic task": torch.randn(8, generator=g)},
        "negative_text_features": torch.randn(16, 8, generator=g),
    }
    return data, eval_eps, train_set, eval_set, config, texts


def _linear_time_mse(data, episodes) -> float:
    """Baseline: progress = elapsed fraction of the episode, at the eval anchors (every 3rd frame)."""
    truth = data.progress()
    errors = []
    for e in episodes:
        start, n = data.starts[e], data.lengths[e]
        errors.append(((np.arange(n) / (n - 1) - truth[start : start + n]) ** 2)[::3])
    return float(np.concatenate(errors).mean())


def test_training_beats_the_linear_time_baseline(tmp_path):
    data, eval_eps, train_set, eval_set, config, texts = _setup()
    torch.manual_seed(0)
    model = SARM(config)
    settings = TrainConfig(
        steps=250,
        batch_size=32,
        lr=1e-3,
        min_lr=1e-4,
        warmup_steps=20,
        eval_every=125,
        checkpoint_every=125,
        log_every=25,
    )
    result = train(
        model, train_set, out_dir=tmp_path, eval_set=eval_set, config=settings, progress=False, **texts
    )
    baseline = _linear_time_mse(data, eval_eps)
    assert result.eval["sparse/demo_mse"] < 0.5 * baseline, (result.eval, baseline)
    assert result.eval["sparse/stage_accuracy"] > 0.9
    assert {p.name for p in tmp_path.iterdir()} >= {"model", "best", "checkpoint", "metrics.jsonl"}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    saved = SARM.from_pretrained(tmp_path / "model")
    batch = RewindCollate(texts["task_features"], rewind_probability=0, language_negative_probability=0)(
        [eval_set[i] for i in range(8)]
    )
    args = (batch["text_features"], batch["video_features"], batch["state_features"], batch["lengths"])
    assert torch.equal(saved.predict(*args).progress, model.cpu().predict(*args).progress)


def _run(out_dir, stop_after=None, settings=None):
    _, _, train_set, _, config, texts = _setup(num_episodes=12)
    torch.manual_seed(0)
    model = SARM(config)
    settings = settings or TrainConfig(steps=8, batch_size=8, warmup_steps=2, checkpoint_every=4, log_every=1)
    train(model, train_set, out_dir=out_dir, config=settings, stop_after=stop_after, progress=False, **texts)
    return model


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = _run(tmp_path / "a")
    _run(tmp_path / "b", stop_after=4)  # a time-limited job stops after 4 of 8 steps ...
    assert not (tmp_path / "b" / "model").exists()
    torch.manual_seed(123)  # ... and the global RNG is disturbed before the rerun
    resumed = _run(tmp_path / "b")
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_resume_refuses_other_settings(tmp_path):
    _run(tmp_path, stop_after=4)
    other = TrainConfig(steps=8, batch_size=8, warmup_steps=2, checkpoint_every=4, log_every=1, lr=1e-3)
    with pytest.raises(ValueError, match="other training settings"):
        _run(tmp_path, settings=other)


def test_learning_rate_warms_up_then_follows_the_cosine():
    c = TrainConfig(steps=110, lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert c.learning_rate(0) == pytest.approx(1e-4) and c.learning_rate(9) == pytest.approx(1e-3)
    assert c.learning_rate(60) == pytest.approx(0.55e-3)  # half-way down the cosine
    assert c.learning_rate(110) == pytest.approx(1e-4)


def test_ranks_take_disjoint_slices_of_one_global_stream():
    single = list(_Positions(3, 7, batch_size=8, world=1, rank=0))
    ranks = [list(_Positions(3, 7, batch_size=4, world=2, rank=r)) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == single


def _tiny_model(schemas, **overrides) -> SARM:
    """A one-layer model that takes `_batch()` inputs."""
    size = dict(image_dim=16, text_dim=8, max_state_dim=4, hidden_dim=16, num_layers=1, num_heads=2)
    return SARM(SARMConfig(**size, schemas=schemas, **overrides))


def _batch(b=4, t=7):
    g = torch.Generator().manual_seed(3)
    targets = torch.rand(b, t, generator=g) * 2.99
    return {
        "text_features": torch.randn(b, 8, generator=g),
        "video_features": torch.randn(b, t, 1, 16, generator=g),
        "state_features": torch.randn(b, t, 4, generator=g),
        "lengths": torch.tensor([7, 5, 3, 6]),
        "targets": {"sparse": targets},
        "key": torch.arange(b),
    }


def test_loss_is_masked_by_lengths():
    schemas = {"sparse": {"*": {"names": ["a", "b", "c"], "proportions": [0.2, 0.3, 0.5]}}}
    model = _tiny_model(schemas, dropout=0.0)
    batch = _batch()
    other = {**batch, "targets": {"sparse": batch["targets"]["sparse"].clone()}}
    other["targets"]["sparse"][2, 3:] = 0.0  # change only padded slots of sample 2
    a, _ = sarm_loss(model, batch)
    b, _ = sarm_loss(model, other)
    assert torch.equal(a, b)
    c, _ = sarm_loss(model, batch, masked=False)  # LeRobot's unmasked mean sees padding
    d, _ = sarm_loss(model, other, masked=False)
    assert not torch.equal(c, d)


def test_teacher_coins_belong_to_samples():
    keys = torch.arange(4000)
    coins = teacher_coins(keys, 0.75, seed=0)
    assert abs(coins.float().mean().item() - 0.75) < 0.03
    assert torch.equal(teacher_coins(keys[[10, 3, 7]], 0.75, seed=0), coins[[10, 3, 7]])
    assert not torch.equal(teacher_coins(keys, 0.75, seed=1), coins)


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, {root!r})
from tests.sarm.training.test_loop import _setup
from sarm import SARM
from sarm.training.loop import TrainConfig, train
_, _, train_set, _, config, texts = _setup(num_episodes=12)
torch.manual_seed(0)
model = SARM(config)
settings = TrainConfig(steps=4, batch_size=4, warmup_steps=1, checkpoint_every=2, log_every=1)
dist.init_process_group("gloo")
train(model, train_set, out_dir=sys.argv[1], config=settings, progress=False, **texts)
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
torch.save(flat, f"{{sys.argv[1]}}/params_rank{{dist.get_rank()}}.pt")
dist.destroy_process_group()
"""


def test_trains_under_torchrun_with_two_ranks(tmp_path):
    root = str(Path(__file__).resolve().parents[3])
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(root=root))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = (torch.load(tmp_path / "out" / f"params_rank{r}.pt") for r in range(2))
    assert torch.equal(a, b)  # gradients were averaged across ranks
    torch.manual_seed(0)
    start = SARM(_setup(num_episodes=12)[4])  # the weights both ranks started from
    assert not torch.equal(a, torch.cat([p.detach().flatten() for p in start.parameters()]))
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()


def test_train_refuses_windows_that_contradict_the_model(tmp_path):
    data, _, _, _, config, texts = _setup(num_episodes=6)
    centered = WindowDataset(
        data.features,
        episode_lengths=data.lengths,
        targets={"sparse": data.targets()},
        tasks=data.tasks,
        mode="centered",
        n_obs_steps=4,
        frame_gap=5,
        max_rewind_steps=2,
    )
    with pytest.raises(
        ValueError, match=r"train_set does not match the model's config \(window: model 'past'"
    ):
        train(SARM(config), centered, out_dir=tmp_path, progress=False, **texts)


def test_a_head_without_targets_is_an_error():
    schemas = {
        "sparse": {"*": {"names": ["a", "b"], "proportions": [0.5, 0.5]}},
        "dense": {"*": {"names": ["x", "y"], "proportions": [0.5, 0.5]}},
    }
    model = _tiny_model(schemas)
    with pytest.raises(ValueError, match=r"heads \['dense'\] would stay untrained"):
        sarm_loss(model, _batch())


def test_training_leaves_the_callers_rng_alone(tmp_path):
    _, _, train_set, _, config, texts = _setup(num_episodes=6)
    model = SARM(config)
    torch.manual_seed(42)
    before = torch.get_rng_state()
    settings = TrainConfig(steps=2, batch_size=4, warmup_steps=1)
    train(model, train_set, out_dir=tmp_path, config=settings, progress=False, **texts)
    assert torch.equal(torch.get_rng_state(), before)


def test_resume_refuses_another_world_size(tmp_path):
    _run(tmp_path, stop_after=4)
    path = tmp_path / "checkpoint" / "train_state.pt"
    state = torch.load(path, weights_only=True)
    state["world_size"] = 2
    torch.save(state, path)
    with pytest.raises(ValueError, match="written by 2 rank"):
        _run(tmp_path)


def test_teacher_coins_change_with_the_epoch():
    keys = torch.arange(200)
    assert not torch.equal(
        teacher_coins(keys, 0.5, seed=0, epoch=0), teacher_coins(keys, 0.5, seed=0, epoch=1)
    )
