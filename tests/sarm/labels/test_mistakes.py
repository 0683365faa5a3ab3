"""The mistake and failure label policies of `StageSchema.targets`: known answers, then properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sarm.labels.mistakes import Mistake, coerce_outcome, kept_frames, label_time_spans, validate_mistakes
from sarm.labels.schema import LAST_TAU, StageSchema

ABC = StageSchema(["a", "b", "c"], [1, 1, 1])
SPANS = [("a", 0, 9), ("b", 10, 29), ("c", 30, 49)]


def test_hold_is_flat_inside_the_mistake_and_resumes_from_there():
    y = ABC.targets(SPANS, 50, mistakes="hold", mistake_spans=[("pause", 15, 24)])
    f = np.arange(50)
    # "b" keeps frames 10..14 and 25..29: ten frames, tau = (kept frames before f) / 9
    b_kept = np.r_[10:15, 25:30]
    np.testing.assert_allclose(y[b_kept], 1 + np.arange(10) / 9, atol=1e-12)
    assert np.all(y[15:25] == y[14])  # held at the value when the mistake began
    np.testing.assert_allclose(y[:10], f[:10] / 9, atol=1e-12)  # before the mistake: unchanged
    np.testing.assert_allclose(y[30:], np.minimum(2 + (f[30:] - 30) / 19, 2 + LAST_TAU), atol=1e-12)


def test_ignore_and_no_mistakes_give_the_plain_targets():
    plain = ABC.targets(SPANS, 50)
    np.testing.assert_array_equal(ABC.targets(SPANS, 50, mistake_spans=[("pause", 15, 24)]), plain)
    np.testing.assert_array_equal(ABC.targets(SPANS, 50, mistakes="hold", mistake_spans=[]), plain)
    np.testing.assert_array_equal(ABC.targets(SPANS, 50, failures="truncate", outcome="success"), plain)
    np.testing.assert_array_equal(ABC.targets(SPANS, 50, failures="exclude", outcome="failure"), plain)


def test_a_drop_regrasp_marked_as_a_mistake_keeps_progress_from_going_back():
    # a regression labelled on purpose (order="allow"): b, then a again (the regrasp), then b and c;
    # the mistake covers the drop and the recovery up to where b had got (frames 20..39)
    spans = [("a", 0, 9), ("b", 10, 19), ("a", 20, 29), ("b", 30, 39), ("c", 40, 49)]
    raw = ABC.targets(spans, 50, order="allow")
    assert np.any(np.diff(raw) < 0)
    held = ABC.targets(spans, 50, order="allow", mistakes="hold", mistake_spans=[("drop", 20, 39)])
    assert np.all(np.diff(held) >= 0)
    assert np.all(held[20:40] == held[19]) and held[19] == 2.0
    np.testing.assert_allclose(held[40:], np.minimum(2 + np.arange(10) / 9, 2 + LAST_TAU), atol=1e-12)


def test_truncate_caps_a_failure_at_the_start_of_its_unfinished_stage():
    y = ABC.targets(SPANS, 50, failures="truncate", outcome="failure")
    np.testing.assert_array_equal(y[30:], 2.0)  # "c" ends the episode: unfinished, held at its start
    np.testing.assert_array_equal(y[:30], ABC.targets(SPANS, 50)[:30])
    # the last span ends before the episode does: "b" is finished, "c" never started
    early = ABC.targets(SPANS[:2], 50, failures="truncate", outcome=False)
    np.testing.assert_array_equal(early[29:], 2.0)  # not LeRobot's K - 1 + 0.999 after the last span
    assert ABC.targets(SPANS[:2], 50)[40] == 2 + LAST_TAU
    partial = ABC.targets(SPANS, 50, failures="truncate", outcome="partial")
    np.testing.assert_array_equal(partial, y)


def test_truncate_of_a_single_stage_is_zero_and_hold_applies_to_linear_progress():
    one = StageSchema.single()
    np.testing.assert_array_equal(one.targets(None, 20, failures="truncate", outcome="failure"), 0.0)
    y = one.targets(None, 20, mistakes="hold", mistake_spans=[("pause", 5, 9)])
    expected = np.minimum(np.arange(15) / 14, LAST_TAU)  # the last frame is capped, as without mistakes
    np.testing.assert_allclose(y[np.r_[0:5, 10:20]], expected, atol=1e-12)
    assert np.all(y[5:10] == y[4])


def test_frames_outside_take_the_first_or_last_label():
    y = ABC.targets(SPANS, 50, mistakes="hold", mistake_spans=[("pause", 15, 24)], frames=[-3, 14, 60])
    full = ABC.targets(SPANS, 50, mistakes="hold", mistake_spans=[("pause", 15, 24)])
    np.testing.assert_array_equal(y, [full[0], full[14], full[49]])


def test_bad_policies_and_records_are_errors_naming_them():
    with pytest.raises(ValueError, match=r"mistakes should be one of \['ignore', 'hold'\]"):
        ABC.targets(SPANS, 50, mistakes="skip")
    with pytest.raises(ValueError, match=r"failures should be one of \['keep', 'truncate', 'exclude'\]"):
        ABC.targets(SPANS, 50, failures="drop")
    with pytest.raises(ValueError, match=r"mistake \('pause', 45, 60\) in episode 3 lies outside .*0..49"):
        ABC.targets(SPANS, 50, episode=3, mistakes="hold", mistake_spans=[("pause", 45, 60)])
    with pytest.raises(ValueError, match=r"is reversed"):
        validate_mistakes([("pause", 9, 5)], 50)
    with pytest.raises(ValueError, match=r"outcome 'won' in episode 2 should be one of"):
        coerce_outcome("won", 2)
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['end'\]"):
        Mistake.coerce({"kind": "pause", "start": 1})


def test_records_coerce():
    assert Mistake.coerce({"name": "drop", "start": 1, "end": 4}) == Mistake("drop", 1, 4)
    assert [coerce_outcome(v) for v in (True, False, 1, 0, "Success", " partial ", None)] == [
        "success",
        "failure",
        "success",
        "failure",
        "success",
        "partial",
        None,
    ]
    kept = kept_frames([Mistake("p", 2, 3), Mistake("q", 3, 5)], 8)  # overlapping mistakes
    assert kept.tolist() == [True, True, False, False, False, False, True, True]
    assert label_time_spans([("a", 0, 3), ("b", 4, 5), ("c", 6, 7)], kept) == [("a", 0, 1), ("c", 2, 3)]


# ---------------------------------------------------------------------------------------------- properties


@st.composite
def _episode(draw):
    """In-order spans of a 2-4 stage schema (gaps allowed), mistakes anywhere, and an outcome."""
    k = draw(st.integers(2, 4))
    n = draw(st.integers(k + 2, 80))
    cuts = sorted(draw(st.lists(st.integers(0, n - 1), min_size=2 * k, max_size=2 * k)))
    used = draw(st.integers(1, k))
    spans = [(f"s{i}", cuts[2 * i], cuts[2 * i + 1]) for i in range(used)]
    spans = [s for i, s in enumerate(spans) if i == 0 or s[1] > spans[i - 1][2]]
    marks = []
    for _ in range(draw(st.integers(0, 3))):
        a = draw(st.integers(0, n - 1))
        marks.append(("m", a, draw(st.integers(a, n - 1))))
    outcome = draw(st.sampled_from([None, "success", "failure", "partial"]))
    schema = StageSchema(
        [f"s{i}" for i in range(k)], draw(st.lists(st.floats(0.1, 1), min_size=k, max_size=k))
    )
    return schema, spans, n, marks, outcome


@settings(max_examples=200, deadline=None)
@given(_episode(), st.sampled_from(["ignore", "hold"]), st.sampled_from(["keep", "truncate"]))
def test_progress_never_goes_back_in_mistake_free_ordered_spans(episode, mistakes, failures):
    schema, spans, n, marks, outcome = episode
    y = schema.targets(spans, n, mistakes=mistakes, mistake_spans=marks, failures=failures, outcome=outcome)
    p = schema.progress(y)
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1


@settings(max_examples=200, deadline=None)
@given(_episode())
def test_hold_is_flat_in_every_mistake_at_its_value_before(episode):
    schema, spans, n, marks, outcome = episode
    y = schema.targets(spans, n, mistakes="hold", mistake_spans=marks, failures="truncate", outcome=outcome)
    kept = kept_frames(validate_mistakes(marks, n), n)
    for _, start, end in marks:
        block = y[start : end + 1]
        assert np.all(block == block[0])
        if start > 0:
            assert block[0] == y[start - 1] or not kept[start - 1]  # a mistake joins the one before it
    if kept.any():  # on the kept frames the labels are those of the spans on the clock without mistakes
        clock = label_time_spans(spans, kept)
        expected = schema.targets(clock, int(kept.sum()), failures="truncate", outcome=outcome)
        np.testing.assert_array_equal(y[kept], expected)
