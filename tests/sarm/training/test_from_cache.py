"""sarm.training.from_cache: annotation sources, schemas, targets, state statistics, splits from a cache,
and a reproducible `train_from_cache` run."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sarm.data import open_dataset
from sarm.features import FeatureCache, extract_features
from sarm.features.encoders import load_encoder
from sarm.labels.schema import Span, StageSchema
from sarm.training.from_cache import load_annotations, prepare_training, train_from_cache
from sarm.training.loop import TrainConfig
from tests.sarm.data.test_dataset import LENGTHS, TASKS, make_v21, make_v30

pytest.importorskip("av")

TINY = {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "frame_gap": 3, "n_obs_steps": 2}
PICK = "pick the cube"


def build_cache(root, out):
    return extract_features(open_dataset(root), load_encoder("pixels:32"), out, progress=False)


def single_task(root):
    """make_v21 with every episode's task text set to "pick the cube" (the episode metadata wins)."""
    path = root / "meta" / "episodes.jsonl"
    path.write_text(path.read_text().replace('"place the cube"', f'"{PICK}"'))
    return root


def ramp(n: int) -> np.ndarray:
    """LeRobot's single stage: frame f of n gets f / (n - 1), the last frame capped at 0.999."""
    y = np.arange(n) / (n - 1)
    y[-1] = 0.999
    return y


def rows_of(cache, position):
    start = int(cache.episode_starts[position])
    return slice(start, start + int(cache.episode_lengths[position]))


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """make_v21 (tasks pick, place, pick; 20, 25, 30 frames) and its pixel-feature cache."""
    tmp = tmp_path_factory.mktemp("multi")
    root = make_v21(tmp / "ds")
    return root, build_cache(root, tmp / "cache")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The same dataset with one task text for all three episodes, and its cache."""
    tmp = tmp_path_factory.mktemp("single")
    root = single_task(make_v21(tmp / "ds"))
    return root, build_cache(root, tmp / "cache")


# ------------------------------------------------------------------------------------ load_annotations


@pytest.mark.parametrize("source", [None, "none"])
def test_no_annotations(source):
    assert load_annotations(source) == {}
    assert load_annotations(source, head="dense") == {}


def test_spans_json_file(tmp_path):
    path = tmp_path / "spans.json"
    path.write_text(json.dumps({"1": None, "0": [["grasp", 10, 19], ["reach", 0, 9]]}))
    got = load_annotations(path)
    assert got == {0: [Span("reach", 0, 9), Span("grasp", 10, 19)], 1: None}
    assert list(got) == [0, 1] and all(isinstance(s, Span) for s in got[0])
    assert load_annotations(str(path)) == got


def behavior(skills, valid=(100, 129), task=PICK):
    """A BEHAVIOR-1K annotation file: frames absolute in the recording, valid from valid[0] on."""
    return {
        "task_name": task,
        "meta_data": {"valid_duration": list(valid)},
        "skill_annotation": [
            {"skill_description": [name], "frame_duration": frames} for name, frames in skills
        ],
    }


def test_behavior_directory_keys_by_the_number_in_the_file_name(tmp_path):
    folder = tmp_path / "behavior"
    folder.mkdir()
    (folder / "episode_00000000.json").write_text(
        json.dumps(behavior([("reach", [100, 109]), ("grasp", [110, 129])]))
    )
    (folder / "episode_00000001.json").write_text(
        json.dumps(behavior([("reach", [200, 219]), ("grasp", [220, 224])], valid=(200, 224)))
    )
    expected = {0: [("reach", 0, 9), ("grasp", 10, 29)], 1: [("reach", 0, 19), ("grasp", 20, 24)]}
    assert load_annotations(folder) == expected  # frames relative to valid_duration[0]
    single_file = load_annotations(folder / "episode_00000001.json")  # one file: recognised by its content
    assert single_file == {1: expected[1]}


def test_behavior_file_name_needs_a_trailing_number(tmp_path):
    path = tmp_path / "lunch_box.json"
    path.write_text(json.dumps(behavior([("reach", [100, 109])])))
    with pytest.raises(ValueError, match=r"`lunch_box.json` has no episode number.*episode_00010010.json"):
        load_annotations(path)
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(path, folder / "episode_7.json")
    shutil.copy(path, folder / "episode_7_final.json")
    with pytest.raises(ValueError, match="`episode_7_final.json` has no episode number"):
        load_annotations(folder)


def annotate_v30(root, columns):
    """Add LeRobot's annotation list columns to a v3.0 dataset's meta/episodes parquet."""
    path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    for name, values in columns.items():
        kind = pa.list_(pa.string()) if name.endswith("names") else pa.list_(pa.int64())
        table = table.append_column(name, pa.array(values, kind))
    pq.write_table(table, path)
    return root


V30_SPARSE = {
    "sparse_subtask_names": [["reach", "grasp"], None, ["reach", "grasp"]],
    "sparse_subtask_start_frames": [[0, 6], None, [0, 12]],
    "sparse_subtask_end_frames": [[5, 19], None, [11, 29]],
}


def test_lerobot_v30_root(tmp_path):
    root = annotate_v30(make_v30(tmp_path / "ds"), V30_SPARSE)
    expected = {0: [("reach", 0, 5), ("grasp", 6, 19)], 1: None, 2: [("reach", 0, 11), ("grasp", 12, 29)]}
    assert load_annotations(root) == expected
    assert load_annotations(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet") == expected
    with pytest.raises(ValueError, match="no SARM annotation columns for head 'dense'"):
        load_annotations(root, head="dense")


def test_lerobot_v30_annotations_train_end_to_end(tmp_path):
    """The v3.0 columns, read by load_annotations, drive prepare_training on that dataset's cache."""
    root = annotate_v30(make_v30(tmp_path / "ds"), V30_SPARSE)
    cache = build_cache(root, tmp_path / "cache")
    data = prepare_training(cache, annotations={"sparse": load_annotations(root)}, model_overrides=TINY)
    # episodes 0 and 2 are "pick the cube" (annotated), 1 is "place the cube" (no spans: one stage)
    assert data.report["unlabelled_episodes"] == []
    assert data.report["stages"]["sparse"] == {PICK: ["reach", "grasp"], "place the cube": ["task"]}
    pick = StageSchema.from_dict(data.config.schemas["sparse"][PICK])
    raw = np.array([(6 / 20 + 12 / 30) / 2, (14 / 20 + 18 / 30) / 2])  # Eq. 1, inclusive frame counts
    assert pick.proportions == pytest.approx(tuple(raw / raw.sum()), abs=1e-12)


def test_nonsense_sources_are_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("reach 0 9")
    with pytest.raises(ValueError, match=r"neither 'none', a LeRobot dataset root, a parquet file"):
        load_annotations(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="neither 'none'"):
        load_annotations(tmp_path / "no" / "such" / "thing.csv")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_annotations(tmp_path / "missing.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no `\*.json` annotation files"):
        load_annotations(tmp_path / "empty")
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="should hold an object"):
        load_annotations(tmp_path / "list.json")


# ------------------------------------------------------------------------- prepare_training, one stage


def test_without_annotations_every_episode_is_a_linear_ramp(multi):
    _, cache = multi
    data = prepare_training(cache, model_overrides=TINY)
    assert data.report["unlabelled_episodes"] == [] and data.report["episodes"] == 3
    targets = data.train_set.targets["sparse"]
    assert targets.shape == (sum(LENGTHS),)
    for position, n in enumerate(LENGTHS):
        np.testing.assert_allclose(targets[rows_of(cache, position)], ramp(n), rtol=0, atol=1e-12)
    assert set(data.train_set.targets) == {"sparse"}
    if data.eval_set is not None:
        np.testing.assert_array_equal(data.eval_set.targets["sparse"], targets)


def test_episodes_restricts_training_to_those_episodes(multi):
    _, cache = multi
    held_out = int(cache.episodes[-1])
    keep = [int(e) for e in cache.episodes if e != held_out]
    data = prepare_training(cache, model_overrides=TINY, episodes=keep, eval_fraction=0.5)
    assert held_out not in data.report["train_episodes"] + data.report["eval_episodes"]
    assert sorted(data.report["train_episodes"] + data.report["eval_episodes"]) == sorted(keep)
    with pytest.raises(ValueError, match=r"episodes \[99\] are not in the feature cache"):
        prepare_training(cache, model_overrides=TINY, episodes=[99])


def test_config_sizes_come_from_the_cache_and_overrides(multi):
    _, cache = multi
    config = prepare_training(cache, model_overrides=TINY).config
    assert (config.image_dim, config.text_dim, config.num_cameras) == (32, 32, 1)
    assert (config.hidden_dim, config.num_layers, config.num_heads) == (32, 1, 2)
    assert (config.frame_gap, config.n_obs_steps) == (3, 2)
    assert config.max_state_dim == 32  # at least 32 (LeRobot's padding), the state has 4 columns
    default = prepare_training(cache).config
    assert (default.hidden_dim, default.n_obs_steps, default.frame_gap) == (768, 8, 30)


def test_state_statistics_are_the_population_mean_and_std(multi):
    root, cache = multi
    config = prepare_training(cache).config
    state = open_dataset(root).state().astype(np.float64)  # rows [index, frame, episode, 1]
    np.testing.assert_allclose(config.state_mean, state.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(config.state_std, state.std(0, ddof=0), rtol=1e-10, atol=1e-12)
    # and by hand for the first columns: index 0..74, constant 1
    assert config.state_mean[0] == pytest.approx(37.0) and config.state_mean[3] == 1.0
    assert config.state_std[0] == pytest.approx(np.sqrt((75**2 - 1) / 12)) and config.state_std[3] == 0.0


def test_train_and_eval_episodes_are_disjoint_and_cover_the_labelled_ones(multi):
    _, cache = multi
    for seed, fraction in [(0, 0.1), (1, 0.5), (7, 0.9)]:
        data = prepare_training(cache, seed=seed, eval_fraction=fraction)
        train, held_out = data.report["train_episodes"], data.report["eval_episodes"]
        assert not set(train) & set(held_out) and sorted(train + held_out) == [0, 1, 2]
        assert len(held_out) == min(max(round(3 * fraction), 1), 2)
        # the windows: positions in the cache (= episode indices here), anchors at every frame
        assert data.train_set.episodes.tolist() == train
        assert data.eval_set.episodes.tolist() == held_out
        for windows, episodes in ((data.train_set, train), (data.eval_set, held_out)):
            expected = np.concatenate([np.arange(LENGTHS[e]) + rows_of(cache, e).start for e in episodes])
            np.testing.assert_array_equal(np.sort(windows.anchors), expected)
    assert prepare_training(cache, seed=3).report == prepare_training(cache, seed=3).report


def test_anchor_stride(multi):
    _, cache = multi
    data = prepare_training(cache, anchor_stride=4, eval_fraction=0.5)
    for windows in (data.train_set, data.eval_set):
        expected = [rows_of(cache, e).start + k for e in windows.episodes for k in range(0, LENGTHS[e], 4)]
        assert windows.anchors.tolist() == expected


def test_multi_task_schemas_are_keyed_by_task_text(multi):
    _, cache = multi
    data = prepare_training(cache)
    single_stage = {"names": ["task"], "proportions": [1.0]}
    assert data.config.schemas == {"sparse": {PICK: single_stage, "place the cube": single_stage}}
    assert data.report["stages"] == {"sparse": {PICK: ["task"], "place the cube": ["task"]}}
    assert set(data.task_features) == {PICK, "place the cube"}
    expected = load_encoder("pixels:32").encode_texts([PICK, "place the cube"])
    torch.testing.assert_close(data.task_features[PICK], expected[0])
    torch.testing.assert_close(data.task_features["place the cube"], expected[1])
    assert data.negative_text_features.ndim == 2 and data.negative_text_features.shape[1] == 32
    assert [data.train_set.tasks[e] for e in range(3)] == list(TASKS)


def test_single_task_schema_is_stored_under_the_default_key(single):
    _, cache = single
    data = prepare_training(cache)
    assert data.config.schemas == {"sparse": {"*": {"names": ["task"], "proportions": [1.0]}}}
    assert data.report["stages"] == {"sparse": {PICK: ["task"]}}
    assert list(data.task_features) == [PICK]


def test_state_view_is_normalised_raw_state_at_the_window_frames(multi):
    root, cache = multi
    data = prepare_training(cache, model_overrides=TINY, eval_fraction=0.5)
    raw = open_dataset(root).state().astype(np.float64)
    mean, std = raw.mean(0), raw.std(0)
    normalized = (raw - mean) / (std + 1e-8)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)])
    for windows in (data.train_set, data.eval_set):
        for i in range(len(windows)):
            item = windows[i]
            t, s = item["frame"], starts[item["episode"]]
            # past window, n_obs_steps 2, frame_gap 3: the episode's first frame, then t - 3 and t when
            # there are 6 frames of history, else s, (s + t) / 2 rounded half to even, t
            frames = [s, t - 3, t] if t - s >= 6 else [s, s + round((t - s) / 2), t]
            assert item["state"].shape == (3, 4) and item["state"].dtype == torch.float32
            np.testing.assert_allclose(item["state"].numpy(), normalized[frames], rtol=1e-5, atol=1e-5)
            assert item["video"].shape == (3, 1, 32)
    first = data.train_set[0]  # anchor = the first frame of a train episode: the window repeats it
    assert first["frame"] == starts[first["episode"]]


# ----------------------------------------------------------------------- prepare_training, multi-stage

SPANS = {
    0: [Span("reach", 0, 7), Span("grasp", 8, 19)],  # 20 frames: 8 + 12
    1: [Span("reach", 0, 9), Span("grasp", 12, 24)],  # 25 frames: 10 + 13, frames 10 and 11 unlabelled
    2: None,  # 30 frames, not annotated
}


def test_episodes_without_spans_are_left_out(single):
    _, cache = single
    data = prepare_training(cache, annotations={"sparse": SPANS}, model_overrides=TINY)
    assert data.report["unlabelled_episodes"] == [2]
    assert sorted(data.report["train_episodes"] + data.report["eval_episodes"]) == [0, 1]
    assert len(data.report["train_episodes"]) == len(data.report["eval_episodes"]) == 1
    episode_2 = np.arange(45, 75)
    for windows in (data.train_set, data.eval_set):
        assert 2 not in windows.episodes.tolist()
        assert not np.isin(windows.anchors, episode_2).any()
        for i in range(len(windows)):
            item = windows[i]
            assert item["episode"] != 2 and np.isfinite(item["targets"]["sparse"].numpy()).all()
    assert np.isnan(data.train_set.targets["sparse"][45:75]).all()


def test_proportions_follow_eq_1(single):
    _, cache = single
    data = prepare_training(cache, annotations={"sparse": SPANS})
    # Eq. 1: a_k = mean over the M = 2 annotated episodes of (inclusive frames of k) / T, renormalised
    reach, grasp = (8 / 20 + 10 / 25) / 2, (12 / 20 + 13 / 25) / 2  # 0.4, 0.56
    schema = data.config.schemas["sparse"]["*"]
    assert schema["names"] == ["reach", "grasp"]
    assert schema["proportions"] == pytest.approx([reach / 0.96, grasp / 0.96], abs=1e-12)
    assert schema["proportions"] == pytest.approx([5 / 12, 7 / 12], abs=1e-12)
    assert data.report["stages"] == {"sparse": {PICK: ["reach", "grasp"]}}


def test_targets_of_annotated_episodes(single):
    _, cache = single
    data = prepare_training(cache, annotations={"sparse": SPANS})
    schema = StageSchema(names=("reach", "grasp"), proportions=(5 / 12, 7 / 12))
    targets = data.train_set.targets["sparse"]
    for episode in (0, 1):
        np.testing.assert_array_equal(
            targets[rows_of(cache, episode)], schema.targets(SPANS[episode], LENGTHS[episode])
        )
    # and by hand for episode 1: reach 0..9 -> f / 9; the gap 10, 11 -> 1.0;
    # grasp 12..24 -> 1 + (f - 12) / 12, its last frame capped at 1.999
    f = np.arange(25)
    expected = np.where(f <= 9, f / 9, np.where(f < 12, 1.0, 1 + (f - 12) / 12))
    expected[-1] = 1.999
    np.testing.assert_allclose(targets[20:45], expected, rtol=0, atol=1e-12)


def test_a_single_stage_task_needs_no_spans(multi):
    """Multi-task: "pick" episodes 0 and 2 are annotated, "place" (episode 1) has none -> one stage, kept."""
    _, cache = multi
    spans = {0: [("reach", 0, 9), ("grasp", 10, 19)], 2: [("reach", 0, 5), ("grasp", 6, 29)]}
    data = prepare_training(cache, annotations={"sparse": spans})
    assert data.report["unlabelled_episodes"] == []
    assert data.config.schemas["sparse"]["place the cube"] == {"names": ["task"], "proportions": [1.0]}
    pick = data.config.schemas["sparse"][PICK]
    raw = np.array([(10 / 20 + 6 / 30) / 2, (10 / 20 + 24 / 30) / 2])
    assert pick["names"] == ["reach", "grasp"]
    assert pick["proportions"] == pytest.approx((raw / raw.sum()).tolist(), abs=1e-12)
    targets = data.train_set.targets["sparse"]
    np.testing.assert_allclose(targets[20:45], ramp(25), rtol=0, atol=1e-12)


def test_dense_head(single):
    _, cache = single
    dense = {e: [("a", 0, 4), ("b", 5, n - 1)] for e, n in enumerate(LENGTHS)}
    data = prepare_training(cache, annotations={"dense": dense})
    assert set(data.train_set.targets) == {"sparse", "dense"}
    assert data.config.schemas["sparse"] == {"*": {"names": ["task"], "proportions": [1.0]}}
    assert data.config.schemas["dense"]["*"]["names"] == ["a", "b"]
    f = np.arange(20)  # episode 0: a 0..4 -> f / 4, b 5..19 -> 1 + (f - 5) / 14, the last frame capped
    expected = np.where(f <= 4, f / 4, 1 + (f - 5) / 14)
    expected[-1] = 1.999
    np.testing.assert_allclose(data.train_set.targets["dense"][:20], expected, rtol=0, atol=1e-12)
    assert prepare_training(cache, annotations={"dense": {}}).config.heads == ("sparse",)


# ---------------------------------------------------------------------------------------------- errors


def test_empty_cache_is_an_error(single, tmp_path):
    _, cache = single
    root = shutil.copytree(cache.root, tmp_path / "killed")
    for path in (root / "episodes").glob("*.images.npy"):  # a run killed before any episode finished
        path.unlink()
    with pytest.raises(ValueError, match=r"has no finished episode; run `sarm features` first"):
        prepare_training(root)


def test_unknown_head_unlabelled_data_and_bad_spans(single):
    _, cache = single
    with pytest.raises(ValueError, match=r"unknown heads \['coarse'\]; heads are \['sparse', 'dense'\]"):
        prepare_training(cache, annotations={"coarse": SPANS})
    nothing = {0: [("reach", 0, 9), ("grasp", 10, 19)], 1: None, 2: None}
    data = prepare_training(cache, annotations={"sparse": nothing})  # one labelled episode: train only
    assert data.report["unlabelled_episodes"] == [1, 2] and data.eval_set is None
    assert data.report["train_episodes"] == [0]
    # every episode lacks spans for one of the two multi-stage heads
    crossed = {
        "sparse": {0: [("reach", 0, 9), ("grasp", 10, 19)]},
        "dense": {1: [("a", 0, 9), ("b", 10, 24)]},
    }
    with pytest.raises(ValueError, match="no cached episode has annotations for every multi-stage task"):
        prepare_training(cache, annotations=crossed)
    with pytest.raises(ValueError, match=r"span \('reach', 0, 25\) in episode 0 is reversed or outside"):
        prepare_training(str(cache.root), annotations={"sparse": {0: [("reach", 0, 25)]}})  # 20 frames


# ------------------------------------------------------------------------------------- train_from_cache


def test_train_from_cache_is_reproducible(single, tmp_path):
    _, cache = single
    runs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        torch.manual_seed(ord(name))  # the caller's RNG differs between the runs and plays no part
        settings = TrainConfig(
            steps=2, batch_size=4, warmup_steps=1, eval_every=1, checkpoint_every=1, seed=seed
        )
        model, result, report = train_from_cache(
            cache, tmp_path / name, annotations={"sparse": SPANS}, config=settings, model_overrides=TINY,
            device="cpu", progress=False,
        )  # fmt: skip
        runs.append(model.state_dict())
        assert result.step == 2 and report["unlabelled_episodes"] == [2]
        assert result.model_dir == tmp_path / name / "model"
        saved = json.loads((tmp_path / name / "model" / "config.json").read_text())
        state = open_dataset(cache.manifest["dataset"]["root"]).state()
        np.testing.assert_allclose(saved["state_mean"], state.mean(0, dtype=np.float64), rtol=1e-12)
        np.testing.assert_allclose(saved["state_std"], state.std(0, dtype=np.float64), rtol=1e-10)
        assert saved["schemas"]["sparse"]["*"]["names"] == ["reach", "grasp"]
        assert (saved["hidden_dim"], saved["num_layers"], saved["n_obs_steps"], saved["frame_gap"]) == (
            32, 1, 2, 3,
        )  # fmt: skip
        assert (tmp_path / name / "checkpoint" / "train_state.pt").is_file()
    same, other = runs[1], runs[2]
    assert runs[0].keys() == same.keys()
    for key in runs[0]:
        assert torch.equal(runs[0][key], same[key]), key
    assert any(not torch.equal(runs[0][key], other[key]) for key in runs[0])  # another seed, other weights
    reloaded = FeatureCache(cache.root)
    assert reloaded.num_frames == sum(LENGTHS)  # training read the cache, it wrote nothing into it
