"""benchmarks/online_metaworld.py: the success detector's scoring against the simulator, on hand-built
rollouts (the run itself needs a `sarm demo` output and minutes of rendering)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
pytest.importorskip("metaworld")

from online_metaworld import DETECTORS, detection, fire_frame


def test_fire_frame_waits_for_k_frames_above_the_threshold_and_restarts_after_a_dip():
    p = np.array([0.1, 0.95, 0.95, 0.2, 0.91, 0.92, 0.93, 0.5])
    assert fire_frame(p, 0.9, 1) == 1
    assert fire_frame(p, 0.9, 3) == 6  # frames 1-2 are only two; the count restarts after frame 3
    assert fire_frame(p, 0.99, 1) == -1


def test_detection_counts_hits_false_alarms_misses_and_delays_per_rollout():
    rising = np.clip(np.arange(50) / 36, 0, 1)  # >= 0.9 from frame 33 on (32.4 / 36 < 0.9)
    flat = np.full(50, 0.3)
    spike = np.where(np.arange(50) == 20, 1.0, 0.3)
    progress = {0: rising, 1: flat, 2: spike, 3: rising}
    episodes = [
        SimpleNamespace(
            episode=0, success=True, first_success=30
        ),  # fires at 33 (k=1), 37 (k=5): delays from 31
        SimpleNamespace(episode=1, success=True, first_success=10),  # never fires: a miss
        SimpleNamespace(episode=2, success=False, first_success=None),  # the spike: k=1 fires, k=5 not
        SimpleNamespace(episode=3, success=False, first_success=None),  # fires, but the sim says failure
    ]
    rows = {(r["threshold"], r["steps"]): r for r in detection(progress, episodes)}
    assert set(rows) == set(DETECTORS)
    one = rows[(0.9, 1)]
    assert (one["true_pos"], one["false_pos"], one["false_neg"]) == (1, 2, 1)
    assert one["precision"] == pytest.approx(1 / 3) and one["recall"] == pytest.approx(1 / 2)
    assert one["delay_median"] == 33 - 31
    five = rows[(0.9, 5)]
    assert (five["true_pos"], five["false_pos"], five["false_neg"]) == (1, 1, 1)  # the spike is ignored
    assert five["delay_min"] == five["delay_max"] == 37 - 31
    assert rows[(0.95, 10)]["delay_median"] == 44 - 31  # 0.95 from frame 35 (34.2 / 36 < 0.95): frames 35-44
