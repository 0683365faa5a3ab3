"""RA-BC for openpi's JAX (`scripts/train.py`) and PyTorch (`scripts/train_pytorch.py`) trainers.

    from integrations import openpi as rabc_openpi
    # weighted sampling: only the data-loader line of the script changes
    loader = rabc_openpi.create_weighted_data_loader(config, "rabc_weights.parquet", sharding=data_sharding)
    # or loss weighting: the loader yields (observation, actions, weights) ...
    loader = rabc_openpi.create_weighted_data_loader(config, w, weighting="loss", sharding=data_sharding)
    loss = rabc_openpi.weighted_loss_jax(chunked_loss, weights)  # ... in place of jnp.mean(chunked_loss)

Both openpi trainers read LeRobot datasets through `TorchDataLoader`, whose dataset position i is frame i
of the whole dataset, so the weights are one per frame in dataset order. openpi and jax are imported
only when needed; docs/openpi.md has the exact script changes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rabc.loss import rabc_weighted_loss
from rabc.sampler import RABCWeightedSampler
from rabc.weights import RABCWeights

__all__ = [
    "WeightedDataLoader",
    "WeightedDataset",
    "create_weighted_data_loader",
    "weighted_loss_jax",
    "weighted_loss_torch",
    "weighted_sampler",
]

WEIGHT_KEY = "rabc_weight"
_WEIGHTINGS = ("sampler", "loss")


def _import_openpi():
    try:
        import openpi.models.model as model
        import openpi.training.data_loader as data_loader
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] != "openpi":
            raise  # openpi is installed but one of its own dependencies is not
        raise ImportError(
            "integrations.openpi needs openpi, which is not on PyPI: clone "
            "https://github.com/Physical-Intelligence/openpi and run `GIT_LFS_SKIP_SMUDGE=1 uv sync` there, "
            "or `pip install -e <openpi checkout>` into this environment."
        ) from e
    return data_loader, model


def _import_jax():
    try:
        import jax
        import jax.numpy as jnp
    except ModuleNotFoundError as e:
        raise ImportError(
            "weighted_loss_jax and openpi's JAX data path need jax: `pip install jax` (CPU) or "
            '`pip install "jax[cuda12]"` (NVIDIA GPUs).'
        ) from e
    return jax, jnp


def _aligned_weights(weights: Any, num_samples: int) -> np.ndarray:
    """float32 (N,) weights of dataset positions 0..N-1, from RABCWeights, a weights file or a 1-D array."""
    if isinstance(weights, str | os.PathLike):
        weights = RABCWeights.load(weights)
    fix = (
        "openpi's TransformedDataset[i] is frame i of the whole LeRobot dataset, so the weights need one "
        "entry per frame in index order: compute progress for every episode of this dataset, then "
        "`rabc weights sarm_progress.parquet --chunk-size <model action_horizon> -o rabc_weights.parquet`"
    )
    if hasattr(weights, "weights") and hasattr(weights, "index"):  # RABCWeights
        index = np.asarray(weights.index)
        if len(index) != num_samples:
            raise ValueError(
                f"the RA-BC weights cover {len(index)} frames but the openpi dataset has {num_samples} "
                f"samples; {fix}"
            )
        if num_samples and (index[0] != 0 or index[-1] != num_samples - 1):
            raise ValueError(
                f"the RA-BC weights cover frame indices {index[0]}..{index[-1]}, but the openpi dataset's "
                f"positions are 0..{num_samples - 1}; {fix}"
            )
        w = np.asarray(weights.weights, dtype=np.float32)
    else:
        if isinstance(weights, torch.Tensor):
            weights = weights.detach().cpu().float().numpy()
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim != 1 or w.shape[0] != num_samples:
            raise ValueError(
                f"weights of shape {w.shape} do not match the openpi dataset of {num_samples} samples "
                f"(expected ({num_samples},)); {fix}"
            )
    bad = np.flatnonzero(~((w >= 0) & (w <= 1)))
    if bad.size:
        raise ValueError(
            f"{bad.size} weight(s) are negative or not finite, e.g. {w[bad[:5]].tolist()} at positions "
            f"{bad[:5].tolist()}; RA-BC weights lie in [0, 1] (rebuild them with `rabc weights`)"
        )
    return w


def weighted_sampler(
    weights: Any,
    dataset: Any,
    *,
    seed: int = 0,
    replacement: bool = True,
    num_samples: int | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> RABCWeightedSampler:
    """The sampler for openpi's `TorchDataLoader(sampler=...)`: positions of `dataset` drawn by weight.

    `auto_epoch=True` because openpi's `TorchDataLoader.__iter__` re-iterates its torch `DataLoader`
    forever and nobody calls `set_epoch`: each pass is the next epoch, with a new order. Under PyTorch
    DDP pass `num_replicas=world_size, rank=rank` (as openpi's `DistributedSampler`, with
    `drop_last=True`): each rank yields its disjoint slice of one global stream. JAX training is
    single-process, so leave them None. `dataset` is the transformed dataset or its length.
    """
    num_frames = int(dataset) if isinstance(dataset, int | np.integer) else len(dataset)
    return RABCWeightedSampler(
        _aligned_weights(weights, num_frames),
        num_samples=num_samples,
        replacement=replacement,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
        drop_last=True,
        auto_epoch=True,
    )


class WeightedDataset(Dataset):
    """Adds each sample's RA-BC weight under `key` to the dicts of an (already transformed) dataset.

    Wrap openpi's `TransformedDataset` (the output of `transform_dataset`), not the LeRobot dataset:
    `RepackTransform` rebuilds each dict from a fixed structure and would drop the key. The weight is a
    numpy float32 scalar, so openpi's collate makes it a float32 `[B]` leaf of the batch.
    """

    def __init__(self, dataset: Any, weights: Any, key: str = WEIGHT_KEY) -> None:
        self.dataset, self.key = dataset, key
        self.weights = _aligned_weights(weights, len(dataset))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item = self.dataset[index]
        if not isinstance(item, Mapping):
            raise TypeError(f"WeightedDataset needs dict samples, but the dataset gave {type(item).__name__}")
        if self.key in item:
            raise KeyError(f"samples already have a key {self.key!r}; pass another key= to WeightedDataset")
        return {**item, self.key: self.weights[index]}


class WeightedDataLoader:
    """openpi's `DataLoaderImpl` that yields `(observation, actions, weights)` instead of a pair.

    `data_loader` is an openpi `TorchDataLoader` over a `WeightedDataset` (anything yielding batch
    dicts with `key`). `weights` is a float32 `[B]` leaf placed like the rest of the batch: a jax array
    with the batch's sharding (JAX) or a CPU tensor (PyTorch). `data_config()` serves openpi's checkpoints.
    """

    def __init__(self, data_config: Any, data_loader: Any, key: str = WEIGHT_KEY) -> None:
        self._data_config, self._data_loader, self.key = data_config, data_loader, key

    def data_config(self) -> Any:
        return self._data_config

    def __iter__(self):
        _, model = _import_openpi()
        for batch in self._data_loader:
            if self.key not in batch:
                raise KeyError(
                    f"batch has no key {self.key!r} (keys: {sorted(batch)}); build the loader's dataset as "
                    f"WeightedDataset(transformed_dataset, weights, key={self.key!r})"
                )
            weights = batch.pop(self.key)
            yield model.Observation.from_dict(batch), batch["actions"], weights


def create_weighted_data_loader(
    config: Any,
    weights: Any,
    *,
    weighting: str = "sampler",
    sharding: Any = None,
    shuffle: bool = True,
    num_batches: int | None = None,
    skip_norm_stats: bool = False,
    framework: str = "jax",
    seed: int | None = None,
    replacement: bool = True,
    num_samples: int | None = None,
    key: str = WEIGHT_KEY,
):
    """Drop-in for `openpi.training.data_loader.create_data_loader` (LeRobot datasets) with RA-BC weights.

    The dataset is built by openpi's own `create_torch_dataset` and `transform_dataset`, and batched by
    its `TorchDataLoader` with openpi's local batch size (`batch_size // world_size` under PyTorch DDP).

    Args:
        config: openpi `TrainConfig`.
        weights: `RABCWeights`, a weights file written by `rabc weights`, or a 1-D array with one weight
            per dataset position (= global frame index).
        weighting: `"sampler"` draws frames with probability proportional to their weight (zero-weight
            frames are never loaded) and yields `(observation, actions)` like openpi, so the training
            script is unchanged. `"loss"` keeps openpi's uniform shuffling and yields
            `(observation, actions, weights)` for `weighted_loss_jax` / `weighted_loss_torch`.
        seed: sampler seed (default `config.seed`; the same on every rank). `replacement` and
            `num_samples` (draws per epoch over all ranks, default N) go to `RABCWeightedSampler`;
            all three are refused with `weighting="loss"`.
        sharding, shuffle, num_batches, skip_norm_stats, framework: as in openpi's `create_data_loader`;
            weighted sampling is random, so `shuffle=False` is refused with `weighting="sampler"`.
        key: batch key of the weight in `"loss"` mode.
    """
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting should be one of {list(_WEIGHTINGS)}, but got weighting={weighting!r}")
    if framework not in ("jax", "pytorch"):
        raise ValueError(f"framework should be 'jax' or 'pytorch', but got framework={framework!r}")
    args = {"seed": (seed, None), "replacement": (replacement, True), "num_samples": (num_samples, None)}
    given = {name: value for name, (value, default) in args.items() if value != default}
    if weighting == "loss" and given:
        raise ValueError(
            f"{given} configure the weighted sampler, but weighting='loss' keeps openpi's own shuffling; "
            "drop them or use weighting='sampler'"
        )
    if weighting == "sampler" and key != WEIGHT_KEY:
        raise ValueError(f"key={key!r} names the batch key of the weight, which only weighting='loss' adds")
    if weighting == "sampler" and not shuffle:
        raise ValueError(
            'shuffle=False cannot be honoured with weighting="sampler": weighted sampling is random. For an '
            "ordered pass use openpi's own create_data_loader; for ordered batches with weights use "
            'weighting="loss"'
        )
    data_loader, _ = _import_openpi()
    data_config = config.data.create(config.assets_dirs, config.model)
    if data_config.rlds_data_dir is not None:
        raise NotImplementedError(
            f"RLDS datasets (rlds_data_dir={data_config.rlds_data_dir!r}, e.g. DROID) are streamed by "
            "tf.data and take no sampler: use loss weighting there, with each sample's weight added to the "
            "RLDS pipeline yourself and weighted_loss_jax (this loader covers LeRobot datasets only)"
        )
    dataset = data_loader.create_torch_dataset(data_config, config.model.action_horizon, config.model)
    dataset = data_loader.transform_dataset(dataset, data_config, skip_norm_stats=skip_norm_stats)

    num_replicas = rank = None  # openpi shards by rank only under PyTorch DDP; JAX is single-process
    if framework == "pytorch":
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            num_replicas, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        local_batch_size = config.batch_size // (num_replicas or 1)
    else:
        jax, _ = _import_jax()
        local_batch_size = config.batch_size // jax.process_count()

    if weighting == "sampler":
        seed = config.seed if seed is None else seed
        draws = {"replacement": replacement, "num_samples": num_samples, "num_replicas": num_replicas}
        sampler = weighted_sampler(weights, dataset, seed=seed, rank=rank, **draws)
        if len(sampler) < local_batch_size:  # else every pass is empty and TorchDataLoader spins forever
            raise ValueError(
                f"the weighted sampler yields {len(sampler)} samples per epoch on this rank, fewer than the "
                f"local batch size {local_batch_size}; with replacement=False only about sum(w) / max(w) "
                "frames are kept: use replacement=True or a larger num_samples"
            )
    else:
        dataset = WeightedDataset(dataset, weights, key=key)
        sampler = None  # openpi's choice: shuffle, or its DistributedSampler under DDP
        if num_replicas is not None:
            sampler = torch.utils.data.distributed.DistributedSampler(
                dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, drop_last=True
            )
    loader = data_loader.TorchDataLoader(
        dataset,
        local_batch_size=local_batch_size,
        sharding=None if framework == "pytorch" else sharding,
        shuffle=sampler is None and shuffle,
        sampler=sampler,
        num_batches=num_batches,
        num_workers=config.num_workers,
        seed=config.seed,
        framework=framework,
    )
    if weighting == "loss":
        return WeightedDataLoader(data_config, loader, key=key)
    return data_loader.DataLoaderImpl(data_config, loader)


def weighted_loss_jax(chunked_loss, weights, eps: float = 1e-6):
    r"""RA-BC weighted mean of openpi's JAX per-sample losses, in place of `jnp.mean(chunked_loss)`.

    :math:`L = \sum_i w_i l_i / \max(\sum_i w_i, \varepsilon)` (SARM Eq. 8-9 weights), where
    :math:`l_i` is sample i's mean over its trailing dims: `Pi0.compute_loss` gives `[B, action_horizon]`,
    `Pi0FAST.compute_loss` `[B]`; any `[B, ...]` works. Computed as `jnp.mean(chunked_loss * v)` with
    `v = w * B / max(sum(w), eps)`, so weights that are all 1 (or all one power of two) give exactly
    `jnp.mean(chunked_loss)`, bit for bit, in value and gradient, under `jit` or not. All-zero weights
    give 0 with zero gradient. Jit-able and differentiable (also in `weights`); low-precision losses are
    accumulated in float32 like `jnp.mean`, and the result has the loss's dtype.

    Shapes are checked at trace time. Weight values (negative, NaN) can only be checked outside `jit`,
    where a `ValueError` is raised; under `jit` (openpi's `train_step`) they are not checked here:
    `create_weighted_data_loader` validates the whole weight table when the loader is built.
    """
    jax, jnp = _import_jax()
    shape = jnp.shape(chunked_loss)
    if len(shape) == 0:
        raise ValueError(
            "chunked_loss is a scalar, but RA-BC weighting needs per-sample losses: pass the output of "
            "model.compute_loss ([B, action_horizon] for Pi0, [B] for Pi0FAST), not its jnp.mean"
        )
    if not jnp.issubdtype(jnp.result_type(chunked_loss), jnp.floating):
        raise TypeError(f"chunked_loss must be floating point, got dtype {jnp.result_type(chunked_loss)}")
    if jnp.shape(weights) != shape[:1]:
        raise ValueError(
            f"weights must have shape ({shape[0]},), one per sample of chunked_loss {shape}, but got shape "
            f"{jnp.shape(weights)}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be a positive number, got eps={eps}")
    try:
        w = np.asarray(weights, dtype=np.float64)  # concrete values only: a tracer under jit refuses
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        w = np.zeros(0)
    if (bad := np.flatnonzero(~((w >= 0) & (w <= 1)))).size:
        raise ValueError(
            f"weights must be finite and in [0, 1], got {w[bad[:5]].tolist()} at batch positions "
            f"{bad[:5].tolist()}; RA-BC weights lie in [0, 1] (check the weights file, map NaN to a fallback)"
        )
    return _jax_weighted_mean()(chunked_loss, weights, float(eps))


@functools.cache
def _jax_weighted_mean():
    """The jitted reduction, built on first use (jax is imported lazily); inlined when traced."""
    jax, jnp = _import_jax()

    def weighted_mean(chunked_loss, weights, eps):
        shape, dtype = jnp.shape(chunked_loss), jnp.result_type(chunked_loss)
        w = jnp.asarray(weights).astype(jnp.promote_types(dtype, jnp.float32))  # f32 for bf16, like mean
        w = w * (shape[0] / jnp.maximum(jnp.sum(w), eps))  # exactly 1 when all weights are equal powers of 2
        w = w.reshape(shape[:1] + (1,) * (len(shape) - 1))  # (B, 1, ...) broadcasts over the trailing dims
        return jnp.mean(chunked_loss * w).astype(dtype)

    return jax.jit(weighted_mean, inline=True)


def weighted_loss_torch(losses: torch.Tensor, weights: Any, eps: float = 1e-6) -> torch.Tensor:
    r"""RA-BC weighted mean of `PI0Pytorch`'s `[B, H, action_dim]` losses, in place of `losses.mean()`.

    :math:`\sum_i w_i l_i / \max(\sum_i w_i, \varepsilon)` with :math:`l_i` sample i's mean loss; see
    `rabc.rabc_weighted_loss`, which this calls with `normalize="batch"`. Weights that are all 1 give
    exactly `losses.mean()`. `weights` (the loader's CPU tensor) is moved to the device of `losses`.
    """
    if isinstance(losses, torch.Tensor):
        weights = torch.as_tensor(weights).to(losses.device, non_blocking=True)
    return rabc_weighted_loss(losses, weights, normalize="batch", eps=eps)
