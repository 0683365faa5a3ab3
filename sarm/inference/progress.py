"""Dataset-wide progress inference: a SARM over every frame of a feature cache -> `sarm_progress.parquet`.

    model = SARM.from_pretrained("my-sarm")              # or SARM.from_lerobot(...)
    compute_progress(model, FeatureCache("features/"), "sarm_progress.parquet", batch_size=256)

For every episode, the frames' windows (`sarm.training.windows.window_frames`, the model's window mode) are
gathered from the cached features in one fancy-indexing call and scored in large batches, all heads;
frame t's progress is read at the slot that shows t (`config.current_slot`). Nothing is decoded or
encoded here: each frame was encoded once by `sarm features`. With `stride=k` only frames 0, k, 2k, ...
and each episode's last frame are scored and the rest are linearly interpolated (LeRobot's `--stride`).

The output follows LeRobot's schema (`index`, `episode_index`, `frame_index` int64; `progress_sparse`,
`progress_dense` float32; metadata `reward_model_path`), sorted by `index`, so LeRobot's
`RABCWeights` and `rabc.RABCWeights.from_progress` both read it. `stage_probs=True` adds
`stage_probs_<head>` list<float32> columns (for `sarm viz`). Episodes the cache does not hold (e.g.
skipped for a missing video) get NaN rows (RA-BC's explicit fallback weight), and are reported.

Resumable and shardable like the cache: each episode's result goes to `<out>.parts/episode_*.npz`
through a temporary file; a rerun skips finished episodes; `shard=(i, n)` scores every n-th episode;
`merge_progress` (run automatically once every part exists) streams the parts into the parquet file
episode by episode, so memory stays flat as the dataset grows, and renames it into place.

`formats` picks the files the merge writes from the same parts: "lerobot" (the file above, the
default) and/or "scores", LeRobot's typed scores file (open PRs #4553-#4555, written by
`rabc.score_files`): per head progress, a validity mask, stage confidence and stage probabilities, with
provenance (`sarm.inference.scores`), by default at `<dataset root>/scores/<score_name>.parquet`.
Parts always hold the stage probabilities, so either file can be merged from any finished run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sarm.features.cache import FeatureCache, parse_shard
from sarm.inference.parts import FORMATS, PARTS_VERSION, check_formats, merge_progress, part_path
from sarm.inference.scores import (
    check_scores_output,
    keep_provenance,
    scores_path,
    scoring_provenance,
    write_json,
)
from sarm.model.network import SARM
from sarm.training.windows import window_frames

__all__ = [
    "FORMATS",
    "ProgressJob",
    "compute_progress",
    "merge_progress",
    "plan_progress",
    "score_episode",
    "scores_path",
]


def score_episode(
    model: SARM,
    images: np.ndarray,
    state: np.ndarray,
    text: torch.Tensor,
    task: str,
    *,
    heads: Sequence[str],
    batch_size: int = 256,
    stride: int = 1,
    soft: bool = False,
    stage_probs: bool = False,
) -> dict[str, np.ndarray]:
    """Progress of every frame of one episode: {"progress_<head>": (T,) float32} (+ "stage_probs_<head>"
    (T, K) float32 when asked). `images` (T, C, E) cached features, `state` (T, S) already normalised,
    `text` (E,) or (1, E) the task's text feature."""
    config = model.config
    length = images.shape[0]
    anchors = np.arange(0, length, stride, dtype=np.int64)
    if anchors[-1] != length - 1:
        anchors = np.append(anchors, length - 1)
    windows = window_frames(
        anchors, 0, length, mode=config.window, n_obs_steps=config.n_obs_steps, frame_gap=config.frame_gap
    )  # (m, n_obs_steps + 1) local frame numbers
    slot = config.current_slot
    text = torch.as_tensor(text, dtype=torch.float32).reshape(1, -1)
    out = {head: [] for head in heads}
    probs = {head: [] for head in heads}
    for lo in range(0, len(anchors), batch_size):
        rows = windows[lo : lo + batch_size]
        video = torch.from_numpy(np.asarray(images[rows], dtype=np.float32))  # (b, t, C, E)
        states = torch.from_numpy(np.asarray(state[rows], dtype=np.float32))  # (b, t, S)
        b = rows.shape[0]
        for head in heads:
            pred = model.predict(
                text.expand(b, -1), video, states, None, head=head, tasks=[task] * b, soft=soft
            )
            out[head].append(pred.progress[:, slot].float().cpu().numpy())
            if stage_probs:
                probs[head].append(pred.stage_probs[:, slot].float().cpu().numpy())
    result = {}
    frames = np.arange(length)
    for head in heads:
        values = np.concatenate(out[head])
        if stride > 1:
            values = np.interp(frames, anchors, values)
        result[f"progress_{head}"] = values.astype(np.float32)
        if stage_probs:
            p = np.concatenate(probs[head])
            if stride > 1:
                p = np.stack([np.interp(frames, anchors, p[:, k]) for k in range(p.shape[1])], axis=1)
            result[f"stage_probs_{head}"] = p.astype(np.float32)
    return result


def _check_encoder(model: SARM, cache: FeatureCache, allow: bool, names: dict[str, str]) -> None:
    """The cache must hold features of the encoder the model was trained on (when the model records it)."""
    trained, holds = model.config.encoder, cache.manifest.get("encoder")
    if trained is None or allow or json.loads(json.dumps(trained)) == holds:
        return
    holds = holds or {}
    if trained.get("spec") != holds.get("spec"):
        what = (
            f"encoder `{trained.get('spec')}`, but the cache `{cache.root}` holds `{holds.get('spec')}` "
            "features"
        )
    else:
        keys = sorted(k for k in set(trained) | set(holds) if trained.get(k) != holds.get(k))
        what = f"encoder `{trained.get('spec')}` with other {keys} than the cache `{cache.root}`"
    raise ValueError(
        f"the model was trained on features of {what}; encode the dataset with the model's encoder "
        f"(`sarm features --encoder {trained.get('spec')}`), or pass {names['allow_other_encoder']} to score "
        "it anyway"
    )


def _check_output(out_path: Path, cache: FeatureCache, model: SARM) -> Path:
    """Before any compute: the output is a file path we can write, and it overwrites no input."""
    if out_path.is_dir():
        raise ValueError(
            f"the output `{out_path}` is a directory; name the progress file to write, e.g. "
            f"`{out_path / 'sarm_progress.parquet'}`"
        )
    target = out_path.resolve()
    inputs = [("the feature cache", cache.root)]
    if model.source and Path(model.source).expanduser().is_dir():
        inputs.append(("the model", Path(model.source).expanduser()))
    for what, root in inputs:
        root = root.resolve()
        if target == root or root in target.parents or target in root.parents:
            raise ValueError(
                f"the output `{out_path}` would overwrite {what} `{root}`; write the progress file elsewhere"
            )
    parts = out_path.with_name(out_path.name + ".parts")
    try:
        parts.mkdir(parents=True, exist_ok=True)
        probe = parts / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"cannot write the output `{out_path}` ({error.strerror or error}: `{error.filename or parts}`); "
            "choose a writable location"
        ) from error
    return parts


def _settings(model: SARM, cache: FeatureCache, heads, stride, soft, stage_probs, source: str) -> dict:
    return {
        "heads": list(heads),
        "stride": stride,
        "soft": soft,
        "stage_probs": stage_probs,
        "reward_model_path": source,
        "model": model.config.to_dict(),
        "cache": {"encoder": cache.manifest["encoder"], "dataset": cache.manifest["dataset"]},
        "episodes": cache.planned.tolist(),
        "parts": PARTS_VERSION,
    }


@dataclass
class ProgressJob:
    """What `plan_progress` checked and decided: the cache, the parts folder, the heads and options of
    `score_episode`, the files the merge writes, and this shard's episodes still to score."""

    cache: FeatureCache
    out_path: Path
    parts: Path
    heads: list[str]
    batch_size: int
    stride: int
    soft: bool
    formats: tuple[str, ...]
    scores: Path | None
    names: dict[str, str]
    todo: list[int]

    def inputs(self, model: SARM, episode: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor, str]:
        """`score_episode`'s inputs for one episode: cached images, normalised state, text feature, task."""
        task = self.cache.task(episode)
        state = model.config.normalize_state(self.cache.episode_state(episode))
        return self.cache.episode_images(episode), state, self.cache.text_features([task]), task

    @property
    def options(self) -> dict:
        """`score_episode`'s keyword arguments for this run (also sent to the Ray engine's scorers)."""
        return {
            "heads": self.heads,
            "batch_size": self.batch_size,
            "stride": self.stride,
            "soft": self.soft,
            "stage_probs": True,  # parts always hold them: either file can be merged from any run
        }

    def score(self, model: SARM, episode: int) -> dict[str, np.ndarray]:
        return score_episode(model, *self.inputs(model, episode), **self.options)

    def write_part(self, episode: int, result: dict[str, np.ndarray]) -> None:
        """One episode's result, atomically: a rerun skips it."""
        tmp = self.parts / f".episode_{episode:06d}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **result)
        os.replace(tmp, part_path(self.parts, episode))

    def merge_if_done(self) -> Path | None:
        if all(part_path(self.parts, int(e)).is_file() for e in self.cache.episodes):
            return merge_progress(
                self.cache,
                self.out_path,
                formats=self.formats,
                scores_out=self.scores,
                option_names=self.names,
            )
        return None


def plan_progress(
    model: SARM,
    cache: FeatureCache | str | Path,
    out_path: str | Path,
    *,
    heads: Sequence[str] | None = None,
    batch_size: int = 256,
    stride: int = 1,
    soft: bool = False,
    stage_probs: bool = False,
    shard: str | Sequence[int] | None = (0, 1),
    reward_model_path: str | None = None,
    allow_other_encoder: bool = False,
    option_names: dict[str, str] | None = None,
    formats: Sequence[str] | str = ("lerobot",),
    scores_out: str | Path | None = None,
    score_name: str = "sarm",
) -> ProgressJob:
    """Check everything before any compute and record the run's settings and provenance in the parts
    folder; list this shard's episodes without a part. Arguments as in `compute_progress`."""
    cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    heads = list(model.config.heads if heads is None else heads)
    for head in heads:
        model.config.check_head(head)
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride should be a positive integer value, but got stride={stride}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
    cfg = model.config
    if (cache.image_dim, cache.text_dim, len(cache.cameras)) != (
        cfg.image_dim,
        cfg.text_dim,
        cfg.num_cameras,
    ):
        raise ValueError(
            f"the cache holds {len(cache.cameras)} camera(s) of {cache.image_dim}-d image and "
            f"{cache.text_dim}-d text features, but the model expects {cfg.num_cameras} camera(s), "
            f"image_dim={cfg.image_dim}, text_dim={cfg.text_dim}; encode the dataset with the model's "
            "encoder and cameras"
        )
    if not cfg.num_cameras and cache.manifest.get("state_dim", 1) == 0:
        raise ValueError(
            f"this model is state-only (num_cameras=0) but the cache `{cache.root}` holds no robot state; "
            "use a cache extracted with the dataset's state column"
        )
    names = {
        "allow_other_encoder": "allow_other_encoder=True",
        "scores_out": "scores_out",
        **(option_names or {}),
    }
    _check_encoder(model, cache, allow_other_encoder, names)
    formats = check_formats(formats)
    rank, world = parse_shard(shard)
    out_path = Path(out_path)
    scores = scores_path(cache, scores_out, score_name) if "scores" in formats else None
    if scores is not None:
        check_scores_output(scores, out_path, cache, names["scores_out"])
    parts = _check_output(out_path, cache, model)
    if reward_model_path is None:
        reward_model_path = model.source or ""
    settings = _settings(model, cache, heads, stride, soft, stage_probs, reward_model_path)
    marker = parts / "settings.json"
    if marker.is_file():
        if json.loads(marker.read_text()) != settings:
            raise ValueError(
                f"`{parts}` holds parts computed with other settings (model, heads, stride, cache); "
                "delete it or write to another output path"
            )
    else:
        write_json(marker, settings)
    keep_provenance(
        parts,
        scoring_provenance(
            model, cache, reward_model_path=reward_model_path, heads=heads, stride=stride, soft=soft
        ),
    )

    todo = [int(e) for e in cache.episodes[rank::world] if not part_path(parts, int(e)).is_file()]
    return ProgressJob(cache, out_path, parts, heads, batch_size, stride, soft, formats, scores, names, todo)


@torch.no_grad()
def compute_progress(
    model: SARM,
    cache: FeatureCache | str | Path,
    out_path: str | Path,
    *,
    heads: Sequence[str] | None = None,
    batch_size: int = 256,
    stride: int = 1,
    soft: bool = False,
    stage_probs: bool = False,
    shard: str | Sequence[int] | None = (0, 1),
    reward_model_path: str | None = None,
    allow_other_encoder: bool = False,
    progress: bool = True,
    option_names: dict[str, str] | None = None,
    formats: Sequence[str] | str = ("lerobot",),
    scores_out: str | Path | None = None,
    score_name: str = "sarm",
) -> Path | None:
    """Score every frame of the cache with `model` and write `out_path` (LeRobot's progress schema).

    Args:
        model: a SARM (on the device it should run on).
        cache: a `FeatureCache` or its directory.
        out_path: the parquet file to write; per-episode parts go to `<out_path>.parts/`.
        heads: heads to compute (default: all of the model's).
        batch_size: windows per forward pass.
        stride: score every k-th frame (and each episode's last), interpolate the rest.
        soft: read progress as the expectation over stages instead of LeRobot's argmax stage.
        stage_probs: also write per-frame stage probabilities (for `sarm viz`).
        shard: (i, n) or "i/n": this process scores every n-th episode from i; None reads torchrun's
            RANK / WORLD_SIZE.
        reward_model_path: recorded in the file's metadata (LeRobot's key); default `model.source`, the
            directory or Hub id the model was loaded from (or its run's model/ folder after training).
        allow_other_encoder: score a cache made with another encoder than the one the model was trained
            on (recorded in `model.config.encoder`); refused by default, naming both encoders.
        progress: show a tqdm bar.
        option_names: how errors name `allow_other_encoder` / `scores_out` (the CLI passes its flags).
        formats: the files to write: "lerobot" (`out_path`) and/or "scores" (LeRobot's typed scores
            file, a draft of open PRs #4553-#4555, at `scores_out`). `out_path` names the parts
            directory either way.
        scores_out: the scores file (default `<dataset root>/scores/<score_name>.parquet`).
        score_name: the score's name in the default `scores_out`.

    The output is checked before any compute: it must be a file path (not a directory) in a writable
    place, and must not lie inside the feature cache or the model's directory.

    Returns `out_path` (the scores file when it is the only format) once every episode is done and
    merged, or None when other shards are still missing (run them, or call `merge_progress` later).
    """
    job = plan_progress(
        model,
        cache,
        out_path,
        heads=heads,
        batch_size=batch_size,
        stride=stride,
        soft=soft,
        stage_probs=stage_probs,
        shard=shard,
        reward_model_path=reward_model_path,
        allow_other_encoder=allow_other_encoder,
        option_names=option_names,
        formats=formats,
        scores_out=scores_out,
        score_name=score_name,
    )
    bar = tqdm(
        total=sum(job.cache.length(e) for e in job.todo), unit="frame", disable=not progress, desc="progress"
    )
    for episode in job.todo:
        job.write_part(episode, job.score(model, episode))
        job.cache.release()  # one episode's maps at a time: memory stays flat over the dataset
        bar.update(job.cache.length(episode))
    bar.close()
    return job.merge_if_done()
