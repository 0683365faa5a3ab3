"""Tests for integrations.openpi that need no openpi: sampler in openpi's loader loop, DDP shards,
WeightedDataset, the loader factory's argument errors, the JAX and PyTorch losses.

The loader paths against real openpi code (`TorchDataLoader`, `DataLoaderImpl`, `create_torch_dataset`,
`transform_dataset`, `RepackTransform`, `Observation`, openpi's `debug` and `pi0_libero` configs) are in
test_openpi_real.py, which runs in the side environment of `.ci/openpi`. The fakes below stay where
that cannot reach or where no openpi is needed: `FakeTorchDataLoader` copies openpi's loop to drive the
sampler over many passes and ranks, and the factory's errors (RLDS among them: openpi's DROID configs
read their assets from GCS) are raised against a fake `openpi` package.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from integrations import openpi as rabc_openpi
from rabc import RABCWeights
from rabc.sampler import RABCWeightedSampler
from tests.conftest import progress_table

ROOT = Path(__file__).resolve().parents[2]
N = 60
W = np.tile(np.array([1.0, 0.0, 0.5, 1.0, 0.25, 0.0], np.float32), N // 6)  # frames 1, 5, 7, ... never drawn


# -- fakes of openpi's data path ------------------------------------------------------------------


class FakeLeRobotDataset:
    """LeRobot-like frames: raw keys that openpi's repack transform renames; `index` is dropped by it."""

    def __init__(self, n: int, action_horizon: int):
        self.n, self.h = n, action_horizon

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {
            "observation.state": np.full(2, i, np.float32),
            "observation.images.top": np.zeros((4, 4, 3), np.uint8),
            "action": np.full((self.h, 3), i, np.float32),
            "index": np.int64(i),
        }


def repack(item):
    """Like openpi's RepackTransform: the output dict has a fixed structure; other keys are dropped."""
    return {
        "image": {"base_0_rgb": item["observation.images.top"]},
        "image_mask": {"base_0_rgb": np.True_},
        "state": item["observation.state"],
        "actions": item["action"],
    }


class FakeTransformedDataset:
    def __init__(self, dataset, transforms):
        self.dataset, self.transforms = dataset, transforms

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        for t in self.transforms:
            item = t(item)
        return item


def _collate(items):
    if isinstance(items[0], dict):
        return {k: _collate([x[k] for x in items]) for k in items[0]}
    return np.stack([np.asarray(x) for x in items])


def _tree_map(fn, tree):
    return {k: _tree_map(fn, v) for k, v in tree.items()} if isinstance(tree, dict) else fn(tree)


class FakeTorchDataLoader:
    """openpi's TorchDataLoader interface: a torch DataLoader (drop_last=True) re-iterated forever."""

    created: ClassVar[list] = []

    def __init__(self, dataset, local_batch_size, *, sharding=None, shuffle=False, sampler=None,
                 num_batches=None, num_workers=0, seed=0, framework="jax"):  # fmt: skip
        self.kwargs = dict(local_batch_size=local_batch_size, sharding=sharding, shuffle=shuffle,
                           sampler=sampler, num_batches=num_batches, num_workers=num_workers, seed=seed,
                           framework=framework)  # fmt: skip
        self.dataset, self.framework, self.num_batches = dataset, framework, num_batches
        FakeTorchDataLoader.created.append(self)
        generator = torch.Generator()
        generator.manual_seed(seed)
        self.torch_loader = torch.utils.data.DataLoader(
            dataset, batch_size=local_batch_size, shuffle=sampler is None and shuffle, sampler=sampler,
            num_workers=num_workers, multiprocessing_context="spawn" if num_workers > 0 else None,
            persistent_workers=num_workers > 0, collate_fn=_collate, drop_last=True, generator=generator,
        )  # fmt: skip

    def __iter__(self):
        count = 0
        while True:
            for batch in self.torch_loader:
                if self.num_batches is not None and count >= self.num_batches:
                    return
                count += 1
                yield _tree_map(torch.as_tensor, batch) if self.framework == "pytorch" else batch


class FakeDataLoaderImpl:
    def __init__(self, data_config, data_loader):
        self._data_config, self._data_loader = data_config, data_loader

    def data_config(self):
        return self._data_config

    def __iter__(self):
        for batch in self._data_loader:
            yield FakeObservation.from_dict(batch), batch["actions"]


@dataclasses.dataclass
class FakeObservation:
    images: dict
    image_masks: dict
    state: object

    @classmethod
    def from_dict(cls, data):  # like openpi's: reads only the observation keys, ignores the rest
        return cls(images=data["image"], image_masks=data["image_mask"], state=data["state"])


@dataclasses.dataclass
class FakeDataConfig:
    repo_id: str = "user/fake_robot"
    rlds_data_dir: str | None = None


@dataclasses.dataclass
class FakeDataFactory:
    rlds_data_dir: str | None = None

    def create(self, assets_dirs, model_config):
        return FakeDataConfig(rlds_data_dir=self.rlds_data_dir)


def make_config(batch_size: int = 8, rlds_data_dir=None):
    return types.SimpleNamespace(
        data=FakeDataFactory(rlds_data_dir),
        assets_dirs=Path("assets"),
        model=types.SimpleNamespace(action_horizon=4),
        batch_size=batch_size,
        num_workers=0,
        seed=3,
    )


@pytest.fixture
def fake_openpi(monkeypatch):
    """Inject fake openpi modules (a dataset of N frames) into sys.modules."""
    data_loader = types.ModuleType("openpi.training.data_loader")
    data_loader.create_torch_dataset = lambda data_config, action_horizon, model_config: FakeLeRobotDataset(
        N, action_horizon
    )
    data_loader.transform_dataset = lambda ds, data_config, *, skip_norm_stats=False: FakeTransformedDataset(
        ds, [repack]
    )
    data_loader.TorchDataLoader = FakeTorchDataLoader
    data_loader.DataLoaderImpl = FakeDataLoaderImpl
    model = types.ModuleType("openpi.models.model")
    model.Observation = FakeObservation
    packages = {name: types.ModuleType(name) for name in ("openpi", "openpi.training", "openpi.models")}
    packages["openpi"].training = packages["openpi.training"]
    packages["openpi"].models = packages["openpi.models"]
    packages["openpi.training"].data_loader, packages["openpi.models"].model = data_loader, model
    modules = {**packages, "openpi.training.data_loader": data_loader, "openpi.models.model": model}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    FakeTorchDataLoader.created = []
    return data_loader


def passes(sampler, dataset_len: int, batch_size: int, num_passes: int) -> list[list[int]]:
    """Drive `sampler` the way openpi's TorchDataLoader does: one DataLoader, re-iterated forever."""
    loader = FakeTorchDataLoader(
        FakeTransformedDataset(FakeLeRobotDataset(dataset_len, 2), [repack]), batch_size, sampler=sampler
    )
    per_pass = len(sampler) // batch_size
    stream = [int(s) for b in itertools.islice(loader, per_pass * num_passes) for s in b["state"][:, 0]]
    return [stream[i * per_pass * batch_size : (i + 1) * per_pass * batch_size] for i in range(num_passes)]


# -- imports ----------------------------------------------------------------------------------------


def test_import_needs_neither_openpi_nor_jax():
    code = (
        "import sys; sys.modules['jax'] = None; sys.modules['openpi'] = None\n"
        "import integrations.openpi as m\n"
        "assert m.weighted_sampler([1.0, 0.5], 2).num_frames == 2\n"
        "try:\n    m.weighted_loss_jax([1.0], [1.0])\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "pip install jax" in out.stdout


def test_missing_openpi_names_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openpi", None)
    with pytest.raises(ImportError, match=r"not on PyPI.*GIT_LFS_SKIP_SMUDGE=1 uv sync.*pip install -e"):
        rabc_openpi.create_weighted_data_loader(make_config(), W)
    with pytest.raises(ImportError, match="GIT_LFS_SKIP_SMUDGE=1 uv sync"):
        next(iter(rabc_openpi.WeightedDataLoader(None, [{"rabc_weight": 1.0}])))


def test_missing_jax_names_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    monkeypatch.setitem(sys.modules, "jax.numpy", None)
    with pytest.raises(ImportError, match="pip install jax"):
        rabc_openpi.weighted_loss_jax(np.ones(2), np.ones(2))


# -- sampler in openpi's loop -----------------------------------------------------------------------


def test_each_pass_of_openpi_loop_is_a_new_epoch_and_deterministic():
    sampler = rabc_openpi.weighted_sampler(W, N, seed=5)
    assert sampler.auto_epoch and len(sampler) == N
    first = passes(sampler, N, batch_size=8, num_passes=4)
    assert len({tuple(p) for p in first}) == 4  # openpi never calls set_epoch; every pass is still new
    assert all(W[p].min() > 0 for p in first)  # zero-weight frames are never loaded
    for pos, epoch in zip(first, range(4), strict=True):  # pass e is epoch e of the sampler
        reference = RABCWeightedSampler(W, seed=5)
        reference.set_epoch(epoch)
        assert pos == list(reference)[: len(pos)]
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # noqa: NPY002 (global RNGs play no part)
    assert passes(rabc_openpi.weighted_sampler(W, N, seed=5), N, 8, 4) == first
    assert passes(rabc_openpi.weighted_sampler(W, N, seed=6), N, 8, 4) != first


def test_sampler_and_weighted_dataset_under_persistent_spawn_workers():
    """openpi's workers are spawned and persistent: the dataset is pickled, the sampler stays here."""
    sampler = rabc_openpi.weighted_sampler(W, N, seed=2)
    dataset = rabc_openpi.WeightedDataset(FakeTransformedDataset(FakeLeRobotDataset(N, 2), [repack]), W)
    loader = FakeTorchDataLoader(dataset, 10, sampler=sampler, num_workers=1)
    batches = [list(itertools.islice(loader.torch_loader, 6)) for _ in "ab"]  # two passes, one loader
    got = [[int(s) for b in one_pass for s in b["state"][:, 0]] for one_pass in batches]
    assert got == passes(rabc_openpi.weighted_sampler(W, N, seed=2), N, 10, 2)
    weights = np.concatenate([b["rabc_weight"] for one_pass in batches for b in one_pass])
    np.testing.assert_array_equal(weights, W[got[0] + got[1]])


@pytest.mark.parametrize("replacement", [True, False])
def test_ddp_ranks_get_disjoint_shards_of_one_global_stream(replacement):
    world, batch = 3, 4
    ranks = [
        rabc_openpi.weighted_sampler(W, N, seed=1, replacement=replacement, num_replicas=world, rank=r)
        for r in range(world)
    ]
    per_rank = len(ranks[0])
    assert all(len(s) == per_rank for s in ranks)
    shards = [passes(s, N, batch, num_passes=2) for s in ranks]  # rank -> pass -> positions
    if replacement:
        assert per_rank == N // world  # drop_last, like openpi's DistributedSampler(drop_last=True)
        unsharded = rabc_openpi.weighted_sampler(W, N, seed=1, num_samples=per_rank * world)
        whole = passes(unsharded, N, per_rank, 2)
        for p in range(2):  # rank r's slice [r L, (r + 1) L) of one global stream; r's loader drops its tail
            assert [x for r in range(world) for x in shards[r][p]] == [
                x for r in range(world) for x in whole[p][r * per_rank : r * per_rank + len(shards[r][p])]
            ]
    else:  # no duplicates: each frame at most once over all ranks
        for p in range(2):
            union = [x for r in range(world) for x in shards[r][p]]
            assert len(union) == len(set(union)) and W[union].min() > 0
        assert shards[0][0] != shards[0][1]


def test_sampler_weights_must_align_with_the_dataset():
    with pytest.raises(ValueError, match=r"shape \(59,\) do not match the openpi dataset of 60 samples"):
        rabc_openpi.weighted_sampler(W[:-1], N)


# -- WeightedDataset --------------------------------------------------------------------------------


def test_weighted_dataset_takes_rabc_weights_and_files(tmp_path):
    table = progress_table([np.linspace(0, 1, 30), np.linspace(0, 1, 30) ** 2])
    weights = RABCWeights.from_progress(table, chunk_size=4)
    path = weights.save(tmp_path / "w.parquet")
    ds = FakeTransformedDataset(FakeLeRobotDataset(60, 2), [repack])
    for source in (weights, path, str(path), torch.from_numpy(weights.weights)):
        np.testing.assert_array_equal(rabc_openpi.WeightedDataset(ds, source).weights, weights.weights)


def test_weighted_dataset_alignment_errors():
    ds = FakeTransformedDataset(FakeLeRobotDataset(50, 2), [repack])
    weights = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 60)]), chunk_size=4)
    with pytest.raises(ValueError, match=r"cover 60 frames but the openpi dataset has 50 samples.*`rabc"):
        rabc_openpi.WeightedDataset(ds, weights)
    shifted = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 50)], start_index=7), chunk_size=4)
    with pytest.raises(ValueError, match=r"indices 7\.\.56, but the openpi dataset's positions are 0\.\.49"):
        rabc_openpi.WeightedDataset(ds, shifted)
    with pytest.raises(ValueError, match=r"shape \(5, 10\)"):
        rabc_openpi.WeightedDataset(ds, np.ones((5, 10)))


@pytest.mark.parametrize("bad", [-0.5, np.nan, np.inf])
def test_weighted_dataset_rejects_bad_weights(bad):
    w = W.copy()
    w[7] = bad
    with pytest.raises(ValueError, match=r"negative or not finite.*at positions \[7\]"):
        rabc_openpi.WeightedDataset(FakeLeRobotDataset(N, 2), w)


def test_weighted_dataset_key_collision_and_non_dict_samples():
    ds = FakeTransformedDataset(FakeLeRobotDataset(N, 2), [repack])
    with pytest.raises(KeyError, match="already have a key 'state'"):
        rabc_openpi.WeightedDataset(ds, W, key="state")[0]
    with pytest.raises(TypeError, match="needs dict samples"):
        rabc_openpi.WeightedDataset(list(range(N)), W)[0]


def test_weighted_data_loader_without_the_key_says_how_to_fix(fake_openpi):
    with pytest.raises(KeyError, match=r"no key 'rabc_weight'.*WeightedDataset\(transformed_dataset"):
        next(iter(rabc_openpi.WeightedDataLoader(None, [{"state": 1}])))


# -- create_weighted_data_loader (fake openpi) -------------------------------------------------------


def test_factory_errors(fake_openpi):
    with pytest.raises(NotImplementedError, match=r"RLDS.*take no sampler.*weighted_loss_jax"):
        rabc_openpi.create_weighted_data_loader(make_config(rlds_data_dir="/data/droid"), W)
    with pytest.raises(ValueError, match="shuffle=False cannot be honoured"):
        rabc_openpi.create_weighted_data_loader(make_config(), W, framework="pytorch", shuffle=False)
    with pytest.raises(ValueError, match="weighting should be one of"):
        rabc_openpi.create_weighted_data_loader(make_config(), W, weighting="both")
    with pytest.raises(ValueError, match=r"\{'seed': 1, 'replacement': False\} configure the weighted"):
        rabc_openpi.create_weighted_data_loader(make_config(), W, weighting="loss", seed=1, replacement=False)
    with pytest.raises(ValueError, match="only weighting='loss' adds"):
        rabc_openpi.create_weighted_data_loader(make_config(), W, key="w")
    with pytest.raises(ValueError, match="framework should be"):
        rabc_openpi.create_weighted_data_loader(make_config(), W, framework="tf")


# -- losses --------------------------------------------------------------------------------------------

SHAPES = [(1,), (7,), (32,), (1000,), (4, 50), (33, 10), (256, 50), (3, 4, 5), (64, 50, 32), (17, 1)]


def _hand_weighted_mean(losses: np.ndarray, w: np.ndarray) -> float:
    per_sample = losses.reshape(len(losses), -1).astype(np.float64).mean(axis=1)
    return float((w * per_sample).sum() / w.sum())


@pytest.mark.parametrize("shape", SHAPES)
def test_jax_uniform_weights_give_jnp_mean_exactly(shape):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(len(shape) * 1000 + shape[0])
    loss_fn, mean_fn = jax.jit(rabc_openpi.weighted_loss_jax), jax.jit(jnp.mean)
    for dtype in (jnp.float32, jnp.bfloat16):
        for _ in range(2):
            x = jnp.asarray(rng.standard_normal(shape) ** 2 * 10 ** rng.uniform(-3, 3), dtype)
            expected = jnp.mean(x)
            for w in (jnp.ones(shape[0]), jnp.full(shape[0], 0.5), np.ones(shape[0], np.float32)):
                for got in (rabc_openpi.weighted_loss_jax(x, w), loss_fn(x, w)):
                    assert got.dtype == expected.dtype and got == expected and got == mean_fn(x)
    x = jnp.asarray(rng.standard_normal(shape) ** 2, jnp.float32)
    value_grad = jax.jit(jax.value_and_grad(rabc_openpi.weighted_loss_jax))(x, jnp.ones(shape[0]))
    value_grad_mean = jax.jit(jax.value_and_grad(jnp.mean))(x)
    assert value_grad[0] == value_grad_mean[0] and bool(jnp.all(value_grad[1] == value_grad_mean[1]))


@pytest.mark.parametrize("shape", [(6,), (6, 50), (6, 10, 32)])
def test_jax_weighted_value_and_gradients(shape):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(0)
    losses = rng.random(shape).astype(np.float32)
    w = np.array([1.0, 0.0, 0.5, 1.0, 0.25, 0.0], np.float32)
    got = jax.jit(rabc_openpi.weighted_loss_jax)(jnp.asarray(losses), jnp.asarray(w))
    np.testing.assert_allclose(float(got), _hand_weighted_mean(losses, w), rtol=1e-6)
    grad_fn = jax.grad(rabc_openpi.weighted_loss_jax, argnums=(0, 1))
    grad_l, grad_w = grad_fn(jnp.asarray(losses), jnp.asarray(w))
    n_inner = int(np.prod(shape[1:]))
    expected_grad_l = np.broadcast_to((w / w.sum() / n_inner).reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    np.testing.assert_allclose(np.asarray(grad_l), expected_grad_l, rtol=1e-5)
    per_sample = losses.reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(np.asarray(grad_w), (per_sample - float(got)) / w.sum(), rtol=1e-4, atol=1e-7)
    zero = jax.value_and_grad(rabc_openpi.weighted_loss_jax)(jnp.asarray(losses), jnp.zeros(6))
    assert float(zero[0]) == 0.0 and not np.asarray(zero[1]).any()  # an all-zero batch: no update


def test_jax_errors():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    with pytest.raises(ValueError, match="scalar.*not its jnp.mean"):
        rabc_openpi.weighted_loss_jax(jnp.float32(1.0), jnp.ones(1))
    with pytest.raises(ValueError, match=r"shape \(4,\), one per sample of chunked_loss \(4, 50\).*\(4, 1\)"):
        jax.jit(rabc_openpi.weighted_loss_jax)(jnp.ones((4, 50)), jnp.ones((4, 1)))  # at trace time
    with pytest.raises(TypeError, match="floating point"):
        rabc_openpi.weighted_loss_jax(jnp.ones(4, jnp.int32), jnp.ones(4))
    for bad in (-1.0, 1.5, np.nan):
        with pytest.raises(ValueError, match=r"finite and in \[0, 1\].*positions \[2\]"):
            rabc_openpi.weighted_loss_jax(jnp.ones((4, 5)), jnp.array([1.0, 1.0, bad, 1.0]))
    # under jit the values are tracers and cannot be checked (the loader validates the weight table)
    assert np.isfinite(float(jax.jit(rabc_openpi.weighted_loss_jax)(jnp.ones(4), jnp.array([1.0, 2, -1, 1]))))


@pytest.mark.parametrize("shape", [(1, 1, 1), (8, 50, 32), (7, 10, 14), (32, 4, 6), (5,), (5, 3)])
def test_torch_uniform_weights_give_losses_mean_exactly(shape):
    gen = torch.Generator().manual_seed(shape[0])
    losses = torch.rand(shape, generator=gen) * 10
    for weights in (torch.ones(shape[0]), np.ones(shape[0], np.float32), torch.full((shape[0],), 0.5)):
        assert torch.equal(rabc_openpi.weighted_loss_torch(losses, weights), losses.mean())


def test_torch_weighted_value_and_gradcheck():
    losses = torch.rand(6, 10, 14, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.25, 0.0], dtype=torch.float64)
    got = rabc_openpi.weighted_loss_torch(losses, w)
    expected = _hand_weighted_mean(losses.detach().numpy(), w.numpy())
    assert got.item() == pytest.approx(expected, rel=1e-12)
    w = (0.8 * w + 0.1).requires_grad_()  # gradcheck perturbs the weights by 1e-6: keep them inside (0, 1)
    assert torch.autograd.gradcheck(rabc_openpi.weighted_loss_torch, (losses, w))


def test_torch_errors():
    with pytest.raises(ValueError, match='scalar.*reduction="none"'):
        rabc_openpi.weighted_loss_torch(torch.ones(4, 5).mean(), torch.ones(4))
    with pytest.raises(ValueError, match="shape"):
        rabc_openpi.weighted_loss_torch(torch.ones(4, 5, 2), torch.ones(3))
    for bad in (-1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"finite and in \[0, 1\]"):
            rabc_openpi.weighted_loss_torch(torch.ones(4, 5, 2), torch.tensor([1.0, bad, 1.0, 1.0]))
