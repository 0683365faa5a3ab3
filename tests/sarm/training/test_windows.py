"""sarm.training.windows: centered and past windows, rewind candidates, WindowDataset gathers, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sarm.training.windows import WindowDataset, current_slot, rewind_frames, split_episodes, window_frames

LENGTHS = [50, 200, 7, 300]


def frame_features(num_frames: int, cameras: int = 2, width: int = 4, dtype=np.float32) -> np.ndarray:
    """Feature row f, camera c holds 10 * f + c in every column: the row tells which frame it is."""
    f = np.arange(num_frames, dtype=np.float64)[:, None, None]
    c = np.arange(cameras, dtype=np.float64)[None, :, None]
    return np.broadcast_to(10 * f + c, (num_frames, cameras, width)).astype(dtype)


def make_dataset(lengths=LENGTHS, **kwargs) -> WindowDataset:
    n = sum(lengths)
    frames = np.arange(n, dtype=np.float64)
    args = dict(
        episode_lengths=lengths,
        targets={"sparse": frames / 1000, "dense": frames / 500},
        tasks=[f"task {i % 2}" for i in range(len(lengths))],
        state=np.stack([-frames, frames + 0.5], axis=1).astype(np.float32),
    )
    args.update(kwargs)
    return WindowDataset(frame_features(n), **args)


# -- window_frames: centered ----------------------------------------------------------------------


def test_centered_matches_lerobot_example():
    out = window_frames(50, 0, 300, mode="centered", n_obs_steps=8, frame_gap=30)
    assert out.dtype == np.int64 and out.shape == (1, 9)
    assert out[0].tolist() == [0, 0, 0, 20, 50, 80, 110, 140, 170]


def test_centered_clamps_at_both_ends():
    out = window_frames([1010, 1290, 1150], 1000, 1300, mode="centered", n_obs_steps=8, frame_gap=30)
    assert out[0].tolist() == [1000, 1000, 1000, 1000, 1010, 1040, 1070, 1100, 1130]
    assert out[1].tolist() == [1170, 1200, 1230, 1260, 1290, 1299, 1299, 1299, 1299]
    assert out[2].tolist() == [1030, 1060, 1090, 1120, 1150, 1180, 1210, 1240, 1270]


def test_centered_vectorised_over_episodes_equals_formula():
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 10_000, 500)
    ends = starts + rng.integers(1, 400, 500)
    t = starts + (rng.random(500) * (ends - starts)).astype(np.int64)
    out = window_frames(t, starts, ends, mode="centered", n_obs_steps=4, frame_gap=7)
    for m in range(500):
        expected = [min(max(t[m] + 7 * k, starts[m]), ends[m] - 1) for k in (-2, -1, 0, 1, 2)]
        assert out[m].tolist() == expected
    assert (out[:, current_slot("centered", 4)] == t).all()


def test_centered_odd_n_obs_steps_raises():
    with pytest.raises(ValueError, match="even n_obs_steps"):
        window_frames(10, 0, 100, mode="centered", n_obs_steps=7)


# -- window_frames: past --------------------------------------------------------------------------


def test_past_regular_stride_with_enough_history():
    out = window_frames([300, 1240], [0, 1000], [400, 2000], mode="past", n_obs_steps=8, frame_gap=30)
    assert out[0].tolist() == [0, 90, 120, 150, 180, 210, 240, 270, 300]
    assert out[1].tolist() == [1000, 1030, 1060, 1090, 1120, 1150, 1180, 1210, 1240]  # exactly 8 * gap


def test_past_adaptive_stride_when_history_is_short():
    out = window_frames([1100, 1239], 1000, 2000, mode="past", n_obs_steps=8, frame_gap=30)
    # 100 * j / 8 rounded half to even (12.5 -> 12, 37.5 -> 38), like Python's round in opensarm
    assert out[0].tolist() == [1000, 1012, 1025, 1038, 1050, 1062, 1075, 1088, 1100]
    assert out[1].tolist() == [1000 + round(239 * j / 8) for j in range(9)]


def test_past_at_episode_start_repeats_the_first_frame():
    assert window_frames(500, 500, 900, mode="past", n_obs_steps=8).tolist() == [[500] * 9]


def test_past_windows_are_monotone_end_at_t_and_start_at_episode_start():
    t = np.arange(1000, 1700)
    out = window_frames(t, 1000, 1700, mode="past", n_obs_steps=6, frame_gap=15)
    assert (out[:, 0] == 1000).all()
    assert (out[:, current_slot("past", 6)] == t).all() and current_slot("past", 6) == 6
    assert (np.diff(out, axis=1) >= 0).all()
    assert (out >= 1000).all() and (out <= t[:, None]).all()
    long = t - 1000 >= 6 * 15
    assert (np.diff(out[long, 1:], axis=1) == 15).all()  # regular stride once the history is long enough


def test_window_errors():
    with pytest.raises(ValueError, match="outside its episode"):
        window_frames(300, 0, 300)  # episode_end is exclusive
    with pytest.raises(ValueError, match="outside its episode"):
        window_frames([5, 1], 2, 10)
    with pytest.raises(ValueError, match="mode should be one of"):
        window_frames(5, 0, 10, mode="future")
    with pytest.raises(ValueError, match="frame_gap should be a positive integer"):
        window_frames(5, 0, 10, frame_gap=0)
    with pytest.raises(ValueError, match="n_obs_steps should be a positive integer"):
        window_frames(5, 0, 10, mode="past", n_obs_steps=0)


def test_current_slot():
    assert current_slot("centered", 8) == 4
    assert current_slot("past", 8) == 8


# -- rewind_frames --------------------------------------------------------------------------------


def test_rewind_frames_availability_and_clamping():
    rewind, available = rewind_frames([200, 40, 0, 1090], [0, 0, 0, 1000], max_rewind_steps=4, frame_gap=30)
    assert rewind.dtype == np.int64 and available.dtype == np.int64
    assert rewind.tolist() == [[170, 140, 110, 80], [10, 0, 0, 0], [0, 0, 0, 0], [1060, 1030, 1000, 1000]]
    assert available.tolist() == [4, 1, 0, 3]  # t - 90 == start counts: frame start itself is shown


def test_rewind_frames_zero_steps():
    rewind, available = rewind_frames([100], 0, max_rewind_steps=0)
    assert rewind.shape == (1, 0) and available.tolist() == [0]


# -- WindowDataset --------------------------------------------------------------------------------


def test_dataset_gathers_the_window_and_rewind_rows():
    ds = make_dataset(mode="centered", n_obs_steps=8, frame_gap=30, max_rewind_steps=4)
    starts = np.cumsum([0, *LENGTHS[:-1]])
    assert len(ds) == sum(LENGTHS) and ds.num_slots == 13 and ds.current_slot == 4
    assert ds.episode_starts.tolist() == starts.tolist()
    for i in [0, 49, 50, 130, 249, 250, 256, 257, 400, len(ds) - 1]:
        item = ds[i]
        t, episode = item["frame"], item["episode"]
        assert t == i and item["key"] == i
        assert starts[episode] <= t < starts[episode] + LENGTHS[episode]
        assert item["task"] == f"task {episode % 2}"
        end = starts[episode] + LENGTHS[episode]
        window = window_frames(t, starts[episode], end, n_obs_steps=8, frame_gap=30)[0]
        rewind, available = rewind_frames(t, starts[episode], max_rewind_steps=4, frame_gap=30)
        assert item["rewind_available"] == available[0]
        for key, rows in (("video", window), ("rewind_video", rewind[0])):
            assert item[key].dtype == torch.float32 and item[key].shape == (len(rows), 2, 4)
            assert item[key][:, 0, 0].tolist() == (10.0 * rows).tolist()
            assert item[key][:, 1, 3].tolist() == (10.0 * rows + 1).tolist()
        for prefix, rows in (("", window), ("rewind_", rewind[0])):
            assert item[prefix + "state"][:, 0].tolist() == (-rows.astype(np.float32)).tolist()
            targets = item[prefix + "targets"]
            np.testing.assert_array_equal(targets["sparse"], (rows / 1000).astype(np.float32))
            np.testing.assert_array_equal(targets["dense"], (rows / 500).astype(np.float32))


def test_dataset_past_mode_episodes_subset_and_stride():
    ds = make_dataset(mode="past", episodes=[3, 1], anchor_stride=40)
    starts = np.cumsum([0, *LENGTHS[:-1]])
    expected = np.concatenate([starts[3] + np.arange(0, 300, 40), starts[1] + np.arange(0, 200, 40)])
    assert ds.anchors.dtype == np.int64 and ds.anchors.tolist() == expected.tolist()
    assert [ds[i]["episode"] for i in range(len(ds))] == [3] * 8 + [1] * 5
    item = ds[7]  # frame 280 of episode 3
    assert item["frame"] == starts[3] + 280
    assert (
        item["video"][:, 0, 0].tolist()
        == (10.0 * (starts[3] + np.array([0, 70, 100, 130, 160, 190, 220, 250, 280]))).tolist()
    )
    assert ds.current_slot == 8 and item["video"][8, 0, 0] == 10.0 * item["frame"]


def test_dataset_single_camera_memmap_torch_and_no_state(tmp_path):
    n = sum(LENGTHS)
    mm = np.memmap(tmp_path / "f.bin", dtype=np.float16, mode="w+", shape=(n, 4))
    mm[:] = frame_features(n, cameras=1)[:, 0, :] / 10  # the frame index itself (exact in float16 < 2048)
    mm.flush()
    ro = np.memmap(tmp_path / "f.bin", dtype=np.float16, mode="r", shape=(n, 4))
    for feats in (ro, torch.tensor(np.array(ro), dtype=torch.float64)):
        ds = WindowDataset(feats, episode_lengths=LENGTHS, tasks=["a"] * 4, max_rewind_steps=2)
        item = ds[300]
        assert item["video"].dtype == torch.float32 and item["video"].shape == (9, 1, 4)
        assert item["episode"] == 3  # frames [257, 557)
        assert item["video"][:, 0, 0].tolist() == [257, 257, 257, 270, 300, 330, 360, 390, 420]
        assert item["rewind_video"][:, 0, 0].tolist() == [270, 257] and item["rewind_available"] == 1
        assert item["state"].shape == (9, 0) and item["rewind_state"].shape == (2, 0)
        assert item["targets"] == {} and item["rewind_targets"] == {}


def test_dataset_negative_index_and_out_of_range():
    ds = make_dataset()
    assert ds[-1]["frame"] == sum(LENGTHS) - 1 and ds[-1]["key"] == len(ds) - 1
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_dataset_skips_empty_episodes():
    ds = make_dataset(lengths=[3, 0, 2], tasks=["a", "b", "c"])
    assert len(ds) == 5
    assert [ds[i]["episode"] for i in range(5)] == [0, 0, 0, 2, 2]


def test_dataset_errors():
    n = sum(LENGTHS)
    with pytest.raises(ValueError, match=r"features has 556 rows but episode_lengths sums to 557"):
        WindowDataset(frame_features(n - 1), episode_lengths=LENGTHS, tasks=["a"] * 4)
    y = np.zeros(n)
    y[260] = np.nan
    with pytest.raises(ValueError, match=r"targets\['sparse'\] is nan at frame 260 \(episode 3\)"):
        make_dataset(targets={"sparse": y})
    assert len(make_dataset(targets={"sparse": y}, episodes=[0, 2])) == 57  # unlabelled episode left out
    with pytest.raises(ValueError, match=r"targets\['dense'\] has 10 rows"):
        make_dataset(targets={"dense": np.zeros(10)})
    with pytest.raises(ValueError, match="one task text per episode"):
        make_dataset(tasks=["a", "b"])
    with pytest.raises(ValueError, match=r"state should be \(N, S\)"):
        make_dataset(state=np.zeros(n))
    with pytest.raises(TypeError, match="floating-point"):
        WindowDataset(np.zeros((n, 4), np.int64), episode_lengths=LENGTHS, tasks=["a"] * 4)
    with pytest.raises(ValueError, match=r"episodes \[4\] are out of range"):
        make_dataset(episodes=[0, 4])
    with pytest.raises(ValueError, match="repeat"):
        make_dataset(episodes=[1, 1])
    with pytest.raises(ValueError, match="non-negative, but episode 1 has length -3"):
        make_dataset(lengths=[3, -3, 557])
    with pytest.raises(ValueError, match="anchor_stride should be a positive integer"):
        make_dataset(anchor_stride=0)
    with pytest.raises(ValueError, match="even n_obs_steps"):
        make_dataset(n_obs_steps=5)


# -- split_episodes -------------------------------------------------------------------------------


def test_split_episodes_deterministic_disjoint_and_covering():
    train, evals = split_episodes(50, eval_fraction=0.1, seed=3)
    assert len(evals) == 5 and len(train) == 45
    assert sorted(np.concatenate([train, evals]).tolist()) == list(range(50))
    assert (np.diff(train) > 0).all() and (np.diff(evals) > 0).all()
    again = split_episodes(50, eval_fraction=0.1, seed=3)
    assert again[0].tolist() == train.tolist() and again[1].tolist() == evals.tolist()
    assert split_episodes(50, eval_fraction=0.1, seed=4)[1].tolist() != evals.tolist()


@pytest.mark.parametrize(("n", "fraction", "n_eval"), [(2, 0.1, 1), (2, 0.9, 1), (3, 0.01, 1), (10, 0.99, 9)])
def test_split_episodes_keeps_one_on_each_side(n, fraction, n_eval):
    train, evals = split_episodes(n, eval_fraction=fraction)
    assert len(evals) == n_eval and len(train) == n - n_eval


def test_split_episodes_single_episode_and_errors():
    train, evals = split_episodes(1)
    assert train.tolist() == [0] and evals.tolist() == []
    with pytest.raises(ValueError, match="eval_fraction should be in"):
        split_episodes(10, eval_fraction=0.0)
    with pytest.raises(ValueError, match="num_episodes should be a positive integer"):
        split_episodes(0)
