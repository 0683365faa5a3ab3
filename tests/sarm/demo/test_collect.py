"""sarm.demo: the protocol, stage / progress labels, annotation spans and Meta-World collection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sarm.demo.collect import STAGES, Episode, annotation_spans, mistake_record, stage_and_progress
from sarm.demo.protocol import (
    DEFAULT_PROTOCOL,
    EVALUATION_V2,
    LABEL_POLICIES,
    MISTAKES,
    REWARD_MODELS_V2,
    Protocol,
    sarm_model_name,
)
from sarm.labels.mistakes import FAILURE_POLICIES, MISTAKE_POLICIES


def test_protocol_rejects_bad_settings_and_prints_itself():
    with pytest.raises(ValueError, match=r"noisy_share should lie in \[0, 1\]"):
        Protocol(noisy_share=1.5)
    with pytest.raises(ValueError, match="mistakes should be a non-empty subset"):
        Protocol(mistakes=("teleport",))
    with pytest.raises(ValueError, match=r"pause_steps should be a range"):
        Protocol(pause_steps=(30, 10))
    text = DEFAULT_PROTOCOL.describe()
    assert "noisy_share: 0.5" in text and all(m in text for m in MISTAKES)


def test_the_v2_plan_names_every_arm_and_reward_model_once():
    assert DEFAULT_PROTOCOL.version == 2 and DEFAULT_PROTOCOL.last_span_end == "first_success"
    with pytest.raises(ValueError, match=r"last_span_end should be one of \['first_success', 'last_frame'\]"):
        Protocol(last_span_end="end")
    assert {(m, f) for m, f in LABEL_POLICIES} == {(m, f) for m in MISTAKE_POLICIES for f in FAILURE_POLICIES}
    assert len(set(EVALUATION_V2.methods)) == len(EVALUATION_V2.methods) == 11
    assert EVALUATION_V2.train_seeds == (0, 1, 2, 3, 4) and EVALUATION_V2.rollouts == 50
    assert sarm_model_name("hold", "truncate") in REWARD_MODELS_V2 == EVALUATION_V2.reward_models
    for model in ("linear_time", "rewind_single", "sarm_best", "sarm_ignore_keep"):
        assert {f"rabc_sampler_{model}", f"rabc_loss_{model}"} <= set(EVALUATION_V2.methods)


def test_annotation_spans_follow_the_running_maximum_of_the_stage():
    stage = np.array([0, 0, 1, 1, 2, 2, 1, 1, 2, 2])  # a drop in the middle stays in "transport"
    names, starts, ends = annotation_spans(stage)
    assert names == list(STAGES) and starts == [0, 2, 4] and ends == [1, 3, 9]
    names, starts, ends = annotation_spans(np.array([0, 0, 1, 1, 0]))  # a failure never transports
    assert names == ["reach", "grasp"] and starts == [0, 2] and ends == [1, 4]
    names, starts, ends = annotation_spans(np.array([0, 0, 2, 2]))  # grasp skipped within one step
    assert names == ["reach", "transport"] and starts == [0, 2] and ends == [1, 3]


def test_a_success_ends_its_last_span_at_the_first_success():
    stage = np.array([0, 0, 1, 1, 2, 2, 2, 2, 2, 2])  # success at frame 6, recording goes on to 9
    names, starts, ends = annotation_spans(stage, end=6)
    assert names == list(STAGES) and starts == [0, 2, 4] and ends == [1, 3, 6]
    assert annotation_spans(stage, end=2)[2] == [1, 3, 4]  # never before the last stage's start
    assert annotation_spans(stage, end=None)[2] == [1, 3, 9]


def _episode(progress, mistake=None, span=None):
    n = len(progress)
    return Episode(
        task="pick-place-v3",
        episode=0,
        states=np.zeros((n, 39), np.float32),
        actions=np.zeros((n, 4), np.float32),
        images=None,
        stage=np.zeros(n, np.int64),
        progress=np.asarray(progress, np.float32),
        success=True,
        first_success=None,
        mistake=mistake,
        mistake_span=span,
    )


def test_mistake_record_covers_the_injected_segment_and_the_recovery():
    assert mistake_record(_episode([0.1, 0.2, 0.3])) == []
    pause = _episode([0.1, 0.2, 0.2, 0.2, 0.3, 0.4], "pause", (1, 4))  # frames 1..3 injected
    assert mistake_record(pause) == [("pause", 1, 3)]
    drop = _episode([0.1, 0.5, 0.4, 0.2, 0.3, 0.45, 0.5, 0.6], "drop_regrasp", (1, 3))
    assert mistake_record(drop) == [("drop_regrasp", 1, 5)]  # back at 0.5 on frame 6
    lost = _episode([0.1, 0.5, 0.2, 0.1, 0.2], "random", (1, 3))
    assert mistake_record(lost) == [("random", 1, 4)]  # never recovers: to the last frame


def _states(hand, obj, grip, goal=(0.0, 0.3, 0.0)):
    n = len(hand)
    s = np.zeros((n, 39), np.float32)
    s[:, :3], s[:, 3], s[:, 4:7], s[:, -3:] = hand, grip, obj, goal
    return s


def test_stage_and_progress_by_hand():
    # hand approaches the object, closes, lifts it toward the goal, then drops it
    hand = np.array([[0.3, 0, 0.1], [0.1, 0, 0.05], [0, 0, 0.02], [0, 0, 0.02], [0, 0.1, 0.1], [0, 0.1, 0.1]])
    obj = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0.1, 0.08], [0, 0.1, 0.0]])
    grip = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    stage, progress = stage_and_progress(_states(hand, obj, grip), "pick-place-v3")
    assert stage.tolist() == [0, 0, 1, 1, 2, 0]  # lifted while held; dropped far from the hand
    assert progress[0] == 0 and 0 < progress[1] < 1 / 3
    assert progress[2] == pytest.approx(1 / 3) and progress[3] == pytest.approx(2 / 3)
    carried = 1 - (np.linalg.norm([0, 0.2, -0.08]) - 0.07) / (0.3 - 0.07)
    assert progress[4] == pytest.approx((2 + carried) / 3, rel=1e-5)
    assert progress[5] < progress[4]  # a drop is a regression


metaworld = pytest.importorskip("metaworld")


def _collect(task, ids, render=False, **protocol):
    from sarm.demo.collect import collect

    return list(collect(task, ids, dataclasses.replace(DEFAULT_PROTOCOL, **protocol), render=render))


def test_collection_is_deterministic_and_clean_experts_succeed():
    first = _collect("pick-place-v3", [0, 1, 2], noisy_share=0.0)
    again = _collect("pick-place-v3", [2, 0], noisy_share=0.0)
    np.testing.assert_array_equal(first[2].states, again[0].states)
    np.testing.assert_array_equal(first[0].actions, again[1].actions)
    for ep in first:
        assert ep.mistake is None and ep.success and ep.first_success is not None
        assert len(ep.states) == ep.first_success + DEFAULT_PROTOCOL.steps_after_success
        assert ep.progress[-1] > 0.9 and not (np.diff(ep.stage) < 0).any()
        assert ep.states.dtype == np.float32 and ep.actions.shape == (len(ep.states), 4)
        assert np.abs(ep.actions).max() <= 1


@pytest.mark.parametrize("kind", MISTAKES)
def test_each_mistake_is_injected_and_labelled(kind):
    episodes = _collect("pick-place-v3", range(4), noisy_share=1.0, mistakes=(kind,))
    for ep in episodes:
        assert ep.mistake == kind, ep.episode
        start, end = ep.mistake_span
        assert DEFAULT_PROTOCOL.onset[0] <= start < end <= len(ep.states)
        segment = ep.actions[start:end]
        if kind == "pause":
            assert not segment[:, :3].any()
        if kind == "drop_regrasp":
            assert (segment[:, 3] == -1).all() and ep.stage[start] == 2  # it starts while carrying
        ((recorded, first, last),) = mistake_record(ep)
        assert recorded == kind and first == start and end - 1 <= last < len(ep.states)
    if kind == "drop_regrasp":
        assert any((np.diff(ep.stage) < 0).any() for ep in episodes)  # the stage regresses


def test_rendered_frames():
    (ep,) = _collect("shelf-place-v3", [0], render=True, noisy_share=0.0, max_steps=12)
    assert ep.images.shape == (12, 64, 64, 3) and ep.images.dtype == np.uint8
    assert ep.images.std() > 10  # a scene, not a blank frame
    assert not np.array_equal(ep.images[0], ep.images[-1])  # the arm moved
