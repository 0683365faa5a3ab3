"""LeRobot itself loads what sarm.data.writer writes: frames, stats for its normalisers, SARM annotations.

Runs only where `lerobot` is importable, e.g.
`/tmp/venv-lerobot/bin/python -m pytest -q -p no:cacheprovider tests/sarm/test_writer_lerobot.py`.
"""

import os
import tempfile

import pytest

# LeRobot loads data through `datasets`, which caches under HF_DATASETS_CACHE; keep that out of $HOME and
# keep every Hub lookup offline (a repo id like "local/x" must never reach the network)
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="hf-datasets-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("lerobot")

import numpy as np
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from tests.sarm.data.test_writer import (
    CAM,
    DENSE,
    FPS,
    LENGTHS,
    SPARSE,
    TASKS,
    episode_arrays,
    gray,
    write_example,
)

STARTS = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("writer-lerobot") / "ds")


def load(root, **kwargs):
    # the side environment has no torchcodec, LeRobot's default decoder
    return LeRobotDataset("local/x", root=root, video_backend="pyav", **kwargs)


def check_items(ds):
    for ep, (start, length) in enumerate(zip(STARTS, LENGTHS, strict=True)):
        state, action, _, reward = episode_arrays(ep, start, length)
        for frame in (0, length // 2, length - 1):
            item = ds[int(start + frame)]
            assert (item["episode_index"].item(), item["frame_index"].item()) == (ep, frame)
            assert item["task"] == TASKS[ep]
            torch.testing.assert_close(item["observation.state"], torch.from_numpy(state[frame]).float())
            torch.testing.assert_close(item["action"], torch.from_numpy(action[frame]))
            assert item["next.reward"].item() == pytest.approx(reward[frame])
            image = item[CAM]
            assert image.shape == (3, 64, 64) and image.dtype == torch.float32
            assert abs(image.mean().item() * 255 - gray(start + frame)) <= 3


def test_lerobot_dataset_loads_frames_and_values(root):
    ds = load(root)
    assert (len(ds), ds.num_episodes, ds.fps) == (sum(LENGTHS), 3, FPS)
    assert ds.meta.video_keys == [CAM] and ds.meta.total_tasks == 2
    check_items(ds)


def test_lerobot_loads_one_file_per_episode(tmp_path):
    check_items(load(write_example(tmp_path / "ds", data_file_mb=1e-6, video_file_mb=1e-6)))


def test_delta_timestamps_query_neighbouring_frames(root):
    ds = load(root, delta_timestamps={CAM: [-2 / FPS, 0.0, 2 / FPS], "observation.state": [-1 / FPS, 0.0]})
    item = ds[int(STARTS[1])]  # first frame of episode 1: the past is padded with the episode's own start
    assert item[CAM].shape == (3, 3, 64, 64) and item["observation.state"].shape == (2, 3)
    levels = (item[CAM].mean(dim=(1, 2, 3)) * 255).numpy()
    np.testing.assert_allclose(levels, gray(STARTS[1] + np.array([0, 0, 2])), atol=3)
    assert item[f"{CAM}_is_pad"].tolist() == [True, False, False]


def test_episode_metadata_has_the_sarm_annotation_columns(root):
    from lerobot.rewards.sarm.processor_sarm import SARMEncodingProcessorStep as Step
    from lerobot.rewards.sarm.sarm_utils import find_stage_and_tau

    episodes = load(root).meta.episodes.to_pandas()
    for head, written in (("sparse", SPARSE), ("dense", DENSE)):
        columns = [
            Step._resolve_annotation_column(episodes, head, f"subtask_{f}")
            for f in ("names", "start_frames", "end_frames")
        ]
        assert columns == [f"{head}_subtask_{f}" for f in ("names", "start_frames", "end_frames")]
        for ep in range(3):
            values = [episodes.loc[ep, c] for c in columns]
            assert Step._annotations_are_usable(*values) == (ep in written)
            if ep in written:
                assert [list(v) for v in values] == [list(v) for v in written[ep]]
    names, starts, ends = SPARSE[0]  # reach 0..10, grasp 10..19: LeRobot's stage and tau at frames 5, 15
    props = {"reach": 0.5, "grasp": 0.5}
    assert find_stage_and_tau(5, LENGTHS[0], names, starts, ends, names, props) == (0, 0.5)
    assert find_stage_and_tau(15, LENGTHS[0], names, starts, ends, names, props)[0] == 1


def test_sarm_reward_model_reads_the_temporal_proportions(root):
    from lerobot.rewards.sarm.configuration_sarm import SARMConfig
    from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel

    config = SARMConfig(
        annotation_mode="dual", image_key=CAM, hidden_dim=32, num_heads=2, num_layers=1, device="cpu"
    )
    model = SARMRewardModel(config, dataset_meta=load(root).meta)
    assert model.config.sparse_subtask_names == ["reach", "grasp"]
    assert model.config.dense_subtask_names == ["a", "b", "c"]
    assert sum(model.config.dense_temporal_proportions) == pytest.approx(1.0)


def test_policy_normalisers_use_the_stats(root):
    from lerobot.configs.types import FeatureType, NormalizationMode
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.processor import NormalizerProcessorStep, TransitionKey
    from lerobot.utils.feature_utils import dataset_to_policy_features

    ds = load(root)
    stats = ds.meta.stats
    assert stats[CAM]["mean"].shape == (3, 1, 1)  # per channel, in [0, 1]
    assert {"mean", "std", "min", "max", "q01", "q99"} <= set(stats["observation.state"])
    # ACT normalises images, state and action by mean and std (a tiny one, no pretrained backbone)
    config = ACTConfig(
        pretrained_backbone_weights=None,
        device="cpu",
        chunk_size=5,
        n_action_steps=5,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
    )
    make_policy(config, ds_meta=ds.meta)
    preprocess, _ = make_pre_post_processors(config, dataset_stats=stats)
    item = ds[5]
    batch = preprocess({k: v[None] if isinstance(v, torch.Tensor) else [v] for k, v in item.items()})
    mean, std = (torch.as_tensor(stats[CAM][k], dtype=torch.float32) for k in ("mean", "std"))
    torch.testing.assert_close(batch[CAM][0], (item[CAM] - mean) / (std + 1e-8))
    # pi0-style quantile normalisation maps state into [-1, 1] with q01 and q99
    features = dataset_to_policy_features(ds.meta.features)
    quantiles = NormalizerProcessorStep(
        features=features, norm_map={FeatureType.STATE: NormalizationMode.QUANTILES}, stats=stats
    )
    states = torch.stack([ds[i]["observation.state"] for i in range(len(ds))])
    out = quantiles({TransitionKey.OBSERVATION: {"observation.state": states}})[TransitionKey.OBSERVATION]
    q01, q99 = (torch.as_tensor(stats["observation.state"][k], dtype=torch.float32) for k in ("q01", "q99"))
    torch.testing.assert_close(out["observation.state"], 2 * (states - q01) / (q99 - q01) - 1)
    assert out["observation.state"].abs().max() <= 1.1  # frames beyond q01..q99 land a little outside


def test_lerobot_carries_mistake_and_outcome_columns_without_reading_them(root, tmp_path):
    """The extra episode columns (sarm.labels.records) leave LeRobot's loading and items unchanged."""
    import shutil

    from sarm.data.edit import write_episode_columns
    from sarm.labels.records import episode_columns

    edited = tmp_path / "ds"
    shutil.copytree(root, edited)
    cols = episode_columns(mistakes={0: [("pause", 2, 5)], 1: []}, outcomes={0: "success", 2: "failure"})
    write_episode_columns(edited, cols, backup=False)
    ds = load(edited)
    assert (len(ds), ds.num_episodes) == (sum(LENGTHS), 3)
    check_items(ds)
