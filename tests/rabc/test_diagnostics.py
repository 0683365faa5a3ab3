import numpy as np
import pytest

from rabc.diagnostics import diagnose
from rabc.weights import RABCWeights
from tests.conftest import progress_table


def _steady(n_episodes=6, n=120, seed=0, regress_every=3):
    rng = np.random.default_rng(seed)
    episodes = []
    for e in range(n_episodes):
        p = np.linspace(0, 1, n) + rng.normal(0, 0.002, n)
        if e % regress_every == 0:  # a regression in every third episode
            p[50:70] -= np.linspace(0, 0.2, 20)
        episodes.append(np.clip(p, 0, 1))
    return progress_table(episodes)


def test_metrics_match_the_weights():
    w = RABCWeights.from_progress(_steady(), chunk_size=10, kappa=0.05)
    report = diagnose(w)
    m = report.metrics
    assert all(isinstance(v, float) for v in m.values())
    assert m["num_frames"] == 720 and m["num_episodes"] == 6 and m["kappa"] == 0.05
    assert m["mean_weight"] == pytest.approx(float(w.weights.mean()))
    assert m["zero_fraction"] == pytest.approx(float((w.weights == 0).mean()))
    assert m["full_fraction"] == pytest.approx(float((w.weights == 1).mean()))
    assert m["zero_fraction"] + m["soft_fraction"] + m["full_fraction"] == pytest.approx(1.0)
    assert m["delta_q50"] == pytest.approx(float(np.nanmedian(w.deltas)))
    assert m["negative_fraction"] == pytest.approx(float((w.deltas < 0).mean()))


def test_kappa_too_low_verdict_and_suggestions():
    report = diagnose(_steady(), chunk_size=10, kappa=0.0)
    assert report.verdict == "kappa_too_low" and "plain BC" in report.advice
    s = report.kappa_suggestions
    w = RABCWeights.from_progress(_steady(), chunk_size=10)
    assert s["mean"][0] == pytest.approx(w.delta_mean)
    assert s["mean + std"][0] == pytest.approx(w.delta_mean + w.delta_std)
    assert s["mean + 2 std"][0] == pytest.approx(w.delta_mean + 2 * w.delta_std)
    kappa, mean_weight = s["target mean weight 0.55"]
    assert mean_weight <= 0.55 and w.with_kappa(kappa).mean_weight == pytest.approx(mean_weight)
    assert s["mean"][1] >= s["mean + std"][1] >= s["mean + 2 std"][1]  # higher kappa, lower mean weight


def test_healthy_and_discarding_verdicts():
    assert diagnose(_steady(), chunk_size=10, kappa="auto").verdict == "healthy"
    falling = progress_table([np.linspace(1, 0, 100), np.linspace(0.8, 0.1, 100), np.linspace(0, 0.1, 100)])
    report = diagnose(falling, chunk_size=5)
    assert report.verdict == "no_progress"
    # a sawtooth that rises overall: one big step up, then 14 small steps down, so most deltas are < 0
    block = np.r_[0.1, np.full(14, -0.005)]
    sawtooth = np.cumsum(np.tile(block, 12))
    report = diagnose(progress_table([sawtooth] * 3), chunk_size=1, kappa=0.05)
    assert report.metrics["delta_mean"] > 0 and report.verdict == "discards_most"


def test_worst_episodes_are_the_regressing_ones():
    report = diagnose(_steady(regress_every=3), chunk_size=10, kappa=0.05)
    worst = report.worst_episodes
    assert {e for e, _, _ in worst[:2]} == {0, 3}  # the two regressing episodes lead the list
    assert all(worst[1][1] > zeros for _, zeros, _ in worst[2:]) and worst[0][2] == 120


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    report = diagnose(_steady(), chunk_size=10, plot=tmp_path / "d.png")
    assert report.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot:" in str(report)


def test_text_report_has_the_numbers():
    text = str(diagnose(_steady(), chunk_size=10))
    for needle in ("mean weight", "zero / soft / full", "kappa suggestions", "verdict:"):
        assert needle in text


def test_needs_chunk_size_for_a_progress_file():
    with pytest.raises(ValueError, match="needs chunk_size"):
        diagnose(_steady())
