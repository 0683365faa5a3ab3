"""`diagnose` says what is wrong with the progress before judging kappa (never "healthy" on no signal)."""

import numpy as np
import pytest

from rabc import diagnostics
from rabc.cli import main
from rabc.diagnostics import diagnose
from rabc.weights import RABCWeights
from tests.conftest import progress_table


def _rising(lengths=(120, 90, 150), seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(np.linspace(0, 1, n) + rng.normal(0, 0.003, n), 0, 1) for n in lengths]


def test_a_good_model_stays_healthy():
    report = diagnose(progress_table(_rising()), chunk_size=10, kappa="auto")
    assert report.verdict == "healthy"
    assert report.metrics["median_episode_rise"] > 0.8 and report.metrics["clamped_fraction"] < 0.1


@pytest.mark.parametrize("kappa", [0.01, "auto"])
def test_chunk_longer_than_every_episode(kappa):
    table = progress_table(_rising(lengths=(30, 45, 40)))
    report = diagnose(table, chunk_size=50, kappa=kappa)
    assert report.verdict == "chunk_too_long"
    assert "(50 frames) is at least the longest episode (45 frames)" in report.advice
    assert "clamped" in report.advice and report.metrics["clamped_fraction"] == 1.0
    assert report.metrics["max_episode_frames"] == 45
    assert "verdict: chunk_too_long" in str(report)


def test_a_chunk_shorter_than_one_episode_is_judged_normally_with_a_note():
    report = diagnose(progress_table(_rising(lengths=(30, 45, 60))), chunk_size=44, kappa="auto")
    assert report.verdict != "chunk_too_long"
    assert any("clamped at the episode end" in note for note in report.notes)


def test_all_nan_progress():
    table = progress_table([np.full(40, np.nan), np.full(30, np.nan)])
    report = diagnose(table, chunk_size=5)
    assert report.verdict == "unknown_progress"
    assert "all NaN" in report.advice and "fallback 1" in report.advice
    report = diagnose(table, chunk_size=5, fallback_weight=0.5)
    assert report.verdict == "unknown_progress" and "fallback 0.5" in report.advice


def _noise(drift, seed=0, episodes=8, n=100, sigma=0.05):
    """A model with no signal (e.g. 20 training steps): progress ~ flat level + noise (+ a small drift)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.3, 0.5, episodes)
    return progress_table(
        [
            np.clip(level[e] + np.linspace(0, drift, n) + rng.normal(0, sigma, n), 0, 1)
            for e in range(episodes)
        ]
    )


@pytest.mark.parametrize("drift", [0.0, 0.03])
@pytest.mark.parametrize("kappa", [0.01, "auto"])
def test_flat_noise_is_no_signal(drift, kappa):
    report = diagnose(_noise(drift), chunk_size=10, kappa=kappa)
    assert report.metrics["delta_mean"] > 0  # (other seeds give a mean <= 0: then "no_progress")
    assert report.verdict == "no_signal", report
    assert report.metrics["median_episode_rise"] < diagnostics.MIN_EPISODE_RISE
    assert report.metrics["rise_beyond_noise_fraction"] < 0.1
    assert "looks like noise" in report.advice and "reward model" in report.advice


def test_noise_with_a_slightly_positive_mean_is_no_signal_not_healthy():
    table = _noise(0.03, seed=1)
    w = RABCWeights.from_progress(table, chunk_size=10, kappa="auto")
    assert w.delta_mean > 0 and 0.3 <= w.mean_weight <= 0.8  # the weights alone look "healthy"
    assert diagnose(w).verdict == "no_signal"


def test_slow_but_real_progress_is_not_no_signal():
    # a weak model: each episode rises only 0.3, under heavy per-frame noise
    rng = np.random.default_rng(3)
    table = progress_table([np.clip(0.2 + np.linspace(0, 0.3, 200) + rng.normal(0, 0.01, 200), 0, 1)] * 4)
    report = diagnose(table, chunk_size=20, kappa="auto")
    assert report.verdict == "healthy" and report.metrics["median_episode_rise"] == pytest.approx(
        0.3, abs=0.05
    )


def test_a_tiny_clean_rise_is_not_no_signal():
    # episodes rise by only 0.08 (rule 1 holds), but almost every delta is clearly positive (rule 2 fails)
    rng = np.random.default_rng(4)
    table = progress_table([np.linspace(0.2, 0.28, 200) + rng.normal(0, 0.0005, 200)] * 3)
    report = diagnose(table, chunk_size=20, kappa="auto")
    assert report.metrics["median_episode_rise"] < diagnostics.MIN_EPISODE_RISE
    assert report.verdict not in ("no_signal", "no_progress")


def test_episode_rise_is_last_minus_mean_of_first_chunk():
    p = np.array([0.0, 0.1, 0.2, 0.4, 0.4, 0.5, 0.9, 1.0])
    report = diagnose(progress_table([p]), chunk_size=3)
    assert report.metrics["median_episode_rise"] == pytest.approx(1.0 - p[:3].mean())


def test_cli_prints_the_verdict(tmp_path, capsys):
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(progress_table(_rising(lengths=(30, 45, 40))), path)
    assert main(["diagnose", str(path), "--chunk-size", "50"]) == 0
    assert "verdict: chunk_too_long" in capsys.readouterr().out
