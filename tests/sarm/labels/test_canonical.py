"""Raw skills -> a task's canonical stages (stage maps, ordinal stages), consistent across episodes."""

import json

import numpy as np
import pytest

from sarm.labels import STAGE_MODES, StageMap, canonical_spans
from sarm.labels.annotations import read_behavior_annotations
from sarm.labels.proportions import schema_from_annotations
from sarm.labels.schema import Span

TASK = "preparing lunch box"


def behavior_file(path, skills, valid=(0, 99)):
    path.write_text(
        json.dumps(
            {
                "task_name": TASK,
                "meta_data": {"valid_duration": list(valid)},
                "skill_annotation": [
                    {"skill_description": [name], "frame_duration": frames} for name, frames in skills
                ],
            }
        )
    )
    return path


@pytest.fixture
def lunch(tmp_path):
    """Two episodes of one task: "move to" repeats, at different positions in each."""
    behavior_file(
        tmp_path / "episode_1.json",
        [("move to", [0, 19]), ("pick up from", [20, 39]), ("move to", [40, 59]), ("place on", [60, 99])],
    )
    behavior_file(
        tmp_path / "episode_2.json",
        [("move to", [0, 9]), ("move to", [10, 29]), ("pick up from", [30, 49]), ("place on", [51, 99])],
    )
    got = read_behavior_annotations(tmp_path)
    return {int(k.split("_")[1]): v.spans for k, v in got.items()}


def test_raw_behavior_skills_at_different_positions_go_back(lunch):
    """Numbered repeats ("move to #2") sit at different places: one episode contradicts the order."""
    schema = schema_from_annotations(lunch, {1: 100, 2: 100})
    assert schema.names == ("move to", "pick up from", "move to #2", "place on")
    schema.targets(lunch[1], 100, episode=1)
    with pytest.raises(ValueError, match=r"episode 2 \(stage 1 'pick up from'\) follows .*'move to #2'"):
        schema.targets(lunch[2], 100, episode=2)


def test_a_stage_map_gives_the_same_stages_in_every_episode(lunch):
    stage_map = StageMap.load({"move to": None, "pick up from": "grasp", "place on": "place"})
    got = canonical_spans(lunch, {1: TASK, 2: TASK}, stage_map=stage_map)
    assert got.spans == {
        1: [Span("grasp", 0, 39), Span("place", 40, 99)],  # "move to" joins the stage it leads to
        2: [Span("grasp", 0, 49), Span("place", 51, 99)],
    }
    assert got.order == {TASK: ["grasp", "place"]}
    schema = schema_from_annotations(got.spans, {1: 100, 2: 100}, names=got.order[TASK])
    for episode, spans in got.spans.items():
        p = schema.progress(schema.targets(spans, 100, episode=episode))
        assert np.all(np.diff(p) >= 0) and p[-1] > 0.99


def test_lookup_numbered_name_first_then_the_skill_and_per_task_maps():
    stage_map = StageMap(
        {"move to": None, "move to #2": "carry", "open": "open"}, {"other task": {"open": "unlock"}}
    )
    assert stage_map.stage_of("move to #2") == (True, "carry")
    assert stage_map.stage_of("move to #3") == (True, None)
    assert stage_map.stage_of("open #2", "other task") == (True, "unlock")
    assert stage_map.stage_of("close") == (False, None)
    assert stage_map.stage_order("other task") == ["unlock", "carry", "open"]
    spans = [("open", 0, 4), ("move to", 5, 9), ("open #2", 10, 14), ("move to #2", 15, 19)]
    assert stage_map.apply(spans, "t") == [Span("open", 0, 14), Span("carry", 15, 19)]  # repeats merge
    assert stage_map.apply([("open", 0, 4), ("move to", 6, 9)]) == [Span("open", 0, 9)]  # trailing null


def test_stage_map_from_json_file_flat_or_nested(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"pick": "grasp", "move to": None}))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"skills": {"pick": "grasp"}, "tasks": {TASK: {"move to": "walk"}}}))
    assert StageMap.load(flat).to_dict() == {"skills": {"pick": "grasp", "move to": None}, "tasks": {}}
    assert StageMap.load(str(nested)).for_task(TASK) == {"pick": "grasp", "move to": "walk"}
    assert StageMap.load(nested).source == str(nested)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({}, "maps no skill"),
        ({"pick": 3}, r"'pick' -> 3 should map a skill name to a stage name or null"),
        ({"skills": {"pick": "grasp"}, "tasks": {"t": ["x"]}}, r"tasks\['t'\] should be an object"),
        ([1, 2], "should be a JSON object, but is list"),
    ],
)
def test_stage_map_errors(source, message):
    with pytest.raises(ValueError, match=message):
        StageMap.load(source)


def test_stage_map_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stage map `.*nope.json` does not exist"):
        StageMap.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"stage map `.*bad.json` is not valid JSON"):
        StageMap.load(tmp_path / "bad.json")


def test_unmapped_skills_are_listed_together(lunch):
    with pytest.raises(
        ValueError, match=r"no stage for skill\(s\) \['pick up from', 'place on'\] \(first in episode 1"
    ) as err:
        canonical_spans(lunch, {1: TASK, 2: TASK}, stage_map={"move to": "walk"})
    assert "null to merge them into the next stage" in str(err.value)


def test_stage_map_tasks_must_exist_and_an_episode_needs_a_stage(lunch):
    with pytest.raises(
        ValueError, match=r"entries for task\(s\) \['Lunch'\] that no episode has; tasks: \['prep"
    ):
        canonical_spans(lunch, {1: TASK, 2: TASK}, stage_map={"tasks": {"Lunch": {"pick up from": "g"}}})
    with pytest.raises(ValueError, match="every skill of episode 1 maps to null"):
        canonical_spans({1: [("move to", 0, 4)]}, {1: TASK}, stage_map={"move to": None})
    with pytest.raises(ValueError, match=r"episodes \[3\] have spans but no task text"):
        canonical_spans({3: [("a", 0, 4)]}, {1: TASK})


def test_ordinal_stages_need_one_sequence_per_task(lunch):
    same = {e: [("a", 0, 9), ("b", 10, 19), ("a", 20, 29)] for e in (1, 2, 3)} | {4: None}
    tasks = dict.fromkeys((1, 2, 3, 4), TASK)
    got = canonical_spans(same, tasks, stages="ordinal")
    assert got.order == {TASK: ["a", "b", "a #2"]} and got.spans[4] is None
    schema = schema_from_annotations(got.spans, dict.fromkeys(tasks, 30), names=got.order[TASK])
    assert np.all(np.diff(schema.progress(schema.targets(got.spans[1], 30))) >= 0)
    with pytest.raises(
        ValueError,
        match=r"task 'preparing lunch box', but episode\(s\) \[2\] differ from episode\(s\) \[1\] "
        r"\(episode 2 at position 1: 'move to #2' instead of 'pick up from'\)",
    ):
        canonical_spans(lunch, {1: TASK, 2: TASK}, stages="ordinal")
    short = same | {3: [("a", 0, 9), ("b", 10, 19)]}
    with pytest.raises(ValueError, match=r"episode\(s\) \[3\] differ .* 2 spans instead of 3"):
        canonical_spans(short, tasks, stages="ordinal")
    mapped = canonical_spans(
        lunch,
        {1: TASK, 2: TASK},
        stages="ordinal",
        stage_map={"move to": None, "pick up from": "g", "place on": "p"},
    )
    assert mapped.order == {TASK: ["g", "p"]}


def test_names_mode_keeps_spans_and_unknown_mode():
    assert STAGE_MODES == ("names", "ordinal")
    got = canonical_spans({0: [("b", 5, 9), ("a", 0, 4)]}, {0: "t"})
    assert got.spans == {0: [Span("a", 0, 4), Span("b", 5, 9)]} and got.order is None
    with pytest.raises(
        ValueError, match=r"stages should be one of \['names', 'ordinal'\], but got stages='skills'"
    ):
        canonical_spans({}, {}, stages="skills")


def test_one_skill_with_two_intervals(tmp_path):
    """Episode 1 opens the door in two intervals ("open", "open #2") before the pick; episode 2 opens it
    again after the pick. By name, episode 1 goes back; mapped, its two intervals are one stage."""
    behavior_file(tmp_path / "episode_1.json", [("open", [[0, 9], [12, 19]]), ("pick", [20, 39])], (0, 39))
    behavior_file(tmp_path / "episode_2.json", [("open", [[0, 9], [30, 39]]), ("pick", [10, 29])], (0, 39))
    spans = {int(k.split("_")[1]): v.spans for k, v in read_behavior_annotations(tmp_path).items()}
    assert spans[1] == [Span("open", 0, 9), Span("open #2", 12, 19), Span("pick", 20, 39)]
    schema = schema_from_annotations(spans, {1: 40, 2: 40})
    assert schema.names == ("open", "pick", "open #2")
    with pytest.raises(
        ValueError, match=r"\('pick', 20, 39\) in episode 1 \(stage 1 'pick'\) follows \('open #2'"
    ):
        schema.targets(spans[1], 40, episode=1)
    got = canonical_spans(spans, {1: TASK, 2: TASK}, stage_map={"open": "open door", "pick": "pick"})
    assert got.spans[1] == [Span("open door", 0, 19), Span("pick", 20, 39)]  # the two intervals merge
    assert got.spans[2] == [Span("open door", 0, 9), Span("pick", 10, 29), Span("open door", 30, 39)]
    mapped = schema_from_annotations(got.spans, {1: 40, 2: 40}, names=got.order[TASK])
    mapped.targets(got.spans[1], 40, episode=1)
    with pytest.raises(ValueError, match=r"episode 2 \(stage 0 'open door'\) follows \('pick', 10, 29\)"):
        mapped.targets(got.spans[2], 40, episode=2)  # re-opened after the pick: goes back, on the record
    held = mapped.progress(mapped.targets(got.spans[2], 40, order="monotone"))
    assert np.all(np.diff(held) >= 0) and np.all(held[29:] == held[29])
