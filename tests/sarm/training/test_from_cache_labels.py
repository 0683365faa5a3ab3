"""prepare_training's labels: canonical stages, the stage-order policy, annotations that do not match the
cache (episodes missing, no span at all), BEHAVIOR files without meta_data, and the `sarm train` flags."""

import json

import numpy as np
import pytest

from sarm.cli import main
from sarm.labels.schema import StageSchema
from sarm.training.from_cache import load_annotations, prepare_training
from tests.sarm.training.test_from_cache import PICK, TINY, build_cache, make_v21, rows_of, single_task

pytest.importorskip("av")

CLI_TINY = [
    "--hidden-dim",
    "32",
    "--num-layers",
    "1",
    "--num-heads",
    "2",
    "--frame-gap",
    "3",
    "--n-obs-steps",
    "2",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Three episodes of one task, 20, 25 and 30 frames."""
    tmp = tmp_path_factory.mktemp("labels")
    return build_cache(single_task(make_v21(tmp / "ds")), tmp / "cache")


IN_ORDER = [("reach", 0, 9), ("grasp", 10, 19)]
BACK = {
    0: IN_ORDER,
    1: [("grasp", 0, 11), ("reach", 12, 24)],
    2: [("reach", 0, 9), ("grasp", 10, 19), ("reach", 20, 29)],
}


# ------------------------------------------------------------------------------------- stage order


def test_spans_that_go_back_are_an_error_naming_every_episode(cache):
    with pytest.raises(ValueError, match=r"2 episode\(s\) have spans that go back") as err:
        prepare_training(cache, annotations={"sparse": BACK}, model_overrides=TINY)
    message = str(err.value)
    assert (
        "sparse head: span ('reach', 12, 24) in episode 1 (stage 0 'reach') follows ('grasp', 0, 11)"
        in message
    )
    assert "(also episodes [2])" in message and "order='monotone'" in message


def test_monotone_order_trains_on_non_decreasing_targets(cache):
    with pytest.warns(UserWarning, match=r"2 episode\(s\) .* go back .*: \[1, 2\]; order='monotone' holds"):
        data = prepare_training(cache, annotations={"sparse": BACK}, model_overrides=TINY, order="monotone")
    targets = data.train_set.targets["sparse"]
    for position in range(3):
        assert np.all(np.diff(targets[rows_of(cache, position)]) >= 0)
    assert data.report["unlabelled_episodes"] == []
    assert data.report["episodes_going_back"] == {"sparse": [1, 2]}  # counted and reported
    with pytest.warns(UserWarning, match="order='allow' keeps the drops as labelled"):
        allowed = prepare_training(cache, annotations={"sparse": BACK}, model_overrides=TINY, order="allow")
    assert np.any(np.diff(allowed.train_set.targets["sparse"][rows_of(cache, 2)]) < 0)  # kept on purpose


def test_a_stage_map_file_and_ordinal_stages(cache, tmp_path):
    spans = {
        0: [("move to", 0, 4), ("pick up", 5, 9), ("move to", 10, 14), ("place", 15, 19)],
        1: [("move to", 0, 4), ("move to", 5, 9), ("pick up", 10, 14), ("place", 15, 24)],
    }
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"skills": {"move to": None, "pick up": "grasp", "place": "put"}}))
    data = prepare_training(cache, annotations={"sparse": spans}, model_overrides=TINY, stage_map=path)
    assert data.report["stages"] == {"sparse": {PICK: ["grasp", "put"]}}
    schema = StageSchema.from_dict(data.config.schemas["sparse"]["*"])
    expected = schema.targets([("grasp", 0, 9), ("put", 10, 19)], 20)  # move to -> the next stage
    np.testing.assert_array_equal(data.train_set.targets["sparse"][rows_of(cache, 0)], expected)
    with pytest.raises(ValueError, match=r"episode\(s\) \[1\] differ from episode\(s\) \[0\]"):
        prepare_training(cache, annotations={"sparse": spans}, stages="ordinal")
    same = {0: IN_ORDER, 1: [("reach", 0, 4), ("grasp", 5, 24)]}
    ordinal = prepare_training(cache, annotations={"sparse": same}, stages="ordinal", model_overrides=TINY)
    assert ordinal.report["stages"] == {"sparse": {PICK: ["reach", "grasp"]}}


# --------------------------------------------------------------- annotations that miss the cache


def test_spans_for_episodes_not_in_the_cache_warn_with_counts(cache):
    spans = {0: IN_ORDER, 1: [("reach", 0, 9), ("grasp", 10, 24)], 7: IN_ORDER, 8: IN_ORDER, 9: None}
    with pytest.warns(
        UserWarning,
        match=r"2 of 4 episode\(s\) with sparse spans are not in the feature cache .* ignored: \[7, 8\]",
    ):
        data = prepare_training(cache, annotations={"sparse": spans}, model_overrides=TINY)
    assert data.report["unlabelled_episodes"] == [2]


def test_no_annotated_episode_in_the_cache_is_an_error(cache):
    with pytest.raises(
        ValueError,
        match=r"none of the 2 episode\(s\) with sparse spans \[10, 11\] is in the feature cache "
        r".*its episodes: \[0, 1, 2\]",
    ):
        prepare_training(cache, annotations={"sparse": {10: IN_ORDER, 11: IN_ORDER}})


def test_annotations_without_a_single_span_are_an_error(cache):
    for empty in ({0: None, 1: [], 2: None}, {0: []}):
        with pytest.raises(
            ValueError, match=r"sparse annotations list \d episode\(s\) .* but not a single span"
        ):
            prepare_training(cache, annotations={"sparse": empty})
    with pytest.raises(
        ValueError, match=r"the dense annotations list 1 episode\(s\) \[0\] but not a single span"
    ):
        prepare_training(cache, annotations={"sparse": {0: IN_ORDER}, "dense": {0: []}})
    assert prepare_training(cache, annotations={"sparse": {}}, model_overrides=TINY).config.heads == (
        "sparse",
    )


# ------------------------------------------------------------------------ BEHAVIOR without meta_data


def test_behavior_files_without_meta_data_take_the_cache_lengths(cache, tmp_path):
    folder = tmp_path / "behavior"
    folder.mkdir()
    for episode, end in ((0, 19), (1, 24)):
        skills = [
            {"skill_description": ["reach"], "frame_duration": [0, 9]},
            {"skill_description": ["grasp"], "frame_duration": [10, end]},
        ]
        (folder / f"episode_{episode:08d}.json").write_text(
            json.dumps({"task_name": PICK, "skill_annotation": skills})
        )
    spans = load_annotations(folder)
    assert spans == {0: [("reach", 0, 9), ("grasp", 10, 19)], 1: [("reach", 0, 9), ("grasp", 10, 24)]}
    data = prepare_training(cache, annotations={"sparse": spans}, model_overrides=TINY)
    assert data.report["stages"] == {"sparse": {PICK: ["reach", "grasp"]}} and data.report[
        "unlabelled_episodes"
    ] == [2]
    assert load_annotations(folder, num_frames={0: 20, 1: 25}) == spans
    (folder / "episode_00000002.json").write_text(
        json.dumps(
            {
                "task_name": PICK,
                "skill_annotation": [{"skill_description": ["reach"], "frame_duration": [0, 30]}],
            }
        )
    )
    with pytest.raises(
        ValueError,
        match=r"span \('reach', 0, 30\) in episode 2 is reversed or outside the episode's 30 frames",
    ):
        prepare_training(cache, annotations={"sparse": load_annotations(folder)})


# ------------------------------------------------------------------------------------------- CLI


def test_train_flags(cache, tmp_path, capsys):
    spans = tmp_path / "spans.json"
    spans.write_text(json.dumps({str(e): [list(s) for s in v] for e, v in BACK.items()}))
    args = [
        "train",
        "--cache",
        str(cache.root),
        "--annotations",
        str(spans),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        *CLI_TINY,
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("sarm train: error: 2 episode(s) have spans that go back")
        and "--order monotone" in err
    )
    with pytest.warns(UserWarning, match="holds the running maximum"):
        assert main([*args, "--out", str(tmp_path / "b"), "--order", "monotone"]) == 0
    assert "trained to step 1" in capsys.readouterr().out
    stage_map = tmp_path / "map.json"
    stage_map.write_text(json.dumps({"reach": "go", "grasp": "take"}))
    assert (
        main([*args, "--out", str(tmp_path / "c"), "--stage-map", str(stage_map), "--stages", "ordinal"]) == 2
    )
    assert "stages='ordinal' needs the same span sequence" in capsys.readouterr().err
