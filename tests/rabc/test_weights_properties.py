"""Property tests: the vectorised weights against a literal per-row transcription of LeRobot's loop."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rabc.weights import RABCWeights
from tests.conftest import progress_table


def lerobot_reference(index, episode, progress, chunk, kappa, eps=1e-6, fallback=1.0):
    """LeRobot 0.6.1 `RABCWeights` semantics, row by row with dicts (reference/lerobot_sarm.md section 5)."""
    lookup = {int(i): float(p) for i, p in zip(index, progress, strict=True) if not np.isnan(p)}
    ep_of = {int(i): int(e) for i, e in zip(index, episode, strict=True)}
    end = {}
    for i, e in zip(index, episode, strict=True):
        end[int(e)] = max(end.get(int(e), -1), int(i) + 1)

    def delta(i):
        if i not in lookup:
            return np.nan
        fut = min(i + chunk, end[ep_of[i]] - 1)
        return lookup[fut] - lookup[i] if fut in lookup else np.nan

    deltas = np.array([delta(int(i)) for i in index])
    valid = deltas[~np.isnan(deltas)]
    mu = max(float(np.mean(valid)), 0.0) if valid.size else 0.0
    sigma = max(float(np.std(valid)), eps) if valid.size else eps
    weights = []
    for d in deltas.astype(np.float32):
        if np.isnan(d):
            weights.append(fallback)
        elif d > np.float32(kappa):
            weights.append(1.0)
        elif d >= 0:
            weights.append(min(max((d - (mu - 2 * sigma)) / (4 * sigma + eps), 0.0), 1.0))
        else:
            weights.append(0.0)
    return deltas, mu, sigma, np.array(weights, np.float32)


episodes_strategy = st.lists(
    st.lists(st.one_of(st.floats(0, 1, width=32), st.just(float("nan"))), min_size=1, max_size=30),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(episodes=episodes_strategy, chunk=st.integers(1, 12), kappa=st.floats(0, 0.5), drop=st.integers(0, 5))
def test_matches_lerobot_row_by_row(episodes, chunk, kappa, drop):
    table = progress_table(episodes)
    if drop and table.num_rows > drop:  # a gap in the index: LeRobot gives NaN deltas across it
        keep = np.ones(table.num_rows, bool)
        keep[drop] = False
        table = table.filter(keep)
    w = RABCWeights.from_progress(table, chunk_size=chunk, kappa=kappa)
    column = table.column("progress_sparse").to_numpy(zero_copy_only=False)
    deltas, mu, sigma, weights = lerobot_reference(
        table.column("index").to_numpy(), table.column("episode_index").to_numpy(), column, chunk, kappa
    )
    np.testing.assert_array_equal(np.isnan(w.deltas), np.isnan(deltas))
    np.testing.assert_allclose(w.deltas, deltas, equal_nan=True, atol=1e-12)
    assert abs(w.delta_mean - mu) < 1e-9 and abs(w.delta_std - sigma) < 1e-9
    np.testing.assert_allclose(w.weights, weights, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(episodes=episodes_strategy, chunk=st.integers(1, 12), kappa=st.floats(0, 0.5))
def test_eq9_invariants(episodes, chunk, kappa):
    w = RABCWeights.from_progress(progress_table(episodes), chunk_size=chunk, kappa=kappa)
    d, wt = w.deltas.astype(np.float32), w.weights
    assert np.all((wt >= 0) & (wt <= 1))
    assert np.all(wt[d < 0] == 0)
    assert np.all(wt[d > np.float32(kappa)] == 1)
    assert np.all(wt[np.isnan(d)] == 1.0) and w.num_fallback == int(np.isnan(d).sum())
    finite = ~np.isnan(d) & (d >= 0) & (d <= np.float32(kappa))
    order = np.argsort(d[finite], kind="stable")
    assert np.all(np.diff(wt[finite][order]) >= 0)  # in the soft band, weight grows with delta
