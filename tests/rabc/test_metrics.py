"""`rabc.metrics.grouped_spearman` and `grouped_pearson` against scipy, group by group."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rabc.metrics import grouped_pearson, grouped_spearman


def test_grouped_correlations_match_scipy_per_group():
    rng = np.random.default_rng(0)
    counts = np.array([7, 1, 12, 5])
    n = int(counts.sum())
    x = rng.integers(0, 4, n).astype(np.float64)  # ties inside groups
    y = x + rng.normal(0, 1.0, n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rho, r = grouped_spearman(x, y, starts, counts), grouped_pearson(x, y, starts, counts)
    for g, (s, c) in enumerate(zip(starts, counts, strict=True)):
        if c < 2:
            assert np.isnan(rho[g]) and np.isnan(r[g])
            continue
        assert rho[g] == pytest.approx(stats.spearmanr(x[s : s + c], y[s : s + c]).statistic)
        assert r[g] == pytest.approx(stats.pearsonr(x[s : s + c], y[s : s + c]).statistic)


def test_constant_side_is_nan():
    out = grouped_spearman(np.ones(5), np.arange(5.0), np.array([0]), np.array([5]))
    assert np.isnan(out[0])
