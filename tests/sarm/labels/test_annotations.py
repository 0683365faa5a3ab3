"""Annotation readers: LeRobot columns, BEHAVIOR-1K JSON, plain spans, and their validation errors."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm.labels.annotations import (
    BehaviorEpisode,
    number_repeats,
    read_behavior_annotations,
    read_lerobot_annotations,
    read_spans,
    validate_spans,
)
from sarm.labels.proportions import schema_from_annotations
from sarm.labels.schema import Span, StageSchema
from tests.conftest import SHARED

EPISODES_FILE = (
    SHARED / "datasets" / "so101_record_test_v30" / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
)

# ------------------------------------------------------------------------------------ validate_spans


def test_validate_spans_coerces_and_sorts():
    spans = [{"name": "b", "start": 10, "end": 19}, ("a", np.int64(0), 9), Span("c", 19, 30)]
    assert validate_spans(spans, 31) == [Span("a", 0, 9), Span("b", 10, 19), Span("c", 19, 30)]
    assert validate_spans([("a", 5, 500)], None) == [Span("a", 5, 500)]  # no length: no bounds check
    assert validate_spans([("a", 0, 3), ("b", 5, 9)], 10, names=["a", "b"]) == [("a", 0, 3), ("b", 5, 9)]


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([("a", 5, 3)], r"span \('a', 5, 3\) in episode 4 is reversed \(start 5 > end 3\)"),
        ([("a", -1, 3)], r"span \('a', -1, 3\) in episode 4 lies outside the episode's frames 0..9"),
        ([("a", 0, 10)], r"span \('a', 0, 10\) in episode 4 lies outside the episode's frames 0..9"),
        (
            [("z", 0, 3)],
            r"span \('z', 0, 3\) in episode 4 names an unknown stage 'z'; known stages: \['a', 'b'\]",
        ),
        (
            [("a", 0, 5), ("b", 4, 9)],
            r"spans \('a', 0, 5\) and \('b', 4, 9\) in episode 4 overlap by 2 frames",
        ),
        ([("a", 0, 5), ("b", 1, 2)], r"spans \('a', 0, 5\) and \('b', 1, 2\) in episode 4 overlap"),
        ([("a", 0.5, 3)], r"span \('a', 0.5, 3\) in episode 4: start frame should be an integer"),
        ([("a", 0, "3")], r"end frame should be an integer frame index, but got '3'"),
        ([("a", True, 3)], r"start frame should be an integer"),
        ([("", 0, 3)], r"in episode 4 needs a non-empty string name"),
        ([("a", 0)], r"span \('a', 0\) in episode 4 is not a \(name, start, end\) triple"),
    ],
)
def test_validate_spans_errors_name_episode_and_span(spans, message):
    with pytest.raises(ValueError, match=message):
        validate_spans(spans, 10, names=["a", "b"], episode=4)


def test_one_shared_boundary_frame_is_allowed():
    assert validate_spans([("b", 619, 733), ("a", 344, 619)], 800) == [("a", 344, 619), ("b", 619, 733)]


# ------------------------------------------------------------------------------------ number_repeats


def test_number_repeats_by_occurrence():
    spans = [("move to", 20, 29), ("pick", 10, 19), ("move to", 0, 9), ("place", 30, 39), ("move to", 40, 49)]
    assert number_repeats(spans) == [
        Span("move to", 0, 9),
        Span("pick", 10, 19),
        Span("move to #2", 20, 29),
        Span("place", 30, 39),
        Span("move to #3", 40, 49),
    ]
    assert number_repeats([("a", 0, 1), ("b", 2, 3)]) == [("a", 0, 1), ("b", 2, 3)]  # nothing repeated
    with pytest.raises(ValueError, match="gives 'a #2', which the episode already uses"):
        number_repeats([("a", 0, 1), ("a #2", 2, 3), ("a", 4, 5)])


def test_numbered_repeats_make_progress_monotone():
    spans = number_repeats([("move to", 0, 9), ("pick", 10, 19), ("move to", 20, 29)])
    schema = schema_from_annotations({0: spans}, {0: 30})
    assert schema.names == ("move to", "pick", "move to #2")
    p = schema.progress(schema.targets(spans, 30))
    assert np.all(np.diff(p) >= 0) and p[0] == 0.0


# ----------------------------------------------------------------------------------- LeRobot columns


def annotated_episodes(tmp_path, columns, name="file-000.parquet"):
    """The real so101 episodes file (4 episodes, lengths 373 374 372 373) with annotation columns added."""
    table = pq.read_table(EPISODES_FILE)
    for col, values in columns.items():
        typ = pa.list_(pa.string()) if col.endswith("names") else pa.list_(pa.int64())
        table = table.append_column(col, pa.array(values, typ))
    out = tmp_path / "meta" / "episodes" / "chunk-000" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out


SPARSE = {
    "sparse_subtask_names": [["grab", "place"], None, ["grab", "place"], []],
    "sparse_subtask_start_frames": [[0, 150], None, [10, 201], []],
    "sparse_subtask_end_frames": [[149, 372], None, [200, 371], []],
}
DENSE = {
    "dense_subtask_names": [["reach", "grip", "lift"], None, None, None],
    "dense_subtask_start_frames": [[0, 50, 100], None, None, None],
    "dense_subtask_end_frames": [[49, 99, 372], None, None, None],
}


def test_read_lerobot_annotations_from_every_source(tmp_path):
    path = annotated_episodes(tmp_path, {**SPARSE, **DENSE})
    expected = {
        0: [Span("grab", 0, 149), Span("place", 150, 372)],
        1: None,
        2: [Span("grab", 10, 200), Span("place", 201, 371)],
        3: None,
    }
    table = pq.read_table(path)
    for source in (tmp_path, path, str(path), table, table.to_pandas()):
        assert read_lerobot_annotations(source) == expected
    dense = read_lerobot_annotations(tmp_path, head="dense")
    assert dense == {0: [("reach", 0, 49), ("grip", 50, 99), ("lift", 100, 372)], 1: None, 2: None, 3: None}
    lengths = dict(zip(*(table.column(c).to_pylist() for c in ("episode_index", "length")), strict=True))
    schema = schema_from_annotations(read_lerobot_annotations(tmp_path), lengths)
    assert schema.names == ("grab", "place")
    raw = np.array(
        [(150 / 373 + 191 / 372) / 2, (223 / 373 + 171 / 372) / 2]
    )  # episode 2: 10 frames unlabelled
    assert schema.proportions == pytest.approx(tuple(raw / raw.sum()), abs=1e-15)


def test_read_lerobot_legacy_columns_for_sparse(tmp_path):
    legacy = {k.removeprefix("sparse_"): v for k, v in SPARSE.items()}
    path = annotated_episodes(tmp_path, legacy)
    assert read_lerobot_annotations(path)[0] == [("grab", 0, 149), ("place", 150, 372)]
    with pytest.raises(ValueError, match=r"no SARM annotation columns for head 'dense'"):
        read_lerobot_annotations(path, head="dense")


def test_read_lerobot_without_annotation_columns(tmp_path):
    shutil.copy(EPISODES_FILE, tmp_path / "episodes.parquet")
    with pytest.raises(ValueError) as err:
        read_lerobot_annotations(tmp_path / "episodes.parquet")
    message = str(err.value)
    assert "looked for ['sparse_subtask_names', 'sparse_subtask_start_frames'" in message
    assert "'subtask_names'" in message and "subtask columns present: []" in message
    assert "subtask_annotation.py" in message and "read_spans" in message


def test_read_lerobot_errors(tmp_path):
    bad = {**SPARSE, "sparse_subtask_end_frames": [[149], None, [200, 371], []]}
    with pytest.raises(
        ValueError, match=r"episode 0 in `.*file-000.parquet` has mismatched annotation lists"
    ):
        read_lerobot_annotations(annotated_episodes(tmp_path / "a", bad))
    outside = {**SPARSE, "sparse_subtask_end_frames": [[149, 374], None, [200, 371], []]}
    with pytest.raises(ValueError, match=r"span \('place', 150, 374\) in episode 0 lies outside.*0..372"):
        read_lerobot_annotations(annotated_episodes(tmp_path / "b", outside))
    partial = {k: v for k, v in SPARSE.items() if not k.endswith("end_frames")}
    with pytest.raises(ValueError, match=r"lacks \['sparse_subtask_end_frames'\]"):
        read_lerobot_annotations(annotated_episodes(tmp_path / "c", partial))
    with pytest.raises(ValueError, match="column `length` not found"):
        read_lerobot_annotations(
            pq.read_table(annotated_episodes(tmp_path / "d", SPARSE)).drop_columns("length")
        )
    with pytest.raises(ValueError, match="head should be one of"):
        read_lerobot_annotations(tmp_path / "d", head="coarse")
    (tmp_path / "e").mkdir()
    with pytest.raises(FileNotFoundError, match="no `meta/episodes"):
        read_lerobot_annotations(tmp_path / "e")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_lerobot_annotations(tmp_path / "nowhere.parquet")


def test_read_lerobot_across_files(tmp_path):
    annotated_episodes(tmp_path, SPARSE)
    plain = pq.read_table(EPISODES_FILE).slice(0, 2)  # a second file without annotation columns
    plain = plain.set_column(0, "episode_index", pa.array([4, 5], pa.int64()))
    pq.write_table(plain, tmp_path / "meta" / "episodes" / "chunk-000" / "file-001.parquet")
    got = read_lerobot_annotations(tmp_path)
    assert list(got) == [0, 1, 2, 3, 4, 5] and got[4] is None and got[0][0] == ("grab", 0, 149)
    pq.write_table(
        pq.read_table(EPISODES_FILE).slice(0, 1), tmp_path / "meta" / "episodes" / "file-9.parquet"
    )
    with pytest.raises(ValueError, match="episode 0 appears twice"):
        read_lerobot_annotations(tmp_path)


# ----------------------------------------------------------------------------------------- BEHAVIOR


def skill(name, frames):
    return {
        "skill_idx": 0,
        "skill_id": [1],
        "skill_description": [name],
        "object_id": [["x"]],
        "frame_duration": frames,
    }


def behavior_json(skills, valid=(90, 7966), task_duration=7876, task="preparing lunch box"):
    return {
        "task_name": task,
        "data_folder": "",
        "meta_data": {"task_duration": task_duration, "valid_duration": list(valid)},
        "skill_annotation": skills,
    }


LUNCH_BOX = [
    skill("move to", [90, 343]),
    skill("pick up from", [344, 619]),
    skill("move to", [619, 733]),  # shares frame 619 with the previous skill
    skill("place on next to", [734, 817]),
    skill("open", [[819, 830], [835, 840]]),  # a 1-frame gap (818) before it; two intervals
]


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_read_behavior_file_relative_to_valid_start(tmp_path):
    got = read_behavior_annotations(write(tmp_path / "episode_00120010.json", behavior_json(LUNCH_BOX)))
    assert list(got) == ["episode_00120010"]
    ep = got["episode_00120010"]
    assert isinstance(ep, BehaviorEpisode) and ep.task == "preparing lunch box"
    assert ep.num_frames == 7877  # frames 90..7966 inclusive
    assert ep.spans == [
        Span("move to", 0, 253),
        Span("pick up from", 254, 529),
        Span("move to #2", 529, 643),
        Span("place on next to", 644, 727),
        Span("open", 729, 740),
        Span("open #2", 745, 750),
    ]
    schema = schema_from_annotations({0: ep.spans}, {0: ep.num_frames})
    stage, tau = schema.stage_and_tau(ep.spans, ep.num_frames)
    pick, place = schema.names.index("pick up from"), schema.names.index("place on next to")
    assert (stage[529], tau[529]) == (pick, 1.0)  # the shared frame ends "pick up from"
    assert (stage[728], tau[728]) == (place, 1.0)  # the 1-frame gap keeps the previous skill
    assert (stage[751], tau[751]) == (len(schema.names) - 1, 0.999)


def test_read_behavior_absolute_frames_and_lead_in(tmp_path):
    path = write(
        tmp_path / "a.json", behavior_json([skill("move to", [100, 200]), skill("pick", [201, 300])])
    )
    ep = read_behavior_annotations(path, relative_to_valid_start=False)["a"]
    assert ep.num_frames == 7967 and ep.spans == [("move to", 100, 200), ("pick", 201, 300)]
    ep = read_behavior_annotations(path)["a"]
    assert ep.spans[0] == ("move to", 10, 110)
    schema = StageSchema(["move to", "pick"], [0.5, 0.5])
    stage, tau = schema.stage_and_tau(ep.spans, ep.num_frames)
    assert (
        stage[:10].tolist() == [0] * 10 and tau[:10].tolist() == [0.0] * 10
    )  # nothing before the first skill


def test_read_behavior_directory_and_descriptions(tmp_path):
    write(tmp_path / "b.json", behavior_json([skill("pick", [90, 99])], task="task b"))
    two = behavior_json(
        [{**skill("x", [95, 99]), "skill_description": ["pick up", "place on"]}], task="task a"
    )
    write(tmp_path / "a.json", two)
    (tmp_path / "notes.txt").write_text("ignored")
    got = read_behavior_annotations(tmp_path)
    assert list(got) == ["a", "b"] and got["b"].task == "task b"
    assert got["a"].spans == [Span("pick up + place on", 5, 9)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"meta_data": {}, "skill_annotation": []}, "lacks the key `task_name`"),
        (behavior_json([])["meta_data"], "lacks the key `task_name`"),
        ({**behavior_json([]), "skill_annotation": {}}, "`skill_annotation` should be a list, but is dict"),
        (
            behavior_json([{"frame_duration": [90, 99]}]),
            r"lacks the key `skill_annotation\[0\].skill_description`",
        ),
        (behavior_json([skill("a", [90])]), r"skill_annotation\[0\].frame_duration should be \[start, end\]"),
        (behavior_json([skill("a", [[90, 95], [96]])]), r"frame_duration should be .*\[\[90, 95\], \[96\]\]"),
        (behavior_json([skill("a", [90.5, 99])]), r"frame_duration should be \[start, end\]"),
        (behavior_json([skill("", [90, 99])]), "skill_description should be a non-empty list of strings"),
        (
            behavior_json([skill("a", [80, 99])]),
            r"span \('a', -10, 9\) in episode 'ep' lies outside.*shifted by 90",
        ),
        (behavior_json([skill("a", [90, 99]), skill("b", [95, 120])]), r"'ep' overlap by 5 frames"),
        (behavior_json([], valid=(90,)), r"valid_duration should be \[first, last\] integer frames"),
        (behavior_json([skill("a", [90, 99])], valid=(90, 8)), "valid_duration should be"),
    ],
)
def test_read_behavior_errors_name_file_and_key(tmp_path, data, message):
    path = write(tmp_path / "ep.json", data)
    with pytest.raises(ValueError, match=message) as err:
        read_behavior_annotations(path)
    assert "ep.json" in str(err.value)


def test_read_behavior_bad_json_missing_paths_and_duration_warning(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"`.*bad.json` is not valid JSON"):
        read_behavior_annotations(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_behavior_annotations(tmp_path / "nope.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no `\*.json` annotation files"):
        read_behavior_annotations(tmp_path / "empty")
    path = write(tmp_path / "odd.json", behavior_json([skill("a", [90, 99])], task_duration=100))
    with pytest.warns(UserWarning, match="task_duration = 100 disagrees with valid_duration"):
        assert read_behavior_annotations(path)["odd"].num_frames == 7877


# -------------------------------------------------------------------------------------- plain spans


def test_read_spans_from_dict_and_json(tmp_path):
    data = {"0": [["a", 0, 9], ["b", 10, 19]], "3": [{"name": "a", "start": 5, "end": 7}], "7": None}
    expected = {0: [Span("a", 0, 9), Span("b", 10, 19)], 3: [Span("a", 5, 7)], 7: None}
    assert read_spans(data) == expected
    assert read_spans(write(tmp_path / "spans.json", data), num_frames={0: 20, 3: 8, 7: 1}) == expected
    assert read_spans({2: [("a", 0, 1)]}) == {2: [Span("a", 0, 1)]}


def test_read_spans_errors(tmp_path):
    path = write(tmp_path / "spans.json", {"0": [["a", 0, 9], ["b", 10, 19]]})
    with pytest.raises(
        ValueError, match=r"span \('b', 10, 19\) in episode 0 lies outside.*\(in `.*spans.json`\)"
    ):
        read_spans(path, num_frames={0: 15})
    with pytest.raises(ValueError, match="episode 0 in `.*spans.json` has no entry in num_frames"):
        read_spans(path, num_frames={1: 15})
    with pytest.raises(ValueError, match="episode key 'first' in `<dict>` is not an integer episode index"):
        read_spans({"first": []})
    with pytest.raises(ValueError, match="episode 1 in `<dict>` should map to a list of spans"):
        read_spans({"1": "a 0 9"})
    with pytest.raises(FileNotFoundError, match="spans file `.*missing.json` does not exist"):
        read_spans(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="should hold an object"):
        read_spans(write(tmp_path / "list.json", [["a", 0, 1]]))


def test_read_lerobot_clips_ends_one_past_the_episode(tmp_path):
    """LeRobot writes end_frame = int(end_s * fps): a subtask ending with the episode has end == length."""
    at_length = {**SPARSE, "sparse_subtask_end_frames": [[149, 373], None, [200, 371], []]}
    root = annotated_episodes(tmp_path / "a", at_length)
    with pytest.warns(UserWarning, match=r"1 LeRobot span\(s\) ended one frame past"):
        spans = read_lerobot_annotations(root)
    assert spans[0][-1] == Span("place", 150, 372)
    with pytest.raises(ValueError, match=r"span \('place', 150, 373\) in episode 0 lies outside"):
        read_lerobot_annotations(root, clip_end=False)
