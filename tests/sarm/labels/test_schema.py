"""Stage-aware labels: LeRobot 0.6.1's labels bit for bit, Formula 2, Eq. 1 proportions, schemas."""

import json

import numpy as np
import pytest
import torch

from sarm.labels.proportions import schema_from_annotations, temporal_proportions
from sarm.labels.schema import Span, StageSchema, TaskSchemas

ABC = StageSchema(names=["a", "b", "c"], proportions=[0.3, 0.2, 0.5])
ABC_SPANS = [("a", 0, 29), ("b", 30, 49), ("c", 50, 99)]


# ------------------------------------------------------------------------------ LeRobot fixture, exact


def test_reproduces_lerobot_labels_fixture_bit_for_bit(fixtures_dir):
    ref = json.loads((fixtures_dir / "labels.json").read_text())
    schema = StageSchema.from_proportions(ref["temporal_proportions"])
    assert schema.names == tuple(ref["subtask_names"])
    spans = list(zip(ref["subtask_names"], ref["starts"], ref["ends"], strict=True))
    rows = ref["rows"]
    frames = np.array([r["frame"] for r in rows])
    assert frames.max() >= ref["episode_length"]  # rows run past the episode: "after the last span"
    stage, tau = schema.stage_and_tau(spans, ref["episode_length"], frames=frames)
    y = schema.targets(spans, ref["episode_length"], frames=frames)
    progress = schema.progress(y)
    assert stage.tolist() == [r["stage"] for r in rows]
    assert tau.tolist() == [r["tau"] for r in rows]  # == on floats: bit-exact
    assert y.tolist() == [r["y"] for r in rows]
    assert progress.tolist() == [r["progress"] for r in rows]
    # the per-value float path (LeRobot's normalize_stage_tau on a Python float) agrees too
    assert [schema.progress(r["y"]) for r in rows] == [r["progress"] for r in rows]


def test_lerobot_reference_table():
    y = ABC.targets(ABC_SPANS, num_frames=100)
    p = ABC.progress(y)
    assert y[15] == pytest.approx(0.5172, abs=1e-4) and p[15] == pytest.approx(0.1552, abs=1e-4)
    assert y[15] == 15 / 29 and p[15] == pytest.approx(0.3 * 15 / 29, abs=1e-15)
    assert (y[29], p[29]) == (1.0, 0.3)  # the end of a: stage 0 with tau 1
    assert (y[30], p[30]) == (1.0, 0.3)  # the start of b: the same progress
    assert (y[49], p[49]) == (2.0, 0.5)
    assert y[99] == 2.999 and p[99] == pytest.approx(0.9995, abs=1e-15)  # LeRobot's cap


def test_breakpoints_match_lerobot_loop_and_renormalise():
    assert ABC.breakpoints.tolist() == [0.0, 0.3, 0.5, 1.0]
    s = StageSchema(["a", "b", "c"], [1, 1, 2])  # sum 4: renormalised
    assert s.breakpoints.tolist() == [0.0, 0.25, 0.5, 1.0]
    s = StageSchema(["a", "b"], [0.1, 0.2])  # 0.1 + 0.2 != 0.3 in floats: the last is forced to 1.0
    assert s.breakpoints[-1] == 1.0 and s.breakpoints.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        ABC.breakpoints[1] = 0.0


# ----------------------------------------------------------------------------------------- edge rules


def test_single_stage_is_linear_and_capped():
    s = StageSchema.single()
    assert (s.names, s.proportions, s.num_stages) == (("task",), (1.0,), 1)
    y = s.targets(None, num_frames=5)
    assert y.tolist() == [0.0, 0.25, 0.5, 0.75, 0.999]
    assert s.progress(y)[-1] == 0.999
    assert s.targets([("whatever", 0, 1)], num_frames=5).tolist() == y.tolist()  # spans ignored
    assert s.targets([], num_frames=1).tolist() == [0.0]  # max(N - 1, 1) guards the division
    stage, tau = s.stage_and_tau(None, 3, frames=[-1, 5])
    assert stage.tolist() == [0, 0] and tau.tolist() == [0.0, 1.0]  # clipped to [0, 1]


def test_before_first_span_and_after_last_span():
    s = StageSchema(["a", "b"], [0.5, 0.5])
    stage, tau = s.stage_and_tau([("a", 5, 9), ("b", 10, 14)], 20)
    assert stage[:5].tolist() == [0] * 5 and tau[:5].tolist() == [0.0] * 5
    assert stage[15:].tolist() == [1] * 5 and tau[15:].tolist() == [0.999] * 5
    assert s.targets([("a", 5, 9), ("b", 10, 14)], 20)[14:].tolist() == [1.999] * 6


def test_gap_takes_previous_stage_with_tau_one():
    s = StageSchema(["a", "b", "c"], [0.2, 0.3, 0.5])
    spans = [("a", 0, 9), ("b", 12, 19), ("c", 21, 29)]
    stage, tau = s.stage_and_tau(spans, 30)
    assert stage[[10, 11, 20]].tolist() == [0, 0, 1] and tau[[10, 11, 20]].tolist() == [1.0, 1.0, 1.0]
    p = s.progress(s.targets(spans, 30))
    assert p[[9, 10, 11, 12]].tolist() == [0.2, 0.2, 0.2, 0.2]
    assert p[20] == 0.5


def test_shared_boundary_frame_belongs_to_the_earlier_span():
    s = StageSchema(["a", "b"], [0.4, 0.6])
    for spans in ([("a", 0, 10), ("b", 10, 20)], [("b", 10, 20), ("a", 0, 10)]):  # order given: irrelevant
        stage, tau = s.stage_and_tau(spans, 21)
        assert (stage[10], tau[10]) == (0, 1.0)
        assert (stage[11], tau[11]) == (1, 0.1)


def test_single_frame_span_has_tau_one():
    s = StageSchema(["a", "b", "c"], [0.3, 0.3, 0.4])
    stage, tau = s.stage_and_tau([("a", 0, 9), ("b", 10, 10), ("c", 11, 20)], 21)
    assert (stage[10], tau[10]) == (1, 1.0)


def test_one_frame_span_on_a_shared_frame_is_owned_by_the_earlier_span():
    s = StageSchema(["a", "b", "c"], [0.3, 0.3, 0.4])
    stage, tau = s.stage_and_tau([("a", 0, 10), ("b", 10, 10), ("c", 11, 20)], 21)
    assert 1 not in stage.tolist() and (stage[10], tau[10]) == (0, 1.0)  # first match wins: b vanishes


def test_stage_follows_schema_order_not_span_order():
    s = StageSchema(["b", "a"], [0.5, 0.5])
    stage, _ = s.stage_and_tau([("a", 0, 4), ("b", 5, 9)], 10)
    assert stage.tolist() == [1] * 5 + [0] * 5


def test_empty_spans_are_lerobot_zeros_and_none_is_refused():
    stage, tau = ABC.stage_and_tau([], 4)
    assert stage.tolist() == [0] * 4 and tau.tolist() == [0.0] * 4
    with pytest.raises(ValueError, match=r"no spans in episode 7 \(None = unannotated\).*skip"):
        ABC.stage_and_tau(None, 4, episode=7)


def test_unknown_stage_name_names_episode_and_span():
    with pytest.raises(ValueError, match=r"span \('z', 0, 3\) in episode 2 names a stage.*\['a', 'b', 'c'\]"):
        ABC.targets([("a", 4, 9), ("z", 0, 3)], 10, episode=2)


def test_spans_accept_tuples_dicts_and_span():
    as_dicts = [{"name": n, "start": s, "end": e} for n, s, e in ABC_SPANS]
    as_spans = [Span(*t) for t in ABC_SPANS]
    ref = ABC.targets(ABC_SPANS, 100)
    assert ABC.targets(as_dicts, 100).tolist() == ref.tolist()
    assert ABC.targets(as_spans, 100).tolist() == ref.tolist()
    with pytest.raises(ValueError, match="integer frame index"):
        ABC.targets([("a", 0.0, 29)], 100)
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['end'\]"):
        ABC.targets([{"name": "a", "start": 0}], 100)


def test_last_span_longer_than_1000_frames_dips_at_its_capped_end():
    """LeRobot's 0.999 cap: inside a last span of > 1000 frames, tau passes 0.999 before the end frame."""
    s = StageSchema(["a", "b"], [0.5, 0.5])
    p = s.progress(s.targets([("a", 0, 9), ("b", 10, 2010)], 2011))
    assert p[2010] == s.progress(1.999) and p[2009] > p[2010]  # tau(2009) = 0.9995 > 0.999
    short = s.progress(s.targets([("a", 0, 9), ("b", 10, 1009)], 1010))
    assert np.all(np.diff(short) >= 0)  # up to 1000 frames: tau <= 0.999 before the end, no dip


# ------------------------------------------------------------------------------------------- progress


def test_progress_types_and_limits():
    y = np.array([-0.5, 0.0, 0.5, 1.0, 2.5, 2.999, 3.0, 7.0, np.nan])
    p = ABC.progress(y)
    assert p[:8].tolist() == [0.0, 0.0, 0.15, 0.3, 0.75, ABC.progress(2.999), 1.0, 1.0]
    assert np.isnan(p[8])  # unknown stays unknown
    assert isinstance(ABC.progress(1.0), float) and ABC.progress(1.0) == 0.3
    assert isinstance(ABC.progress(1), float)


def test_progress_torch_matches_numpy_and_has_gradient():
    y = np.linspace(-0.5, 3.5, 81)
    t64 = ABC.progress(torch.tensor(y, dtype=torch.float64))
    assert t64.dtype == torch.float64 and t64.tolist() == ABC.progress(y).tolist()
    t32 = torch.tensor(y, dtype=torch.float32, requires_grad=True)
    p32 = ABC.progress(t32)
    assert p32.dtype == torch.float32
    np.testing.assert_allclose(p32.detach().numpy(), ABC.progress(y), atol=1e-6)
    p32.sum().backward()
    grad = t32.grad.numpy()
    inside = (y > 0) & (y < 3) & (np.abs(y - np.round(y)) > 1e-3)
    np.testing.assert_allclose(grad[inside], np.array([0.3, 0.2, 0.5])[np.floor(y[inside]).astype(int)])


def test_targets_from_progress_inverts_and_skips_zero_width_stages():
    assert ABC.targets_from_progress(0.3) == 1.0
    assert ABC.targets_from_progress(0.0) == 0.0
    assert ABC.targets_from_progress(1.0) == 3.0 and ABC.progress(3.0) == 1.0
    np.testing.assert_allclose(ABC.targets_from_progress(np.array([0.15, 0.4, 0.75])), [0.5, 1.5, 2.5])
    s = StageSchema(["a", "b", "c"], [0.5, 0.0, 0.5])
    assert s.targets_from_progress(0.5) == 2.0  # stage b has no width: p = 0.5 starts stage c
    assert np.isnan(s.targets_from_progress(np.array([np.nan]))[0])
    with pytest.raises(ValueError, match=r"progress must lie in \[0, 1\], but got 1.5"):
        ABC.targets_from_progress([0.2, 1.5])
    t = ABC.targets_from_progress(torch.tensor([0.15, 0.4], dtype=torch.float64))
    assert isinstance(t, torch.Tensor) and t.tolist() == pytest.approx([0.5, 1.5])


# ------------------------------------------------------------------------------------- schema checks


@pytest.mark.parametrize(
    ("names", "proportions", "message"),
    [
        ([], [], "at least one stage"),
        (["a", "b"], [1.0], "2 names but 1 proportions"),
        (["a", "a"], [0.5, 0.5], r"unique, but \['a'\] repeat.*number_repeats"),
        (["a", ""], [0.5, 0.5], "non-empty strings"),
        (["a", "b"], [0.5, -0.1], "finite and >= 0"),
        (["a", "b"], [0.5, float("nan")], "finite and >= 0"),
        (["a", "b"], [0.0, 0.0], "positive sum"),
        ("ab", [0.5, 0.5], "the string 'ab'"),
    ],
)
def test_schema_validation_errors(names, proportions, message):
    with pytest.raises(ValueError, match=message):
        StageSchema(names=names, proportions=proportions)


def test_schema_round_trip_and_equality():
    s = StageSchema(["a", "b"], [0.25, 0.75])
    assert s.names == ("a", "b") and s.proportions == (0.25, 0.75)
    assert s.to_dict() == {"names": ["a", "b"], "proportions": [0.25, 0.75]}
    assert StageSchema.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert StageSchema.from_proportions({"a": 0.25, "b": 0.75}) == s
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['proportions'\]"):
        StageSchema.from_dict({"names": ["a"]})


# ---------------------------------------------------------------------------------------- proportions

# LeRobot's own example (seconds, spans sharing boundaries: a 0-8, b 8-10, ...) as frames at 1 fps
LEROBOT_EXAMPLE = {
    0: ([("a", 0, 8), ("b", 8, 10)], 11),
    1: ([("a", 0, 4), ("b", 4, 20)], 21),
    2: ([("a", 0, 5)], 6),
}


def test_lerobot_method_matches_lerobot_0_6_1():
    got = temporal_proportions(LEROBOT_EXAMPLE, method="lerobot")
    assert list(got) == ["a", "b"]
    assert got["a"] == pytest.approx(0.5714285714, abs=5e-11)
    assert got["b"] == pytest.approx(0.4285714286, abs=5e-11)
    repeated = temporal_proportions([([("a", 0, 2), ("b", 2, 4), ("a", 4, 10)], 11)], method="lerobot")
    assert repeated == pytest.approx({"a": 0.75, "b": 0.25}, abs=1e-15)


def test_paper_method_is_eq1_over_all_episodes():
    inclusive = {
        0: ([("a", 0, 7), ("b", 8, 9)], 10),
        1: ([("a", 0, 3), ("b", 4, 19)], 20),
        2: ([("a", 0, 4)], 5),
    }
    got = temporal_proportions(inclusive)  # b missing from episode 2 counts as 0
    assert got == pytest.approx({"a": 2 / 3, "b": 1 / 3}, abs=1e-15)
    repeated = temporal_proportions([([("a", 0, 1), ("b", 2, 3), ("a", 4, 9)], 10)])  # occurrences add up
    assert repeated == pytest.approx({"a": 0.8, "b": 0.2}, abs=1e-15)
    partial = temporal_proportions([([("a", 0, 9), ("b", 50, 59)], 100)])  # 0.1 + 0.1: renormalised
    assert partial == pytest.approx({"a": 0.5, "b": 0.5}, abs=1e-15)


@pytest.mark.parametrize("method", ["paper", "lerobot"])
def test_symmetric_episodes_give_equal_proportions(method):
    episodes = [([("a", 0, 79), ("b", 80, 99)], 100), ([("a", 0, 19), ("b", 20, 99)], 100)]
    assert temporal_proportions(episodes, method=method) == pytest.approx({"a": 0.5, "b": 0.5}, abs=1e-15)


def test_default_order_by_mean_relative_start_then_first_appearance():
    episodes = [
        ([("late", 0, 1), ("early", 2, 3)], 10),  # late starts first here ...
        ([("early", 0, 3), ("late", 90, 99)], 100),  # ... but much later on average
    ]
    assert list(temporal_proportions(episodes)) == ["early", "late"]
    tie = [([("x", 0, 4), ("y", 5, 9)], 10), ([("y", 0, 4), ("x", 5, 9)], 10)]
    assert list(temporal_proportions(tie)) == ["x", "y"]  # equal means: x appeared first


def test_names_fix_order_and_are_checked():
    assert list(temporal_proportions(LEROBOT_EXAMPLE, names=["b", "a"])) == ["b", "a"]
    with pytest.raises(ValueError, match=r"span \('b', 8, 10\) in episode 0 names stage 'b'.*\['a'\]"):
        temporal_proportions(LEROBOT_EXAMPLE, names=["a"])
    with pytest.raises(ValueError, match=r"stage\(s\) \['c'\] in names never occur.*LeRobot silently drops"):
        temporal_proportions(LEROBOT_EXAMPLE, names=["a", "b", "c"])
    with pytest.raises(ValueError, match="method should be one of"):
        temporal_proportions(LEROBOT_EXAMPLE, method="mean")
    with pytest.raises(ValueError, match=r"span \('a', 0, 12\) in episode 'ep' is reversed or outside"):
        temporal_proportions({"ep": ([("a", 0, 12)], 10)})


def test_unannotated_episodes_are_skipped_and_none_gives_single_stage():
    with_blank = {**LEROBOT_EXAMPLE, 3: (None, 50), 4: ([], 50)}
    assert temporal_proportions(with_blank) == temporal_proportions(LEROBOT_EXAMPLE)
    assert temporal_proportions([(None, 10), ([], 5)]) == {"task": 1.0}
    with pytest.raises(ValueError, match="no episode is annotated"):
        temporal_proportions([(None, 10)], names=["a"])


def test_schema_from_annotations():
    annotations = {0: [Span("a", 0, 7), Span("b", 8, 9)], 1: None, 2: [("a", 0, 3), ("b", 4, 19)]}
    schema = schema_from_annotations(annotations, {0: 10, 1: 30, 2: 20})
    assert schema.names == ("a", "b") and schema.proportions == pytest.approx((0.5, 0.5), abs=1e-15)
    assert schema_from_annotations({0: None, 1: []}, {}) == StageSchema.single()
    with pytest.raises(ValueError, match="episode 2 is annotated but has no length"):
        schema_from_annotations(annotations, {0: 10})


# --------------------------------------------------------------------------------------- TaskSchemas


def test_task_schemas():
    fold = StageSchema(["grab", "fold"], [0.3, 0.7])
    tasks = TaskSchemas({"fold the shirt": fold, "*": StageSchema.single()})
    assert tasks.schema_for("fold the shirt") is fold
    assert tasks.schema_for("anything else") == StageSchema.single()
    assert (tasks.max_stages, len(tasks), list(tasks)) == (2, 2, ["fold the shirt", "*"])
    assert dict(tasks.items())["*"].num_stages == 1 and "fold the shirt" in tasks
    assert TaskSchemas.from_dict(json.loads(json.dumps(tasks.to_dict()))) == tasks
    assert tasks.to_dict()["fold the shirt"] == {"names": ["grab", "fold"], "proportions": [0.3, 0.7]}
    assert list(TaskSchemas.single_schema(fold).items()) == [("*", fold)]


def test_task_schemas_errors():
    tasks = TaskSchemas({"fold": StageSchema.single(), "pour": StageSchema.single()})
    with pytest.raises(
        ValueError, match=r"no stage schema for task 'stack'; known tasks: \['fold', 'pour'\]"
    ):
        tasks.schema_for("stack")
    with pytest.raises(ValueError, match="at least one schema"):
        TaskSchemas({})
    with pytest.raises(ValueError, match="should be a StageSchema or a dict"):
        TaskSchemas({"fold": [0.5, 0.5]})
    with pytest.raises(ValueError, match="non-empty strings"):
        TaskSchemas({"": StageSchema.single()})
