"""integrations.lerobot against the real `lerobot` package (>= 0.5, Python >= 3.12).

Skipped where lerobot is not installed; CI runs this file in a side environment (.ci/lerobot).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

lerobot = pytest.importorskip("lerobot")

from lerobot.datasets import EpisodeAwareSampler, compute_sampler_state  # noqa: E402
from lerobot.rewards.sarm.rabc import RABCWeights as LeRobotRABCWeights  # noqa: E402
from lerobot.utils.sample_weighting import SampleWeighter, SampleWeightingConfig  # noqa: E402

from integrations.lerobot import RABCEpisodeSampler, RABCSampleWeighter, patch_lerobot_train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FROM, TO = [0, 30, 55, 90], [30, 55, 90, 100]


def test_weighter_implements_lerobots_interface_and_matches_its_weights(fixtures_dir):
    assert SampleWeighter.__abstractmethods__ <= set(dir(RABCSampleWeighter))
    progress = fixtures_dir / "sarm_progress.parquet"
    theirs = LeRobotRABCWeights(str(progress), chunk_size=5, kappa=0.05, device=torch.device("cpu"))
    ours = RABCSampleWeighter.from_progress(progress, 5, kappa=0.05, missing="fallback")
    rng = np.random.default_rng(0)
    n = len(ours.weights)
    for size in (1, 7, 32):
        batch = {"index": torch.as_tensor(rng.choice(n + 3, size))}  # a few indices past the file: fallback
        w_theirs, s_theirs = theirs.compute_batch_weights(batch)
        w_ours, s_ours = ours.compute_batch_weights(batch)
        torch.testing.assert_close(w_ours, w_theirs.float(), atol=1e-6, rtol=1e-6)
        for key, value in s_theirs.items():
            assert s_ours[key] == pytest.approx(value, abs=1e-6), key
    for key in ("delta_mean", "delta_std", "kappa", "chunk_size", "head_mode", "type"):
        assert ours.get_stats()[key] == pytest.approx(theirs.get_stats()[key]), key


@pytest.mark.parametrize(("episodes", "drop_first", "drop_last"), [(None, 0, 0), ([0, 2, 3], 1, 7)])
def test_sampler_covers_exactly_episode_aware_samplers_frames(episodes, drop_first, drop_last):
    theirs = EpisodeAwareSampler(FROM, TO, episodes, drop_first, drop_last, shuffle=True, seed=0)
    ours = RABCEpisodeSampler(np.ones(100), FROM, TO, episodes, drop_first, drop_last, True, 0)
    assert len(ours) == len(theirs)
    drawn = set(itertools.islice(iter(RABCEpisodeSampler(
        np.ones(100), FROM, TO, episodes, drop_first, drop_last, num_samples=50_000
    )), 50_000))  # fmt: skip
    assert drawn == set(theirs.indices)


def test_sampler_resumes_from_lerobots_compute_sampler_state():
    batch, make = 8, lambda: RABCEpisodeSampler(np.linspace(0, 1, 100), FROM, TO, seed=3)
    full = make()
    stream = [list(iter(full)) for _ in range(3)]  # cycle(): one epoch per pass
    per_epoch = -(-len(full) // batch)
    step = per_epoch + 5
    fresh = make()
    fresh.load_state_dict(compute_sampler_state(step, len(fresh), batch, 1))
    assert list(iter(fresh)) == stream[1][5 * batch :]
    assert list(iter(fresh)) == stream[2]


def test_loss_mode_through_lerobots_update_policy(tmp_path):
    from accelerate import Accelerator
    from lerobot.scripts.lerobot_train import update_policy
    from lerobot.utils.logging_utils import AverageMeter, MetricsTracker

    class PerSamplePolicy(torch.nn.Module):  # the reduction="none" contract of pi0 / smolvla
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, batch, reduction="mean"):
            losses = ((self.a * batch["x"] - batch["y"]) ** 2).mean(dim=1)
            return (losses if reduction == "none" else losses.mean()), {}

    weights = np.linspace(0, 1, 100).astype(np.float32)
    weighter = RABCSampleWeighter(_weights_object(weights))
    policy = PerSamplePolicy()
    batch = {"x": torch.randn(6, 4), "y": torch.randn(6, 4), "index": torch.tensor([0, 10, 20, 50, 80, 99])}
    w = torch.as_tensor(weights[batch["index"].numpy()])
    expected = (((0.5 * batch["x"] - batch["y"]) ** 2).mean(1) * w).sum() / w.sum()
    meters = {name: AverageMeter(name) for name in ("loss", "grad_norm", "lr", "update_s")}
    tracker = MetricsTracker(6, 100, 4, meters)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.0)
    _, out = update_policy(
        tracker, policy, batch, optimizer, 0.0, Accelerator(cpu=True), sample_weighter=weighter
    )
    assert tracker.loss.val == pytest.approx(expected.item(), rel=1e-5)
    assert out["sample_weight_mean_weight"] == pytest.approx(w.mean().item(), rel=1e-6)


def _weights_object(weights):
    from rabc import RABCWeights
    from tests.conftest import progress_table

    # progress rising at the given slopes makes Eq. 9 weights we do not need: set them directly
    w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 100)]), chunk_size=1)
    w.weights = weights
    return w


def test_loss_mode_refuses_a_policy_without_reduction():
    from lerobot.utils import sample_weighting

    class ACTLike(torch.nn.Module):
        config = type("Config", (), {"chunk_size": 5})()

        def forward(self, batch):
            return torch.zeros(()), {}

    config = SampleWeightingConfig(
        progress_path=str(REPO.parent / "shared/fixtures/lerobot_sarm_v0.6.1/sarm_progress.parquet")
    )
    with patch_lerobot_train("loss"):
        with pytest.raises(TypeError, match="ACTLike.forward has no reduction='none'.*--rabc.mode=sampler"):
            sample_weighting.make_sample_weighter(config, ACTLike(), torch.device("cpu"))
        with patch_lerobot_train("sampler"):
            assert sample_weighting.make_sample_weighter(config, ACTLike(), torch.device("cpu")) is None
    assert sample_weighting.make_sample_weighter.__module__ == "lerobot.utils.sample_weighting"  # restored


def test_example_trains_act_with_lerobots_trainer_in_both_modes(tmp_path):
    """examples/lerobot_train_rabc.py: LeRobot's own lerobot-train, 2 steps per mode."""
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples/lerobot_train_rabc.py"),
            "--out",
            str(tmp_path),
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "RA-BC sampler replaces EpisodeAwareSampler" in log
    assert "RA-BC (loss mode)" in log and "sample_weight_mean_weight" in log
    for mode in ("sampler", "loss"):
        assert f"[{mode}] done: 2 steps" in log
    meta = json.loads((tmp_path / "dataset/meta/info.json").read_text())
    assert meta["total_frames"] == 240
