"""integrations.openpi against real openpi code: PyPI's `rlinf-openpi`, a repackaging of openpi's src/openpi.

Runs in the side environment that `.ci/openpi` builds; skipped where openpi cannot be imported (the main
environment). openpi's `TorchDataLoader`, `DataLoaderImpl`, `create_torch_dataset`, `transform_dataset`,
`create_data_loader`, its transforms, configs (`debug`, `pi0_libero`) and `Observation` are the real ones.
Stand-ins only where openpi would go to the network: the LeRobot dataset module (openpi reads the dataset
from the Hub) and the PaliGemma tokenizer file (downloaded from GCS; here a tiny SentencePiece model
trained on the spot and put in openpi's download cache).
"""

from __future__ import annotations

import dataclasses
import io
import sys
import types
from typing import ClassVar

import numpy as np
import pytest
import torch

data_loader = pytest.importorskip("openpi.training.data_loader", reason="needs openpi (bash .ci/openpi)")
jax = pytest.importorskip("jax")
_config = pytest.importorskip("openpi.training.config")
_model = pytest.importorskip("openpi.models.model")
_normalize = pytest.importorskip("openpi.shared.normalize")
_transforms = pytest.importorskip("openpi.transforms")
sentencepiece = pytest.importorskip("sentencepiece")

from integrations import openpi as rabc_openpi  # noqa: E402
from rabc.sampler import RABCWeightedSampler  # noqa: E402

N, FPS, BATCH = 60, 10, 4
W = np.tile(np.array([1.0, 0.0, 0.5, 1.0, 0.25, 0.0], np.float32), N // 6)  # 20 frames never drawn
TASKS = {0: "pick up the black bowl", 1: "open the top drawer"}


# -- openpi's `debug` config: FakeDataset (repo_id="fake"), nothing stood in --------------------------


@pytest.fixture(scope="module")
def debug_config():
    return dataclasses.replace(_config.get_config("debug"), batch_size=BATCH, num_workers=0)


def _debug_dataset(config):
    data_config = config.data.create(config.assets_dirs, config.model)
    return data_loader.create_torch_dataset(data_config, config.model.action_horizon, config.model)


def test_debug_config_sampler_mode_draws_the_weighted_frames_in_the_samplers_order(debug_config):
    n = 1024  # openpi's FakeDataset
    w = np.zeros(n, np.float32)
    kept = np.arange(3, n, 97)  # 11 frames
    w[kept] = np.linspace(0.2, 1.0, kept.size)
    loader = rabc_openpi.create_weighted_data_loader(debug_config, w, num_batches=4)
    assert isinstance(loader, data_loader.DataLoaderImpl)
    assert loader.data_config().repo_id == "fake"
    batches = list(loader)
    assert len(batches) == 4
    dataset = _debug_dataset(debug_config)
    state_of = {int(i): np.asarray(dataset[int(i)]["state"]) for i in kept}
    expected = list(RABCWeightedSampler(w, seed=debug_config.seed))[: 4 * BATCH]
    for b, (obs, actions) in enumerate(batches):
        assert isinstance(obs, _model.Observation) and isinstance(actions, jax.Array)
        assert actions.shape == (BATCH, debug_config.model.action_horizon, debug_config.model.action_dim)
        for j, state in enumerate(np.asarray(obs.state)):
            np.testing.assert_array_equal(state, state_of[expected[b * BATCH + j]])


def test_debug_config_loss_mode_keeps_openpis_batches_and_aligns_the_weights(debug_config):
    n = 1024
    w = (np.arange(n, dtype=np.float32) + 1) / n  # unique: each weight names its frame
    ours = list(rabc_openpi.create_weighted_data_loader(debug_config, w, weighting="loss", num_batches=3))
    theirs = list(data_loader.create_data_loader(debug_config, shuffle=True, num_batches=3))
    dataset = _debug_dataset(debug_config)
    for (obs, actions, weights), (their_obs, their_actions) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(obs.state), np.asarray(their_obs.state))  # openpi's order
        np.testing.assert_array_equal(np.asarray(actions), np.asarray(their_actions))
        assert isinstance(weights, jax.Array) and weights.dtype == np.float32 and weights.shape == (BATCH,)
        assert weights.sharding.is_equivalent_to(actions.sharding, 1)
        frames = np.rint(np.asarray(weights) * n).astype(int) - 1
        for pos, state in zip(frames, np.asarray(obs.state), strict=True):
            np.testing.assert_array_equal(state, np.asarray(dataset[int(pos)]["state"]))


def test_weighted_loss_jax_on_the_real_batch(debug_config):
    loader = rabc_openpi.create_weighted_data_loader(
        debug_config, np.ones(1024, np.float32), weighting="loss", num_batches=1
    )
    _, actions, weights = next(iter(loader))
    chunked = jax.numpy.mean(jax.numpy.square(actions), axis=-1)  # [B, action_horizon], like Pi0.compute_loss
    assert rabc_openpi.weighted_loss_jax(chunked, weights) == jax.numpy.mean(chunked)


# -- openpi's `pi0_libero` config over a LeRobot dataset that stands in for the Hub's --------------------


class FakeLeRobotDatasetMetadata:
    def __init__(self, repo_id):
        self.repo_id, self.fps, self.tasks = repo_id, FPS, TASKS


class FakeLeRobotDataset:
    """LIBERO's columns: frame i has state[0] = i and a gripper action (not made relative by openpi) of i."""

    created: ClassVar[list] = []

    def __init__(self, repo_id, *, delta_timestamps=None):
        self.repo_id, self.delta_timestamps = repo_id, delta_timestamps
        self.horizon = len(delta_timestamps["actions"])
        FakeLeRobotDataset.created.append(self)

    def __len__(self):
        return N

    def __getitem__(self, i):
        i = int(i)
        return {
            "image": np.full((32, 32, 3), i, np.uint8),
            "wrist_image": np.zeros((32, 32, 3), np.uint8),
            "state": np.concatenate([[i], np.zeros(7)]).astype(np.float32),
            "actions": np.tile(np.array([0, 0, 0, 0, 0, 0, i], np.float32), (self.horizon, 1)),
            "task_index": np.int64(i % 2),
            "index": np.int64(i),
            "episode_index": np.int64(i // 30),
            "frame_index": np.int64(i % 30),
            "timestamp": np.float32(i % 30 / FPS),
        }


def _tiny_sentencepiece_model() -> bytes:
    words = " ".join(TASKS.values()).split()
    lines = [" ".join(words[k:] + words[:k]) for k in range(len(words))] * 20
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=out, vocab_size=20, hard_vocab_limit=False, minloglevel=2
    )
    return out.getvalue()


@pytest.fixture
def libero(monkeypatch, tmp_path):
    """openpi's own `pi0_libero` config, with its Hub and GCS reads served from tmp_path."""
    cache = tmp_path / "openpi_cache"
    (cache / "big_vision").mkdir(parents=True)
    (cache / "big_vision" / "paligemma_tokenizer.model").write_bytes(_tiny_sentencepiece_model())
    monkeypatch.setenv("OPENPI_DATA_HOME", str(cache))
    config = dataclasses.replace(
        _config.get_config("pi0_libero"), batch_size=BATCH, num_workers=0, assets_base_dir=str(tmp_path)
    )
    stats = _normalize.NormStats(mean=np.zeros(32), std=np.ones(32), q01=-np.ones(32), q99=np.ones(32))
    _normalize.save(config.assets_dirs / config.data.repo_id, {"state": stats, "actions": stats})

    module = types.ModuleType("lerobot.common.datasets.lerobot_dataset")
    module.LeRobotDatasetMetadata, module.LeRobotDataset = FakeLeRobotDatasetMetadata, FakeLeRobotDataset
    if hasattr(data_loader, "lerobot_dataset"):  # openpi's own tree imports lerobot at module level
        monkeypatch.setattr(data_loader, "lerobot_dataset", module)
    else:  # rlinf-openpi imports it when a dataset is made
        for name in ("lerobot", "lerobot.common", "lerobot.common.datasets"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, module.__name__, module)
    FakeLeRobotDataset.created = []
    return config


def positions(obs) -> list[int]:
    """Frame of each sample, from state[0] = i after openpi's z-score (mean 0, std 1 + 1e-6)."""
    return np.rint(np.asarray(obs.state)[:, 0]).astype(int).tolist()


def test_libero_reads_the_dataset_through_openpis_create_torch_dataset(libero):
    rabc_openpi.create_weighted_data_loader(libero, W, framework="pytorch")
    (ds,) = FakeLeRobotDataset.created
    assert ds.repo_id == "physical-intelligence/libero"
    assert ds.delta_timestamps == {"actions": [t / FPS for t in range(libero.model.action_horizon)]}


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_libero_sampler_mode_follows_the_sampler_through_openpis_transforms(libero, framework):
    loader = rabc_openpi.create_weighted_data_loader(libero, W, framework=framework, num_batches=6)
    assert isinstance(loader, data_loader.DataLoaderImpl)
    seen, expected = [], list(RABCWeightedSampler(W, seed=libero.seed))[: 6 * BATCH]
    for obs, actions in loader:
        assert isinstance(obs, _model.Observation) and obs.tokenized_prompt.shape == (BATCH, 48)
        assert isinstance(actions, torch.Tensor if framework == "pytorch" else jax.Array)
        assert actions.shape == (BATCH, 50, 32)  # Pi0's horizon; padded to action_dim by openpi
        gripper = np.asarray(actions)[:, :, 6]  # frame i's gripper action is i, z-scored with std 1 + 1e-6
        np.testing.assert_allclose(gripper, np.repeat(positions(obs), 50).reshape(BATCH, 50), rtol=1e-5)
        seen += positions(obs)
    assert seen == expected and W[seen].min() > 0


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_libero_loss_mode_yields_each_frames_weight(libero, framework):
    loader = rabc_openpi.create_weighted_data_loader(
        libero, W, weighting="loss", framework=framework, num_batches=8
    )
    seen, weights = [], []
    for obs, actions, w in loader:
        assert isinstance(obs, _model.Observation)
        if framework == "pytorch":
            assert isinstance(w, torch.Tensor) and w.dtype == torch.float32 and w.device.type == "cpu"
        else:
            assert isinstance(w, jax.Array) and w.sharding.is_equivalent_to(actions.sharding, 1)
        assert tuple(w.shape) == (BATCH,)
        seen += positions(obs)
        weights += np.asarray(w).tolist()
    np.testing.assert_array_equal(np.asarray(weights, np.float32), W[seen])
    assert W[seen].min() == 0  # loss mode loads every frame; the weight does the work


def test_the_weight_must_be_added_after_openpis_repack_transform(libero):
    data_config = libero.data.create(libero.assets_dirs, libero.model)
    raw = data_loader.create_torch_dataset(data_config, libero.model.action_horizon, libero.model)
    before = data_loader.transform_dataset(rabc_openpi.WeightedDataset(raw, W), data_config)
    assert "rabc_weight" not in before[2]  # RepackTransform rebuilt the dict and dropped the key
    after = rabc_openpi.WeightedDataset(data_loader.transform_dataset(raw, data_config), W)
    item = after[2]
    assert item["rabc_weight"] == np.float32(0.5) and round(float(item["state"][0])) == 2
    assert {"image", "image_mask", "state", "actions", "tokenized_prompt"} <= set(item)


def test_loss_mode_with_spawned_workers_over_two_epochs(libero):
    """openpi's workers are spawned: WeightedDataset over openpi's TransformedDataset must pickle."""
    config = dataclasses.replace(libero, num_workers=1)
    loader = rabc_openpi.create_weighted_data_loader(
        config, W, weighting="loss", framework="pytorch", num_batches=20
    )
    batches = list(loader)  # 15 batches per epoch: openpi's loop restarts its DataLoader once
    seen = [p for obs, _, _ in batches for p in positions(obs)]
    np.testing.assert_array_equal(torch.cat([w for *_, w in batches]).numpy(), W[seen])
    assert sorted(seen[:N]) == list(range(N))  # the first epoch is a permutation of all frames


def test_each_pass_of_openpis_loop_is_the_next_epoch_of_the_sampler(libero):
    """openpi never calls set_epoch; TorchDataLoader re-iterates its DataLoader, and auto_epoch moves on."""
    draws = 2 * BATCH  # two batches per epoch
    loader = rabc_openpi.create_weighted_data_loader(
        libero, W, framework="pytorch", num_samples=draws, num_batches=8
    )
    seen = [p for obs, _ in loader for p in positions(obs)]
    passes = [seen[e * draws : (e + 1) * draws] for e in range(4)]
    assert len({tuple(p) for p in passes}) == 4
    for epoch, got in enumerate(passes):
        reference = RABCWeightedSampler(W, seed=libero.seed, num_samples=draws)
        reference.set_epoch(epoch)
        assert got == list(reference)


def test_jax_sharding_and_seed_reach_openpis_loader(libero):
    mesh = jax.sharding.Mesh(jax.devices(), ("B",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())  # openpi's default shards "B"
    loader = rabc_openpi.create_weighted_data_loader(libero, W, sharding=replicated, seed=11, num_batches=2)
    batches = list(loader)
    assert all(actions.sharding == replicated for _, actions in batches)  # not openpi's PartitionSpec("B")
    assert [p for obs, _ in batches for p in positions(obs)] == list(RABCWeightedSampler(W, seed=11))[
        : 2 * BATCH
    ]


def test_weights_must_match_openpis_dataset(libero):
    with pytest.raises(ValueError, match=r"shape \(59,\) do not match the openpi dataset of 60 samples"):
        rabc_openpi.create_weighted_data_loader(libero, W[:-1], framework="pytorch")
    sparse = np.zeros(N, np.float32)
    sparse[:3] = 1.0  # 3 frames per epoch without replacement < batch of 4: openpi's loop would spin forever
    with pytest.raises(ValueError, match="yields 3 samples per epoch on this rank, fewer than the local"):
        rabc_openpi.create_weighted_data_loader(libero, sparse, framework="pytorch", replacement=False)


def _fake_ddp(monkeypatch, world_size, rank):
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: world_size)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank)


@pytest.mark.parametrize("rank", [0, 1])
def test_ddp_loss_mode_gives_openpis_batches_on_each_rank(libero, monkeypatch, rank):
    _fake_ddp(monkeypatch, world_size=2, rank=rank)
    ours = list(
        rabc_openpi.create_weighted_data_loader(
            libero, W, weighting="loss", framework="pytorch", num_batches=4
        )
    )
    theirs = list(data_loader.create_data_loader(libero, framework="pytorch", shuffle=True, num_batches=4))
    for (obs, actions, w), (their_obs, their_actions) in zip(ours, theirs, strict=True):
        assert torch.equal(obs.state, their_obs.state) and torch.equal(actions, their_actions)
        assert tuple(w.shape) == (BATCH // 2,)
        np.testing.assert_array_equal(w.numpy(), W[positions(obs)])


def test_ddp_sampler_mode_ranks_draw_disjoint_slices_of_one_stream(libero, monkeypatch):
    world, per_rank = 2, N // 2
    shards = []
    for rank in range(world):
        _fake_ddp(monkeypatch, world_size=world, rank=rank)
        loader = rabc_openpi.create_weighted_data_loader(
            libero, W, framework="pytorch", num_batches=per_rank // (BATCH // world)
        )
        shards.append([p for obs, _ in loader for p in positions(obs)])
    stream = list(RABCWeightedSampler(W, seed=libero.seed, num_samples=N))
    assert shards == [stream[r * per_rank : (r + 1) * per_rank] for r in range(world)]
