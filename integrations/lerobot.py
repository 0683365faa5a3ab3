"""RA-BC in LeRobot's trainer: loss weighting through its `SampleWeighter` seam, or a weighted sampler.

Two modes (see docs/integrations.md for which to choose):

* loss: `RABCSampleWeighter` implements LeRobot's `SampleWeighter` (`compute_batch_weights(batch) ->
  (weights, stats)`, `get_stats()`). LeRobot's `update_policy` then computes
  `sum(w_i l_i) / sum(w_i)` from `policy.forward(batch, reduction="none")`, which only some policies
  have (pi0, pi05, smolvla, ...).
* sampler: `RABCEpisodeSampler` replaces `EpisodeAwareSampler` (same arguments, `set_epoch`, state for
  resume) and draws frames with probability proportional to their weight, so every policy trains with
  RA-BC, ACT and Diffusion included, and zero-weight frames cost no compute (it lives in
  `integrations/lerobot_sampler.py`; import it from here).

Online RL (`gym_manipulator`): `SARMRewardStep` / `sarm_reward_processor_step` score each transition's
frame with a streamed SARM and set the reward (`integrations/lerobot_reward.py`, re-exported here).

LeRobot's own `lerobot-train`, unchanged, with either mode (LeRobot >= 0.5, Python >= 3.12):

    python -m integrations.lerobot --rabc.mode=sampler --policy.type=act --dataset.repo_id=... \\
        --sample_weighting.progress_path=sarm_progress.parquet --sample_weighting.kappa=0.01

Weights follow LeRobot's `--sample_weighting.*` options (progress_path, head_mode, kappa, epsilon,
extra_params) with Delta = the policy's `chunk_size`; `--rabc.missing=fallback` gives frames absent from
the progress file `fallback_weight` (counted and logged) instead of an error.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from integrations.lerobot_reward import SARMRewardStep, sarm_reward_processor_step
from integrations.lerobot_sampler import RABCEpisodeSampler
from rabc import RABCWeights

__all__ = [
    "RABCEpisodeSampler",
    "RABCSampleWeighter",
    "SARMRewardStep",
    "main",
    "patch_lerobot_train",
    "per_sample_forward",
    "resolve_progress_path",
    "sarm_reward_processor_step",
]

log = logging.getLogger(__name__)

PROGRESS_FILE = "sarm_progress.parquet"
_INSTALL = (
    "LeRobot is not installed: `pip install 'lerobot>=0.5'` (it needs Python >= 3.12; on Python 3.11 "
    "only lerobot<=0.4.4 installs, whose trainer has no sample-weighting seam)"
)
_MODES = ("loss", "sampler")


def _import_lerobot(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise ImportError(f"{_INSTALL} ({err})") from err


class RABCSampleWeighter:
    """LeRobot's `SampleWeighter` interface backed by vectorised `RABCWeights`.

    `compute_batch_weights(batch)` looks up `batch[index_key]` (global frame indices) and returns the
    raw weights normalised to sum to the batch size (LeRobot's rule) on the index's device (or
    `device`), with the raw-weight statistics LeRobot logs (`mean_weight`, `num_zero_weight`,
    `num_full_weight`) plus `num_missing`, the frames of this batch absent from the progress file.

    Args:
        weights: per-frame weights (`RABCWeights.from_progress(...)` or `RABCWeights.load(...)`).
        missing: "error" raises for a frame absent from the progress file; "fallback" gives it
            `weights.fallback_weight`, counts it (`num_missing` per batch, `num_missing_lookups` in
            `get_stats()`) and warns once.
        index_key: batch key of the global frame index.
        device: where the returned weights live (default: the index's device).
    """

    def __init__(
        self,
        weights: RABCWeights,
        *,
        missing: str = "error",
        index_key: str = "index",
        device: torch.device | str | None = None,
    ) -> None:
        if missing not in ("error", "fallback"):
            raise ValueError(f"missing should be 'error' or 'fallback', but got missing={missing!r}")
        if missing == "fallback" and weights.fallback_weight is None:
            raise ValueError("missing='fallback' needs weights built with a fallback_weight (not None)")
        self.weights, self.missing, self.index_key = weights, missing, index_key
        self.device = None if device is None else torch.device(device)
        self._warned = False

    @classmethod
    def from_progress(cls, progress, chunk_size: int, *, missing: str = "error", device=None, **kwargs):
        """Build from a progress parquet; `kwargs` go to `RABCWeights.from_progress` (kappa, head, ...)."""
        return cls(RABCWeights.from_progress(progress, chunk_size, **kwargs), missing=missing, device=device)

    def compute_batch_weights(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        if self.index_key not in batch:
            raise KeyError(
                f"batch has no {self.index_key!r} key (keys: {sorted(batch)}); RA-BC looks weights up by "
                "global frame index: keep the dataset's `index` column in the batch (LeRobot keeps it "
                "through its processors) or set index_key"
            )
        index = torch.as_tensor(batch[self.index_key]).reshape(-1)
        if self.device is not None:
            index = index.to(self.device)
        weights, stats = self.weights.batch_weights(index, missing=self.missing)
        if stats["num_missing"] and not self._warned:
            self._warned = True
            log.warning(
                "RA-BC: %d frame(s) of this batch are not in the progress file `%s` and get "
                "fallback_weight=%s; the running count is get_stats()['num_missing_lookups']",
                int(stats["num_missing"]),
                self.weights.source,
                self.weights.fallback_weight,
            )
        return weights, stats

    def get_stats(self) -> dict[str, Any]:
        return {**self.weights.get_stats(), "num_missing_lookups": self.weights.num_missing_lookups}


def per_sample_forward(policy) -> None:
    """Give `policy` a `forward(batch, reduction="none")` that loops over the batch, one sample at a time.

    For loss mode with policies that only return a batch-mean loss (ACT, Diffusion): each sample's loss
    is the policy's own loss on a batch of one, so it is exact, but a step costs B forward passes and
    batch-coupled layers (BatchNorm in train mode) see one sample. Prefer the sampler mode for these
    policies; this exists for comparisons. Policies that take `reduction` already are left alone.
    """
    forward = policy.forward
    if "reduction" in inspect.signature(forward).parameters:
        return

    @functools.wraps(forward)
    def looped(batch: dict, reduction: str = "mean", **kwargs):
        if reduction != "none":
            return forward(batch, **kwargs)
        size = len(batch["index"]) if "index" in batch else len(next(iter(batch.values())))
        losses, outputs = [], []
        for i in range(size):
            sample = {k: v[i : i + 1] if _batched(v, size) else v for k, v in batch.items()}
            loss, output = forward(sample, **kwargs)
            losses.append(loss.reshape(()))
            outputs.append(output or {})
        merged = {k: float(np.mean([o[k] for o in outputs])) for k in outputs[0] if _is_number(outputs[0][k])}
        return torch.stack(losses), merged

    policy.forward = looped


def _batched(value, size: int) -> bool:
    return (
        isinstance(value, torch.Tensor | np.ndarray | list | tuple)
        and len(value) == size
        and (not isinstance(value, torch.Tensor | np.ndarray) or value.ndim > 0)
    )


def _is_number(value) -> bool:
    return isinstance(value, int | float) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def resolve_progress_path(progress_path=None, dataset_root=None, dataset_repo_id=None) -> Path:
    """LeRobot's rule: the given path, else `<root>/sarm_progress.parquet`, else the dataset repo's file.

    `hf://datasets/<repo>/<file>` and the repo fallback are downloaded with `hf_hub_download`.
    """
    if progress_path is None:
        if dataset_root is not None:
            progress_path = str(Path(dataset_root) / PROGRESS_FILE)
        elif dataset_repo_id is not None:
            progress_path = f"hf://datasets/{dataset_repo_id}/{PROGRESS_FILE}"
        else:
            raise ValueError(
                "RA-BC needs a progress file: set --sample_weighting.progress_path, or a dataset root or "
                "repo id holding sarm_progress.parquet (write one with `sarm progress`)"
            )
    text = str(progress_path)
    if text.startswith("hf://datasets/"):
        from huggingface_hub import hf_hub_download

        parts = text.removeprefix("hf://datasets/").split("/")
        if len(parts) < 3:
            raise ValueError(f"{text!r} should look like hf://datasets/<owner>/<name>/<file>")
        return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:]), repo_type="dataset"))
    return Path(text)


@contextlib.contextmanager
def patch_lerobot_train(mode: str, *, missing: str = "error", per_sample: str = "native") -> Iterator[None]:
    """Within the block, LeRobot's trainer uses RA-BC weights in `mode` ("loss" or "sampler").

    Patches `lerobot.utils.sample_weighting.make_sample_weighter` (called when the train config has
    `sample_weighting.type="rabc"`) to build our weights, and in sampler mode also
    `lerobot.scripts.lerobot_train.EpisodeAwareSampler`. In loss mode a policy whose `forward` has no
    `reduction` argument is an error, unless `per_sample="loop"` (see `per_sample_forward`).
    Restored on exit.
    """
    if mode not in _MODES:
        raise ValueError(f"mode should be one of {_MODES}, but got mode={mode!r}")
    if per_sample not in ("native", "loop"):
        raise ValueError(f"per_sample should be 'native' or 'loop', but got per_sample={per_sample!r}")
    weighting = _import_lerobot("lerobot.utils.sample_weighting")
    train = _import_lerobot("lerobot.scripts.lerobot_train")
    original_factory, original_sampler = weighting.make_sample_weighter, train.EpisodeAwareSampler
    built: list[RABCWeights] = []

    def make_sample_weighter(config, policy, device, dataset_root=None, dataset_repo_id=None):
        if config is None or config.type != "rabc":
            return original_factory(config, policy, device, dataset_root, dataset_repo_id)
        chunk_size = getattr(policy.config, "chunk_size", None)
        if chunk_size is None:
            raise ValueError(f"RA-BC needs the policy's chunk_size; {type(policy.config).__name__} has none")
        path = resolve_progress_path(config.progress_path, dataset_root, dataset_repo_id)
        weights = RABCWeights.from_progress(
            path, chunk_size, kappa=config.kappa, head=config.head_mode, epsilon=config.epsilon,
            **config.extra_params,
        )  # fmt: skip
        log.info("RA-BC (%s mode): %r", mode, weights)
        built.append(weights)
        if mode == "sampler":
            return None  # the loss stays LeRobot's plain mean: no reduction="none" needed
        if per_sample == "loop":
            per_sample_forward(policy)
        elif "reduction" not in inspect.signature(policy.forward).parameters:
            raise TypeError(
                f"{type(policy).__name__}.forward has no reduction='none', which RA-BC loss mode needs; use "
                "--rabc.mode=sampler (works for every policy), or --rabc.per_sample=loop for exact "
                "per-sample losses at B forward passes per step"
            )
        return RABCSampleWeighter(weights, missing=missing, device=device)

    def episode_sampler(*args, **kwargs):
        if not built:
            raise RuntimeError(
                "RA-BC sampler mode needs the train config's sample_weighting.type='rabc' (pass "
                "--sample_weighting.type=rabc and --sample_weighting.progress_path=...)"
            )
        sampler = RABCEpisodeSampler(built[-1], *args, missing=missing, **kwargs)
        log.info(
            "RA-BC sampler replaces EpisodeAwareSampler: %d eligible frames, %d with weight 0",
            sampler.num_eligible,
            sampler.num_zero_weight,
        )
        return sampler

    weighting.make_sample_weighter = make_sample_weighter
    if mode == "sampler":
        train.EpisodeAwareSampler = episode_sampler
    try:
        yield
    finally:
        weighting.make_sample_weighter, train.EpisodeAwareSampler = original_factory, original_sampler


def main(argv: list[str] | None = None) -> int:
    """`python -m integrations.lerobot --rabc.mode=loss|sampler [--rabc.missing=] [--rabc.per_sample=]
    <lerobot-train args>`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ours = {"mode": "sampler", "missing": "error", "per_sample": "native"}
    rest = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.startswith("--rabc."):
            name = key.removeprefix("--rabc.")
            if name not in ours:
                raise SystemExit(f"unknown option {key}; RA-BC options are {['--rabc.' + k for k in ours]}")
            ours[name] = value
        else:
            rest.append(arg)
    if not any(a.startswith("--sample_weighting.type") for a in rest):
        rest.append("--sample_weighting.type=rabc")
    train = _import_lerobot("lerobot.scripts.lerobot_train")
    with patch_lerobot_train(ours["mode"], missing=ours["missing"], per_sample=ours["per_sample"]):
        sys.argv = [sys.argv[0], *rest]
        train.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
