"""Train a SARM on a dataset: annotations + the feature cache -> schemas, targets, windows, `train`.

    cache = FeatureCache("features/")
    spans = {"sparse": read_lerobot_annotations("path/to/dataset", head="sparse")}   # or None: single stage
    result = train_from_cache(cache, "runs/sarm", annotations=spans, config=TrainConfig(steps=5000))

What it decides, so the CLI and a notebook get the same model:
- Stage schemas per head and per task: proportions by Eq. 1 (`schema_from_annotations`) over the
  annotated episodes of each task; a single-task dataset stores its schema under "*". No annotations
  for a head: one stage (linear progress, LeRobot's `single_stage`).
- Targets y = stage + tau per frame (`sarm.labels.targets.label_episodes`, which `sarm eval` uses too);
  an episode without spans for a multi-stage task cannot be labelled and is left out of training
  (counted in the returned report). Spans go to canonical stages
  first (`stage_map`, `stages`: `sarm.labels.canonical`); spans that still go back in their task's stage
  order follow `order` ("error", "monotone", "allow": `StageSchema.targets`); mistake spans and
  outcomes follow `mistakes` and `failures` (`sarm.labels.mistakes`). Spans for episodes not
  in the cache warn (counted); none in the cache, or no span at all, is an error (docs/labels.md).
- Held-out episodes: `split_episodes` over the labelled episodes (`eval_fraction`, `seed`).
- Robot state: mean / std over every cached frame, stored in the model config and applied as
  `(x - mean) / (std + 1e-8)` (LeRobot's MEAN_STD rule) here and by `sarm.inference.progress`.
- Model sizes come from the cache (feature widths, cameras) plus any `model_overrides`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm.features.cache import FeatureCache
from sarm.labels.annotations import read_behavior_annotations, read_lerobot_annotations, read_spans
from sarm.labels.negatives import NEGATIVE_TEXTS
from sarm.labels.schema import Span
from sarm.labels.targets import check_policies, label_episodes
from sarm.model.config import SARMConfig
from sarm.model.network import SARM
from sarm.training.loop import TrainConfig, TrainResult, train
from sarm.training.windows import WindowDataset, split_episodes

__all__ = ["TrainingData", "load_annotations", "prepare_training", "train_from_cache"]

Annotations = Mapping[int, Sequence[Span] | None]


def load_annotations(
    source: str | Path | None, head: str = "sparse", *, num_frames: Mapping[int, int] | None = None
) -> dict[int, list[Span] | None]:
    """Spans per episode index from one source:
    None or "none" -> {} (no annotations: a single stage); a LeRobot dataset root or meta/episodes
    parquet -> its `{head}_subtask_*` columns; a directory or file of BEHAVIOR-1K JSON (`skill_annotation`)
    -> spans keyed by the integer at the end of each file name (`episode_00010010.json` -> 10010);
    any other JSON file -> `{episode: [[name, start, end], ...]}` (`read_spans`). `num_frames`
    ({episode: length}) gives the length of BEHAVIOR files without `meta_data.valid_duration`; without
    it their spans are checked against the cache's lengths by `prepare_training`."""
    if source is None or str(source) == "none":
        return {}
    path = Path(source)
    if (path.is_dir() and (path / "meta").is_dir()) or path.suffix == ".parquet":
        return read_lerobot_annotations(path, head=head)
    if path.is_dir() or (path.suffix == ".json" and '"skill_annotation"' in path.read_text()[:100_000]):
        out = {}
        for stem, episode in read_behavior_annotations(path, num_frames=num_frames).items():
            match = re.search(r"(\d+)$", stem)
            if match is None:
                raise ValueError(
                    f"BEHAVIOR annotation file `{stem}.json` has no episode number at the end of its name; "
                    "name files like episode_00010010.json"
                )
            out[int(match.group(1))] = episode.spans
        return dict(sorted(out.items()))
    if path.suffix == ".json":
        return read_spans(path)
    raise ValueError(
        f"annotations `{source}` is neither 'none', a LeRobot dataset root, a parquet file, a folder of "
        "BEHAVIOR JSON files, nor a spans JSON file"
    )


def _state_stats(cache: FeatureCache) -> tuple[list[float], list[float]]:
    """Mean and population std of the raw state over every cached frame, merging per-episode
    (count, mean, sum of squared deviations) in float64 (Chan et al.), so no E[x^2] - E[x]^2 loss."""
    count, mean, m2 = 0, 0.0, 0.0
    for episode in cache.episodes:
        x = np.asarray(cache.episode_state(int(episode)), dtype=np.float64)
        n, mu = x.shape[0], x.mean(0)
        delta, total = mu - mean, count + n
        mean = mean + delta * (n / total)
        m2 = m2 + ((x - mu) ** 2).sum(0) + delta * delta * (count * n / total)
        count = total
    return np.asarray(mean).tolist(), np.sqrt(m2 / count).tolist()


class _NormalizedState:
    """A lazy (N, S) view of the cached state, normalised with the model config's statistics."""

    def __init__(self, raw, config: SARMConfig):
        self.raw, self.config = raw, config
        self.shape, self.ndim, self.dtype = raw.shape, raw.ndim, np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return self.config.normalize_state(self.raw[rows])


_FROM_CACHE = ("image_dim", "text_dim", "num_cameras", "encoder", "state_mean", "state_std", "schemas")


def _model_config(cache: FeatureCache, schemas, mean, std, overrides) -> SARMConfig:
    """The model's config: sizes and encoder from the cache, schemas and state statistics from the data,
    everything else from `overrides` (fields the cache decides cannot be overridden)."""
    overrides = dict(overrides or {})
    fixed = sorted(set(overrides) & set(_FROM_CACHE))
    if fixed:
        raise ValueError(
            f"model_overrides {fixed} are decided by the feature cache and the annotations; leave them out"
        )
    if not cache.cameras and not mean:
        raise ValueError(
            f"the feature cache `{cache.root}` has no camera and no robot state (state_dim 0): a state-only "
            "SARM needs the state; re-extract features with the dataset's state column (or with cameras)"
        )
    return SARMConfig(
        **{
            "max_state_dim": max(32, len(mean)),
            **overrides,
            "image_dim": cache.image_dim,
            "text_dim": cache.text_dim,
            "num_cameras": len(cache.cameras),
            "encoder": dict(cache.manifest["encoder"]),
            "schemas": {h: s.to_dict() for h, s in schemas.items()},
            "state_mean": mean,
            "state_std": std,
        }
    )


@dataclass
class TrainingData:
    """Everything `train` needs, built from a cache and annotations."""

    config: SARMConfig
    train_set: WindowDataset
    eval_set: WindowDataset | None
    task_features: dict[str, torch.Tensor]
    negative_text_features: torch.Tensor
    report: dict[str, Any]


def prepare_training(
    cache: FeatureCache | str | Path,
    *,
    annotations: Mapping[str, Annotations] | None = None,
    method: str = "paper",
    eval_fraction: float = 0.1,
    seed: int = 0,
    anchor_stride: int = 1,
    model_overrides: Mapping[str, Any] | None = None,
    episodes: Sequence[int] | None = None,
    stage_map: Any = None,
    stages: str = "names",
    order: str = "error",
    mistakes: str = "ignore",
    failures: str = "keep",
    mistake_spans: Mapping[int, Sequence] | None = None,
    outcomes: Mapping[int, Any] | None = None,
) -> TrainingData:
    """Schemas, targets, state statistics and train / eval windows (see the module docstring).

    `annotations` maps head ("sparse", "dense") to {episode_index: spans or None}; heads absent or
    empty get a single stage (the sparse head always exists). `model_overrides` are SARMConfig fields
    (e.g. {"hidden_dim": 256, "window": "centered", "attention": "lerobot"}). `episodes` restricts
    training and evaluation windows to those episode indices (e.g. to hold episodes out of a
    single-stage model, which would otherwise label every cached episode). `stage_map` (a
    `sarm.labels.StageMap`, dict or JSON path) and `stages` ("names" or "ordinal") map every head's spans
    to canonical stages; `order` ("error", "monotone", "allow") is what spans that go back in their
    task's stage order do (docs/labels.md). `mistakes` ("ignore", "hold") and `failures` ("keep",
    "truncate", "exclude") are the label policies of `sarm.labels.mistakes` for `mistake_spans`
    ({episode: [(kind, start, end), ...]}) and `outcomes` ({episode: "success" | "failure" | "partial"
    | bool}); under "exclude" episodes whose outcome is "failure" leave training and evaluation
    (listed in the report's `excluded_failures`)."""
    check_policies(mistakes, failures, mistake_spans, outcomes)
    cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    if not len(cache.episodes):
        raise ValueError(
            f"the feature cache `{cache.root}` has no finished episode; run `sarm features` first"
        )
    tasks = [cache.task(e) for e in cache.episodes.tolist()]
    labels = label_episodes(
        cache.episodes.tolist(),
        cache.episode_lengths.tolist(),
        tasks,
        annotations=annotations,
        method=method,
        where=f"the feature cache `{cache.root}`",
        stage_map=stage_map,
        stages=stages,
        order=order,
        mistakes=mistakes,
        failures=failures,
        mistake_spans=mistake_spans,
        outcomes=outcomes,
    )
    schemas, targets, labelled = labels.schemas, labels.targets, labels.labelled
    heads, backwards, excluded = list(schemas), labels.backwards, labels.excluded
    mean, std = _state_stats(cache)
    config = _model_config(cache, schemas, mean, std, model_overrides)
    if episodes is not None:
        unknown = sorted(set(np.asarray(episodes).tolist()) - set(cache.episodes.tolist()))
        if unknown:
            raise ValueError(f"episodes {unknown[:10]} are not in the feature cache `{cache.root}`")
        labelled &= np.isin(cache.episodes, np.asarray(episodes))
    usable = np.flatnonzero(labelled)
    if usable.size == 0:
        raise ValueError("no cached episode has annotations for every multi-stage task; nothing to train on")
    if usable.size >= 2:
        train_pos, eval_pos = split_episodes(int(usable.size), eval_fraction, seed)
    else:
        train_pos, eval_pos = np.zeros(1, np.int64), np.zeros(0, np.int64)
    state = _NormalizedState(cache.state, config)

    def windows(positions: np.ndarray, stride: int) -> WindowDataset:
        return WindowDataset(
            cache.images,
            episode_lengths=cache.episode_lengths,
            targets=targets,
            tasks=tasks,
            state=state,
            episodes=usable[positions],
            anchor_stride=stride,
            mode=config.window,
            n_obs_steps=config.n_obs_steps,
            frame_gap=config.frame_gap,
            max_rewind_steps=config.max_rewind_steps,
            labels={"order": order, "mistakes": mistakes, "failures": failures},
        )

    task_texts = sorted(set(tasks))
    features = cache.text_features(task_texts)
    return TrainingData(
        config=config,
        train_set=windows(train_pos, anchor_stride),
        eval_set=windows(eval_pos, anchor_stride) if eval_pos.size else None,
        task_features={t: features[i] for i, t in enumerate(task_texts)},
        negative_text_features=cache.text_features(list(NEGATIVE_TEXTS)),
        report={
            "episodes": len(cache.episodes),
            "unlabelled_episodes": cache.episodes[~labelled].tolist(),
            "train_episodes": cache.episodes[usable[train_pos]].tolist(),
            "eval_episodes": cache.episodes[usable[eval_pos]].tolist(),
            "stages": {h: {t: list(schemas[h].schema_for(t).names) for t in task_texts} for h in heads},
            "episodes_going_back": {h: eps for h, eps in backwards.items() if eps},
            "label_policy": {"order": order, "mistakes": mistakes, "failures": failures},
            "mistake_episodes": sorted(set(mistake_spans or {}) & set(cache.episodes.tolist())),
            "excluded_failures": excluded,
        },
    )


def train_from_cache(
    cache: FeatureCache | str | Path,
    out_dir: str | Path,
    *,
    annotations: Mapping[str, Annotations] | None = None,
    config: TrainConfig | None = None,
    method: str = "paper",
    eval_fraction: float = 0.1,
    anchor_stride: int = 1,
    model_overrides: Mapping[str, Any] | None = None,
    episodes: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    extend: bool = False,
    progress: bool = True,
    option_names: Mapping[str, str] | None = None,
    stage_map: Any = None,
    stages: str = "names",
    order: str = "error",
    mistakes: str = "ignore",
    failures: str = "keep",
    mistake_spans: Mapping[int, Sequence] | None = None,
    outcomes: Mapping[int, Any] | None = None,
) -> tuple[SARM, TrainResult, dict[str, Any]]:
    """`prepare_training` then `sarm.training.loop.train`; returns (model, result, report). The model is
    saved under `out_dir/model` (and the best evaluation under `out_dir/best`) by `train`. A rerun into
    an existing run resumes it and must use the run's settings; `extend=True` continues it to a larger
    `config.steps` (see `train`, also for `option_names`). `stage_map`, `stages`, `order`, `mistakes`,
    `failures`, `mistake_spans` and `outcomes`: see `prepare_training`."""
    config = config or TrainConfig()
    data = prepare_training(
        cache,
        annotations=annotations,
        method=method,
        eval_fraction=eval_fraction,
        seed=config.seed,
        anchor_stride=anchor_stride,
        model_overrides=model_overrides,
        episodes=episodes,
        stage_map=stage_map,
        stages=stages,
        order=order,
        mistakes=mistakes,
        failures=failures,
        mistake_spans=mistake_spans,
        outcomes=outcomes,
    )
    with torch.random.fork_rng():  # initial weights from the run's seed, caller's RNG untouched
        torch.manual_seed(config.seed)
        model = SARM(data.config)
    result = train(
        model,
        data.train_set,
        task_features=data.task_features,
        out_dir=out_dir,
        config=config,
        eval_set=data.eval_set,
        negative_text_features=data.negative_text_features,
        negative_texts=list(NEGATIVE_TEXTS),
        device=device,
        resume=resume,
        extend=extend,
        progress=progress,
        option_names=dict(option_names or {}),
    )
    return model, result, data.report
