"""sarm.annotate.prompt: the answer contract read strictly, and seconds -> frames as LeRobot converts them."""

import json

import pytest

from sarm.annotate.prompt import AnswerError, instructions, parse_answer, retry_message, spans_from_seconds
from sarm.labels.schema import Span

ANSWER = {
    "subtasks": [{"name": "reach", "start": 0, "end": 1.5}, {"name": "grasp", "start": 1.5, "end": 3.0}]
}
EXPECTED = [("reach", 0.0, 1.5), ("grasp", 1.5, 3.0)]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(ANSWER),
        f"```json\n{json.dumps(ANSWER)}\n```",
        f"```\n{json.dumps(ANSWER, indent=2)}\n```",
        f"Timeline:\n- reach {{0-1.5 s}}\n- grasp\nSo the answer is {json.dumps(ANSWER)} as asked.",
        f'{{"note": "a first object"}} then {json.dumps(ANSWER)}',
    ],
    ids=["bare", "fenced", "fence-without-language", "prose-with-braces", "other-object-first"],
)
def test_answers_are_found_bare_fenced_or_inside_prose(text):
    assert parse_answer(text) == EXPECTED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I cannot tell.", "no JSON object"),
        ('{"subtasks": [{"name": "reach", "start": 0, "end": 1}', "no JSON object"),
        ('{"subtasks": []}', "non-empty list"),
        ('{"subtasks": [], "why": 1}', "extra keys"),
        ('{"subtasks": [{"name": "reach", "start": "00:00", "end": 1}]}', "number of seconds"),
        ('{"subtasks": [{"name": "reach", "start": true, "end": 1}]}', "number of seconds"),
        ('{"subtasks": [{"name": "reach", "start": -1, "end": 1}]}', "start at 0"),
        ('{"subtasks": [{"name": "reach", "start": 0, "end": 1, "why": "x"}]}', "exactly the keys"),
        ('{"subtasks": [{"name": 3, "start": 0, "end": 1}]}', "must be a string"),
        ('{"subtasks": ["reach"]}', "exactly the keys"),
    ],
)
def test_bad_answers_say_what_is_wrong(text, message):
    with pytest.raises(AnswerError, match=message):
        parse_answer(text)


def test_frames_are_lerobots_truncation_and_a_last_end_at_the_video_end_is_the_last_frame():
    # LeRobot: start_frame = int(seconds * fps); 1.5 s at 30 fps -> 45, 2.9 s -> 87; the end at 4.0 s
    # would be frame 120 == length, so it becomes the last frame 119
    subtasks = [("a", 0.0, 1.5), ("b", 1.5, 2.9), ("c", 2.9, 4.0)]
    spans = spans_from_seconds(subtasks, ["a", "b", "c"], fps=30, num_frames=120)
    assert spans == [Span("a", 0, 45), Span("b", 45, 87), Span("c", 87, 119)]
    # 2.3 * 10 is 22.999999999999996 in floating point: still frame 23
    assert spans_from_seconds([("a", 0.0, 2.3)], ["a"], fps=10, num_frames=40) == [Span("a", 0, 23)]


def test_an_end_within_the_tolerance_past_the_video_is_the_last_frame_and_beyond_it_is_refused():
    assert spans_from_seconds([("a", 0.0, 4.4)], ["a"], fps=10, num_frames=40, tolerance_s=0.5) == [
        Span("a", 0, 39)
    ]
    with pytest.raises(AnswerError, match="beyond the end of the video at 4.00 s"):
        spans_from_seconds([("a", 0.0, 4.6)], ["a"], fps=10, num_frames=40, tolerance_s=0.5)
    with pytest.raises(AnswerError, match="beyond the end"):
        spans_from_seconds([("a", 0.0, 4.1)], ["a"], fps=10, num_frames=40)


@pytest.mark.parametrize(
    ("subtasks", "message"),
    [
        ([("b", 0, 1), ("a", 1, 2)], r"must be each of \['a', 'b'\] exactly once, in this order"),
        ([("a", 0, 1)], "exactly once"),
        ([("a", 0, 1), ("a", 1, 2), ("b", 2, 3)], "exactly once"),
        ([("a", 0, 1), ("x", 1, 2)], r"unknown subtask names \['x'\]"),
        ([("a", 2, 1), ("b", 2, 3)], "starts at 2 s after it ends"),
        ([("a", 1, 2), ("b", 0.5, 3)], "before the previous subtask starts"),
        ([("a", 0, 2), ("b", 1, 3)], "overlap"),
    ],
)
def test_names_order_and_overlap_follow_sarm_labels_rules(subtasks, message):
    with pytest.raises(AnswerError, match=message):
        spans_from_seconds(subtasks, ["a", "b"], fps=10, num_frames=40)


def test_one_shared_boundary_frame_is_allowed():
    # a ends at 1.05 s (frame 10) and b starts at 1.0 s (frame 10): one shared frame
    spans = spans_from_seconds([("a", 0, 1.05), ("b", 1.0, 3)], ["a", "b"], fps=10, num_frames=40)
    assert spans == [Span("a", 0, 10), Span("b", 10, 30)]


def test_instructions_name_the_task_the_names_in_order_the_duration_and_the_contract():
    text = instructions("fold the towel", ["grab", "fold"], 12.5)
    assert "Task: fold the towel" in text and "1. grab\n2. fold" in text and "12.50 seconds" in text
    assert '{"subtasks": [{"name": str, "start": seconds, "end": seconds}, ...]}' in text
    assert "order is wrong" in retry_message("order is wrong")
