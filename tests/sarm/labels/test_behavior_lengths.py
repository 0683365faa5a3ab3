"""BEHAVIOR files without `meta_data` (or without `valid_duration`): usable once the length is known."""

import json

import pytest

from sarm.labels.annotations import read_behavior_annotations
from sarm.labels.schema import Span

SKILLS = [
    {"skill_description": ["move to"], "frame_duration": [0, 9]},
    {"skill_description": ["pick up from"], "frame_duration": [10, 29]},
]


def write(path, meta=None):
    data = {"task_name": "t", "skill_annotation": SKILLS}
    if meta is not None:
        data["meta_data"] = meta
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("meta", [None, {}, {"task_duration": 40}])
def test_without_valid_duration_the_length_comes_from_the_caller(tmp_path, meta):
    path = write(tmp_path / "episode_00000007.json", meta)
    expected = [Span("move to", 0, 9), Span("pick up from", 10, 29)]  # the file's frames, unshifted
    for num_frames in (40, {"episode_00000007": 40}, {7: 40}):
        ep = read_behavior_annotations(path, num_frames=num_frames)["episode_00000007"]
        assert ep.num_frames == 40 and ep.spans == expected and ep.task == "t"
    unknown = read_behavior_annotations(path)["episode_00000007"]  # checked later, against the cache
    assert unknown.num_frames is None and unknown.spans == expected
    assert read_behavior_annotations(path, num_frames={8: 40})["episode_00000007"].num_frames is None


def test_a_known_length_still_bounds_the_spans(tmp_path):
    path = write(tmp_path / "episode_3.json")
    with pytest.raises(
        ValueError, match=r"\('pick up from', 10, 29\) in episode 'episode_3' lies outside.*0\.\.19"
    ):
        read_behavior_annotations(path, num_frames=20)
    with pytest.raises(ValueError, match="num_frames should be an int or a mapping"):
        read_behavior_annotations(path, num_frames=[20])


def test_valid_duration_still_wins(tmp_path):
    path = write(tmp_path / "episode_3.json", {"valid_duration": [0, 49]})
    ep = read_behavior_annotations(path, num_frames=999)["episode_3"]
    assert ep.num_frames == 50 and ep.spans[1] == Span("pick up from", 10, 29)
