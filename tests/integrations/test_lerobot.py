"""integrations.lerobot without LeRobot installed: the weighter, the episode sampler, resume, errors.

tests/integrations/test_lerobot_real.py checks the same classes against the real `lerobot` package.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math

import numpy as np
import pytest
import torch

from integrations.lerobot import (
    RABCEpisodeSampler,
    RABCSampleWeighter,
    patch_lerobot_train,
    per_sample_forward,
    resolve_progress_path,
)
from rabc import RABCWeights
from tests.conftest import progress_table

FROM, TO = [0, 30, 55, 90], [30, 55, 90, 100]  # four episodes of 30, 25, 35 and 10 frames


def _weights(chunk_size: int = 3) -> RABCWeights:
    rng = np.random.default_rng(0)
    walks = [np.cumsum(rng.normal(0.02, 0.05, b - a)) for a, b in zip(FROM, TO, strict=True)]
    episodes = [np.clip(walk, 0, 1) for walk in walks]
    return RABCWeights.from_progress(progress_table(episodes), chunk_size=chunk_size, kappa=0.02)


def _stream(sampler, count: int) -> np.ndarray:
    return np.fromiter(itertools.islice(iter(sampler), count), np.int64)


# -- weighter -------------------------------------------------------------------------------------


def test_weighter_reproduces_lerobot_fixture(fixtures_dir):
    expected = json.loads((fixtures_dir / "rabc_weights.json").read_text())
    weighter = RABCSampleWeighter.from_progress(
        fixtures_dir / "sarm_progress.parquet", 5, kappa=0.05, epsilon=1e-6, fallback_weight=1.0
    )
    index = torch.as_tensor(weighter.weights.index)
    weights, stats = weighter.compute_batch_weights({"index": index, "action": torch.zeros(len(index), 2)})
    np.testing.assert_allclose(weights.numpy(), expected["batch_weights_normalised"], atol=1e-6)
    for key, value in expected["batch_stats"].items():
        assert stats[key] == pytest.approx(value, abs=1e-6)
    assert stats["num_missing"] == 0
    assert weighter.get_stats()["delta_mean"] == pytest.approx(expected["delta_mean"], abs=1e-6)


def test_weighter_missing_index_is_an_error_or_a_counted_fallback(caplog):
    w = _weights()
    batch = {"index": torch.tensor([0, 5, 100, 101])}  # 100 and 101 are past the last frame
    with pytest.raises(KeyError, match=r"2 frame index\(es\) not in the progress file.*missing='fallback'"):
        RABCSampleWeighter(w).compute_batch_weights(batch)
    weighter = RABCSampleWeighter(w, missing="fallback")
    weights, stats = weighter.compute_batch_weights(batch)
    raw = np.array([w.weights[0], w.weights[5], 1.0, 1.0])
    np.testing.assert_allclose(weights.numpy(), raw * 4 / (raw.sum() + 1e-6), rtol=1e-6)
    assert stats["num_missing"] == 2
    weighter.compute_batch_weights(batch)
    assert weighter.get_stats()["num_missing_lookups"] == 4
    assert sum("not in the progress file" in r.message for r in caplog.records) == 1  # warned once


def test_weighter_needs_the_index_key():
    with pytest.raises(KeyError, match=r"batch has no 'index' key \(keys: \['action'\]\)"):
        RABCSampleWeighter(_weights()).compute_batch_weights({"action": torch.zeros(2)})
    with pytest.raises(ValueError, match="missing should be 'error' or 'fallback'"):
        RABCSampleWeighter(_weights(), missing="uniform")


# -- episode sampler -------------------------------------------------------------------------------


def _eligible_by_loop(episodes, drop_first, drop_last):
    """EpisodeAwareSampler's documented frame set, one frame at a time."""
    frames = []
    for e, (a, b) in enumerate(zip(FROM, TO, strict=True)):
        if episodes is None or e in episodes:
            frames.extend(range(a + drop_first, b - drop_last))
    return frames


@pytest.mark.parametrize(
    ("episodes", "drop_first", "drop_last"), [(None, 0, 0), ([0, 2, 3], 2, 5), ([1], 0, 24)]
)
def test_sampler_draws_only_eligible_frames_in_proportion_to_weight(episodes, drop_first, drop_last):
    w = _weights()
    sampler = RABCEpisodeSampler(w, FROM, TO, episodes, drop_first, drop_last, True, 3, num_samples=200_000)
    eligible = np.array(_eligible_by_loop(episodes, drop_first, drop_last))
    assert sampler.num_eligible == len(eligible)
    counts = np.bincount(_stream(sampler, 200_000), minlength=100)
    assert set(np.flatnonzero(counts)) <= set(eligible)
    expected = np.zeros(100)
    expected[eligible] = w.weights[eligible] / w.weights[eligible].sum()
    np.testing.assert_allclose(counts / 200_000, expected, atol=0.004)
    assert len(RABCEpisodeSampler(w, FROM, TO, episodes, drop_first, drop_last)) == len(eligible)


def test_sampler_maps_a_dataset_subset_to_relative_positions():
    w = _weights()
    absolute_to_relative = {a: r for r, a in enumerate(range(30, 90))}  # episodes 1 and 2 loaded
    sampler = RABCEpisodeSampler(
        w, FROM, TO, [1, 2], absolute_to_relative_idx=absolute_to_relative, num_samples=50_000
    )
    draws = _stream(sampler, 50_000)
    assert draws.min() >= 0 and draws.max() < 60
    freq = np.bincount(draws, minlength=60) / draws.size
    np.testing.assert_allclose(freq, w.weights[30:90] / w.weights[30:90].sum(), atol=0.01)


def test_sampler_missing_frames_error_or_counted_fallback():
    w = _weights()
    longer = [*TO[:-1], 120]  # the last episode runs past the progress file
    with pytest.raises(KeyError, match="20 frame index"):
        RABCEpisodeSampler(w, FROM, longer)
    sampler = RABCEpisodeSampler(w, FROM, longer, missing="fallback", num_samples=20_000)
    assert sampler.num_missing == 20
    assert np.bincount(_stream(sampler, 20_000), minlength=120)[100:].min() > 0


def test_sampler_argument_errors():
    w = _weights()
    with pytest.raises(ValueError, match="shuffle=False has no meaning"):
        RABCEpisodeSampler(w, FROM, TO, shuffle=False)
    with pytest.raises(ValueError, match="No valid frames remain"):
        RABCEpisodeSampler(w, FROM, TO, drop_n_last_frames=40)
    with pytest.raises(ValueError, match="drop_n_first_frames must be >= 0"):
        RABCEpisodeSampler(w, FROM, TO, drop_n_first_frames=-1)
    with pytest.raises(ValueError, match="cover global frame index 99"):
        RABCEpisodeSampler(np.ones(50), FROM, TO)


def _lerobot_state(step, num_frames, batch_size, num_processes):
    """What LeRobot's compute_sampler_state returns, derived from its documented batch accounting."""
    batches_per_epoch = math.ceil(math.ceil(num_frames / batch_size) / num_processes)
    epoch, into = divmod(step, batches_per_epoch)
    return {"epoch": epoch, "start_index": min(into * batch_size * num_processes, num_frames)}


def test_cycle_loop_changes_epoch_and_lerobot_state_resumes_exactly():
    """LeRobot's loop: `cycle(DataLoader)` with no set_epoch; resume from compute_sampler_state."""
    w, batch = _weights(), 8
    make = lambda: RABCEpisodeSampler(w, FROM, TO, None, 0, 2, True, 5)  # noqa: E731
    sampler = make()
    loader = torch.utils.data.DataLoader(torch.arange(100), batch_size=batch, sampler=sampler)
    per_epoch = math.ceil(len(sampler) / batch)
    run = [b.tolist() for _ in range(3) for b in loader]  # three passes = three epochs
    assert sampler.epoch == 2
    assert run[:per_epoch] != run[per_epoch : 2 * per_epoch]
    for step in (5, per_epoch + 3):
        fresh = make()
        fresh.load_state_dict(_lerobot_state(step, len(fresh), batch, 1))
        loader = torch.utils.data.DataLoader(torch.arange(100), batch_size=batch, sampler=fresh)
        into = step % per_epoch
        rest = [b.tolist() for b in loader]
        flat = lambda batches: [i for b in batches for i in b]  # noqa: E731
        epoch_start = (step // per_epoch) * per_epoch
        assert flat(rest) == flat(run[epoch_start : epoch_start + per_epoch])[into * batch :]
        assert [b.tolist() for b in loader] == run[epoch_start + per_epoch : epoch_start + 2 * per_epoch]


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate not installed")
def test_resume_survives_accelerates_set_epoch_calls():
    """accelerate's prepared loader calls sampler.set_epoch(pass) from 0 in each new process."""
    from accelerate.data_loader import prepare_data_loader

    w, batch, procs = _weights(), 4, 2
    make = lambda: RABCEpisodeSampler(w, FROM, TO, seed=1)  # noqa: E731

    def rank_batches(sampler, rank, passes):
        loader = torch.utils.data.DataLoader(torch.arange(100), batch_size=batch, sampler=sampler)
        prepared = prepare_data_loader(loader, num_processes=procs, process_index=rank, put_on_device=False)
        return [[b.tolist() for b in prepared] for _ in range(passes)]

    full = {r: rank_batches(make(), r, 3) for r in range(procs)}  # passes = epochs 0, 1, 2
    per_rank = len(full[0][0])
    step = per_rank + 4  # 4 steps into the second epoch
    state = _lerobot_state(step, len(make()), batch, procs)
    remaining = math.ceil((len(make()) - state["start_index"]) / batch)  # global batches left
    for r in range(procs):
        fresh = make()
        fresh.load_state_dict(state)
        resumed = rank_batches(fresh, r, 2)
        real = len(range(r, remaining, procs))  # the rest is accelerate's even_batches padding
        assert real >= 8 and resumed[0][:real] == full[r][1][4 : 4 + real]
        assert resumed[1] == full[r][2]


# -- trainer seams -----------------------------------------------------------------------------------


def test_per_sample_forward_gives_each_samples_own_loss():
    class MeanLossPolicy(torch.nn.Module):  # like ACT: forward(batch) -> (batch-mean loss, dict)
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, batch):
            loss = ((self.scale * batch["x"] - batch["y"]) ** 2).mean()
            return loss, {"l2": loss.item()}

    policy = MeanLossPolicy()
    batch = {"x": torch.randn(5, 3), "y": torch.randn(5, 3), "index": torch.arange(5), "task": ["t"] * 5}
    per_sample_forward(policy)
    losses, out = policy.forward(batch, reduction="none")
    expected = ((2.0 * batch["x"] - batch["y"]) ** 2).mean(dim=1)
    torch.testing.assert_close(losses, expected)
    assert out["l2"] == pytest.approx(expected.mean().item(), rel=1e-6)
    mean, _ = policy.forward(batch)
    torch.testing.assert_close(mean, expected.mean())
    losses.sum().backward()
    assert policy.scale.grad is not None


def test_resolve_progress_path_follows_lerobots_rule(tmp_path):
    assert resolve_progress_path(tmp_path / "p.parquet", tmp_path) == tmp_path / "p.parquet"
    assert resolve_progress_path(None, tmp_path) == tmp_path / "sarm_progress.parquet"
    with pytest.raises(ValueError, match="write one with `sarm progress`"):
        resolve_progress_path()
    with pytest.raises(ValueError, match="hf://datasets/<owner>/<name>/<file>"):
        resolve_progress_path("hf://datasets/only_owner/file")


@pytest.mark.skipif(importlib.util.find_spec("lerobot") is not None, reason="lerobot is installed")
def test_patching_without_lerobot_names_the_install_line():
    with pytest.raises(ImportError, match=r"pip install 'lerobot>=0.5'.*Python >= 3.12"):
        with patch_lerobot_train("sampler"):
            pass
