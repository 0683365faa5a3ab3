"""`sarm.labels.targets.label_episodes`: the labels `sarm train` and `sarm eval` share (hand-built spans)."""

from __future__ import annotations

import numpy as np
import pytest

from sarm.labels import StageSchema
from sarm.labels.targets import label_episodes

SPANS = {0: [("reach", 0, 9), ("grasp", 10, 29)], 1: [("reach", 0, 14), ("grasp", 15, 29)], 2: None}


def test_progress_is_formula_2_of_the_schema_targets():
    labels = label_episodes([0, 1], [30, 30], ["t", "t"], annotations={"sparse": SPANS})
    # Eq. 1 proportions: mean over episodes of each stage's share of the episode
    reach = np.mean([10 / 30, 15 / 30])
    schema = StageSchema(names=["reach", "grasp"], proportions=[reach, 1 - reach])
    want = np.concatenate([schema.progress(schema.targets(SPANS[e], 30, e)) for e in (0, 1)])
    np.testing.assert_allclose(labels.progress("sparse"), want)
    assert labels.labelled.all() and labels.starts.tolist() == [0, 30]


def test_unannotated_episode_of_a_multi_stage_task_is_unlabelled():
    labels = label_episodes([0, 1, 2], [30, 30, 20], ["t"] * 3, annotations={"sparse": SPANS})
    assert labels.labelled.tolist() == [True, True, False]
    assert np.isnan(labels.progress()[60:]).all() and np.isfinite(labels.progress()[:60]).all()


def test_no_annotations_give_one_linear_stage_and_exclude_drops_failures():
    labels = label_episodes([3, 4], [5, 5], ["t", "t"], failures="exclude", outcomes={4: "failure"})
    p = labels.progress()
    assert np.all(np.diff(p[:5]) > 0) and np.isnan(p[5:]).all()
    assert labels.excluded == [4] and labels.labelled.tolist() == [True, False]


def test_policies_without_records_are_errors():
    with pytest.raises(ValueError, match=r"mistakes='hold' \(--mistakes hold\) needs mistake spans"):
        label_episodes([0], [30], ["t"], annotations={"sparse": SPANS}, mistakes="hold")
    with pytest.raises(ValueError, match=r"unknown heads \['coarse'\]"):
        label_episodes([0], [30], ["t"], annotations={"coarse": SPANS})
