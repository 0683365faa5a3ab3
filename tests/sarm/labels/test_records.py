"""Mistake spans and outcomes on disk: LeRobot episode columns, extended spans JSON, outcome files."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm.labels.annotations import read_lerobot_annotations, read_spans
from sarm.labels.mistakes import Mistake
from sarm.labels.records import COLUMN_TYPES, episode_columns, read_mistakes, read_outcomes


def _table(columns: dict, episodes=(0, 1, 2), lengths=(30, 40, 50)) -> pa.Table:
    data = {"episode_index": list(episodes), "length": list(lengths)}
    for name, values in columns.items():
        data[name] = pa.array([values.get(e) for e in episodes], type=COLUMN_TYPES[name])
    return pa.table(data)


def test_episode_columns_round_trip_through_a_parquet_file(tmp_path):
    cols = episode_columns(
        spans={"sparse": {0: [("reach", 0, 9), ("grasp", 10, 29)], 1: None}},
        mistakes={0: [("pause", 12, 15)], 1: [], 2: [("drop", 30, 44), ("fumble", 5, 8)]},
        outcomes={0: True, 1: "partial", 2: "failure"},
        fps=10,
    )
    assert cols["sparse_subtask_start_times"] == {0: [0.0, 1.0], 1: None}
    assert cols["mistake_names"] == {0: ["pause"], 1: [], 2: ["fumble", "drop"]}  # sorted by start
    path = tmp_path / "episodes.parquet"
    pq.write_table(_table(cols), path)
    assert read_mistakes(path) == {0: [Mistake("pause", 12, 15)], 2: [("fumble", 5, 8), ("drop", 30, 44)]}
    assert read_outcomes(path) == {0: "success", 1: "partial", 2: "failure"}
    spans = read_lerobot_annotations(path)
    assert spans[0] == [("reach", 0, 9), ("grasp", 10, 29)] and spans[1] is None


def test_extended_spans_json_is_backwards_compatible(tmp_path):
    path = tmp_path / "spans.json"
    data = {
        "0": [["reach", 0, 9], ["grasp", 10, 29]],  # the old format
        "1": {"spans": [["reach", 0, 19]], "mistakes": [["pause", 3, 6]], "outcome": "failure"},
        "2": {"outcome": True},  # no spans: unannotated
        "3": None,
    }
    path.write_text(json.dumps(data))
    assert read_spans(path) == {
        0: [("reach", 0, 9), ("grasp", 10, 29)],
        1: [("reach", 0, 19)],
        2: None,
        3: None,
    }
    assert read_mistakes(path) == {1: [("pause", 3, 6)]}
    assert read_outcomes(path) == {1: "failure", 2: "success"}


def test_an_outcome_file(tmp_path):
    path = tmp_path / "outcomes.json"
    path.write_text(json.dumps({"0": "success", "1": False, "2": None, "3": "Partial"}))
    assert read_outcomes(path) == {0: "success", 1: "failure", 3: "partial"}
    assert read_outcomes({4: 1}) == {4: "success"}
    path.write_text(json.dumps({"0": "won"}))
    with pytest.raises(
        ValueError, match=r"outcome 'won' in episode 0 should be one of .* \(in `.*outcomes.json`\)"
    ):
        read_outcomes(path)


def test_bad_records_are_errors_naming_episode_and_file(tmp_path):
    path = tmp_path / "episodes.parquet"
    pq.write_table(
        _table(
            {"mistake_names": {0: ["p"]}, "mistake_start_frames": {0: [25]}, "mistake_end_frames": {0: [35]}}
        ),
        path,
    )
    with pytest.raises(ValueError, match=r"\(.p., 25, 35\) in episode 0 lies outside .*0..29; .*\(in `"):
        read_mistakes(path)
    pq.write_table(_table({"mistake_names": {0: ["p"]}, "mistake_start_frames": {0: [1]}}), path)
    with pytest.raises(ValueError, match=r"lacks \['mistake_end_frames'\]; they come together"):
        read_mistakes(path)
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"is not a readable parquet file"):
        read_outcomes(path)
    assert read_mistakes({0: [["a", 0, 3]]}) == {}  # plain spans carry no mistakes
