"""The stage-order policy of `StageSchema.targets`: spans that go back raise, hold, or stay on purpose."""

import numpy as np
import pytest

from sarm.labels.annotations import read_spans
from sarm.labels.proportions import schema_from_annotations
from sarm.labels.schema import ORDERS, Span, StageSchema

AB = StageSchema(["a", "b"], [0.5, 0.5])
REPEAT = [("a", 0, 9), ("b", 10, 19), ("a", 20, 29)]  # a name repeated in plain spans


def test_a_repeated_name_in_plain_spans_is_an_error_naming_episode_and_stages():
    spans = read_spans({4: [list(s) for s in REPEAT]})
    schema = schema_from_annotations(spans, {4: 30})
    assert schema.names == ("a", "b")
    with pytest.raises(
        ValueError, match=r"\('a', 20, 29\) in episode 4 \(stage 0 'a'\) follows \('b', 10, 19\)"
    ) as err:
        schema.targets(spans[4], 30, episode=4)
    message = str(err.value)
    assert "against the stage order ['a', 'b']" in message
    assert "go back from 1.00 to 0.00 at frame 20" in message
    assert "order='monotone'" in message and "--stage-map" in message


def test_monotone_holds_the_running_maximum():
    y = AB.targets(REPEAT, 30, order="monotone")
    f = np.arange(30)
    expected = np.where(f <= 9, f / 9, 1 + (f - 10) / 9)  # a ramps 0..1, b 1..2
    expected[19:] = 1.999  # b's end is the last stage's capped end; the second "a" holds it
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)
    assert np.all(np.diff(AB.progress(y)) >= 0)


def test_allow_keeps_the_drop_as_written():
    y = AB.targets(REPEAT, 30, order="allow")
    assert y[19] == 1.999 and y[20] == 0.0 and y[29] == 1.0  # the second "a" starts over
    stage, tau = AB.stage_and_tau(REPEAT, 30)  # the raw per-frame rule is unchanged
    assert stage[20] == 0 and tau[20] == 0.0


@pytest.mark.parametrize(
    ("spans", "first", "second"),
    [
        ([("b", 0, 9), ("a", 10, 19), ("c", 20, 29)], "'b'", "'a'"),  # stages in another order
        ([("a", 0, 10), ("a", 10, 20), ("c", 21, 29)], "'a'", "'a'"),  # one stage twice, shared frame
        ([("a", 0, 9), ("c", 11, 19), ("b", 21, 29)], "'c'", "'b'"),  # with gaps
    ],
)
def test_stages_out_of_order_in_one_episode(spans, first, second):
    schema = StageSchema(["a", "b", "c"], [0.3, 0.3, 0.4])
    with pytest.raises(
        ValueError, match=rf"episode 12 \(stage \d {second}\) follows .* \(stage \d {first}\)"
    ):
        schema.targets(spans, 30, episode=12)
    assert schema.order_violation(spans) is not None
    p = schema.progress(schema.targets(spans, 30, order="monotone"))
    assert np.all(np.diff(p) >= 0)
    assert np.any(np.diff(schema.progress(schema.targets(spans, 30, order="allow"))) < 0)


def test_in_order_spans_are_unchanged_by_every_policy():
    schema = StageSchema(["a", "b", "c"], [0.3, 0.2, 0.5])
    spans = [("a", 0, 29), ("b", 29, 49), ("c", 51, 99)]  # a shared frame and a gap
    frames = np.arange(-3, 105)
    ys = [schema.targets(spans, 100, frames=frames, order=o) for o in ORDERS]
    assert schema.order_violation(spans) is None
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])


def test_single_stage_and_empty_spans_ignore_order():
    single = StageSchema.single()
    assert single.order_violation(REPEAT) is None
    np.testing.assert_array_equal(single.targets(REPEAT, 5), single.targets([], 5))
    assert AB.targets([], 4).tolist() == [0.0] * 4


def test_frames_outside_the_episode_under_monotone():
    frames = np.array([-2, 0, 15, 25, 40])
    y = AB.targets(REPEAT, 30, frames=frames, order="monotone")
    assert y[0] == 0.0 and y[1] == 0.0 and y[2] == pytest.approx(1 + 5 / 9)
    assert y[3] == 1.999 and y[4] == 1.999


def test_unknown_order_and_unknown_stage():
    with pytest.raises(ValueError, match=r"order should be one of \['error', 'monotone', 'allow'\].*'up'"):
        AB.targets(REPEAT, 30, order="up")
    with pytest.raises(ValueError, match=r"span \('z', 0, 3\) in episode 2 names a stage that is not"):
        AB.order_violation([Span("a", 0, 1), Span("z", 0, 3)], episode=2)
