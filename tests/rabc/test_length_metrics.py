"""`rabc.metrics.auroc_length`, `length_strata` and `auroc_length_controlled`: hand-computed values,
sklearn for the plain AUROC, and the known answers of a score that is pure elapsed time."""

from __future__ import annotations

import numpy as np
import pytest

from rabc.metrics import auroc, auroc_length, auroc_length_controlled, length_strata


def pure_time_episodes(n=2000, seed=0):
    """Lengths 50-220 frames; short episodes tend to fail (aborted), so final progress of pure elapsed
    time, (L - 1) / max L, separates the outcomes well without knowing anything but length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 221, n)
    success = rng.random(n) < 1 / (1 + np.exp(-(lengths - 135) / 15))
    return lengths, success, (lengths - 1) / lengths.max()


def test_plain_auroc_matches_sklearn_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    scores = np.array([0.9, 0.5, 0.5, 0.2, 0.8, 0.8])
    positive = np.array([True, False, True, False, True, False])
    assert auroc(scores, positive) == pytest.approx(7 / 9)  # by hand: 3 + 1.5 + 2.5 wins of 9 pairs
    assert auroc(scores, positive) == pytest.approx(sk.roc_auc_score(positive, scores))
    _, success, final = pure_time_episodes(300)
    assert auroc(final, success) == pytest.approx(sk.roc_auc_score(success, final))


def test_auroc_length_is_shorter_means_success():
    # successes of 10 and 20 frames are shorter than the 30-frame failure, the 40-frame one is not: 2 of 3
    assert auroc_length([10, 20, 30, 40], [True, True, False, True]) == pytest.approx(2 / 3)
    assert auroc_length([10, 20, 30], [True, True, False]) == 1.0
    assert auroc_length([30, 10, 20], [True, False, False]) == 0.0  # the success is the longest
    assert auroc_length([10, 10], [True, False]) == 0.5
    assert np.isnan(auroc_length([10, 20], [True, True]))


def test_length_strata_by_hand():
    # size 10 never binds: 111 > 1.1 * 100 opens a stratum, 200 another, 220 = 1.1 * 200 still matches
    got = length_strata([100, 104, 108, 111, 200, 220], stratum_size=10)
    assert got.tolist() == [0, 0, 0, 1, 2, 2]
    # size 2 closes a stratum after 2 episodes, but equal lengths always share one
    assert length_strata([5, 5, 5, 5, 5, 6, 6], stratum_size=2).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert length_strata([3, 1, 2, 1], stratum_size=2, max_ratio=10).tolist() == [1, 0, 1, 0]  # file order
    # default size ceil(n^(1/3)): 8 episodes -> 2 per stratum
    assert length_strata([100, 100, 101, 101, 102, 102, 103, 103]).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_length_strata_errors():
    with pytest.raises(
        ValueError, match="stratum_size should be a positive integer value, but got stratum_size=0"
    ):
        length_strata([1, 2], stratum_size=0)
    with pytest.raises(ValueError, match="max_ratio should be >= 1, but got max_ratio=0.5"):
        length_strata([1, 2], max_ratio=0.5)
    with pytest.raises(ValueError, match="one value per episode"):
        auroc_length_controlled([0.1, 0.2], [10], [True, False])


def test_controlled_auroc_by_hand():
    lengths = [10, 10, 10, 20, 20, 20]
    positive = [True, False, True, False, True, False]
    scores = [0.9, 0.5, 0.5, 0.2, 0.8, 0.8]
    # stratum of 10 frames: 0.9 beats 0.5, 0.5 ties 0.5 -> 1.5 of 2 pairs; of 20 frames: 0.8 beats 0.2,
    # ties 0.8 -> 1.5 of 2; pooled 3 of 4. The 9 pairs of the plain AUROC give 7/9 instead.
    assert auroc_length_controlled(scores, lengths, positive) == pytest.approx(0.75)
    assert auroc_length_controlled(scores, lengths, positive, stratum_size=3) == pytest.approx(0.75)
    # one stratum for everything (no ratio limit, size 6): the plain AUROC
    wide = auroc_length_controlled(scores, lengths, positive, stratum_size=6, max_ratio=3)
    assert wide == pytest.approx(7 / 9)


def test_controlled_auroc_nan_cases():
    # every stratum holds one outcome only: length alone tells them apart, nothing left to measure
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert np.isnan(
        auroc_length_controlled([0.9, 0.8, 0.1, 0.2], [10, 10, 50, 50], [True, True, False, False])
    )
    # one outcome overall
    assert np.isnan(auroc_length_controlled([0.9, 0.8], [10, 10], [True, True]))
    # the only failure of the mixed stratum has no score: left out, so no pair is left
    assert np.isnan(auroc_length_controlled([0.9, np.nan, 0.1], [10, 10, 50], [True, False, False]))
    assert np.isnan(auroc_length_controlled([], [], []))
    # Meta-World's shape: successes end by 160 frames, every failure runs to the 220-frame cap
    lengths = [58, 61, 92, 106, 140, 159, 220, 220]
    success = [True] * 6 + [False] * 2
    assert auroc_length(lengths, success) == 1.0
    assert np.isnan(auroc_length_controlled(np.linspace(0, 1, 8), lengths, success))


def test_pure_elapsed_time_is_high_plain_and_chance_controlled():
    lengths, success, final = pure_time_episodes()
    assert auroc(final, success) > 0.9 and auroc_length(lengths, success) < 0.1  # here success = long
    assert abs(auroc_length_controlled(final, lengths, success) - 0.5) < 0.1
    # lengths on a coarse grid (every 10 frames): matched lengths are equal, exactly chance
    coarse = lengths // 10 * 10
    time = (coarse - 1) / coarse.max()
    assert auroc(time, success) > 0.9
    assert auroc_length_controlled(time, coarse, success, max_ratio=1.0) == 0.5


def test_a_signal_independent_of_length_keeps_its_auroc():
    lengths, success, _ = pure_time_episodes()
    rng = np.random.default_rng(1)
    # successes end at U(0.6, 1.0), failures at U(0.3, 0.7), whatever their length: AUROC 1 - 1/32
    final = np.where(success, rng.uniform(0.6, 1.0, len(success)), rng.uniform(0.3, 0.7, len(success)))
    assert auroc(final, success) == pytest.approx(31 / 32, abs=0.02)
    assert auroc_length_controlled(final, lengths, success) == pytest.approx(31 / 32, abs=0.03)
