"""`sarm features --engine ray`: the feature cache built by Ray tasks and actors, the same files as the
local loop writes.

The driver plans the episodes without decoding (`sarm.features.plan.plan_extraction`: manifest, text
features, finished episodes skipped), and cuts each episode and camera into frame ranges of at most
`frames_per_task` frames, aligned to the decoder's 64-frame chunks. A CPU task decodes one range
(PyAV, one seek, as locally; a LeRobot v3.0 file holding many episodes is read from the episode's
timestamp range only) and leaves the frames in the object store; an encoder actor (on a GPU when it
reserves one) encodes them chunk by chunk, exactly as the local loop batches them, and returns the
features. The driver gathers an episode's ranges and writes it atomically with the local loop's
`write_episode` (state, then images), so the cache, its manifest and its size checks are the ones
`--shard` and the local engine use, and a rerun (after a killed driver, say) skips finished episodes.
Workers must see the dataset at the same path as the driver (a shared filesystem, or a copy per node);
only the driver writes the cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sarm.features.cache import FeatureCache
from sarm.features.encoders import load_encoder
from sarm.features.extract import finish_extraction, short_video
from sarm.features.plan import episode_done, plan_extraction, write_episode
from sarm.scale.engine import Outcome, RayOptions, Unit, crash_now, ray_session, run_units, worker_count

__all__ = ["decode_ahead", "extract_features_ray"]

_DATASETS: dict[str, Any] = {}  # per worker process: datasets opened by its decode tasks


def _open(spec: str):
    """The dataset of `spec` (its `open_args()` as JSON), opened once per worker process."""
    if spec not in _DATASETS:
        from sarm.data import open_dataset

        _DATASETS[spec] = open_dataset(**json.loads(spec))
    return _DATASETS[spec]


def _decode(spec: str, camera: str, episode: int, lo: int, hi: int, crash: bool):
    """A CPU task: decode frames lo..hi-1 of one episode's camera -> ("ok", [(positions, pixels), ...])."""
    chunks = []
    for frames, pixels in _open(spec).decode(camera, episode, np.arange(lo, hi)):
        chunks.append((frames, pixels))
        if crash:
            crash_now()
    return "ok", chunks


class _EncoderActor:
    """Holds one encoder (on the GPU Ray gives it, if any) and encodes decoded chunks."""

    def __init__(self, spec: str, kwargs: dict, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.encoder = load_encoder(spec, **kwargs)

    def encode(self, chunks: list, dtype: str, crash: bool) -> list:
        out = []
        for frames, pixels in chunks:
            out.append((frames, self.encoder.encode_images(pixels).numpy().astype(dtype)))
            if crash:
                crash_now()
        return out


def _units(dataset, job, cameras: list[str], frames_per_task: int) -> list[Unit]:
    units = []
    for episode in job.todo:
        length = job.lengths[episode]
        for c, camera in enumerate(cameras):
            where = f"camera {camera!r}, `{dataset.video_path(camera, episode)}`"
            for lo in range(0, length, frames_per_task):
                hi = min(lo + frames_per_task, length)
                units.append(Unit(episode, (hi - lo) / len(cameras), (c, camera, lo, hi), where))
    return units


def extract_features_ray(
    dataset,
    encoder: str,
    out_dir: str | Path,
    *,
    options: RayOptions | None = None,
    encoder_kwargs: dict | None = None,
    cameras=None,
    episodes=None,
    dtype: str = "float16",
    missing_videos: str = "error",
    state_only: bool = False,
    progress: bool = True,
) -> tuple[FeatureCache, Outcome]:
    """`extract_features` on Ray: the same cache, byte for byte. `encoder` is a spec (each actor loads
    its own; the driver loads one on the CPU for the manifest and the text features), `encoder_kwargs`
    go to `load_encoder` in the actors (batch_size, precision, device). Other arguments as in
    `sarm.features.extract_features`; an mp4 that does not decode fails its episode (listed in the
    outcome, not retried), whatever `missing_videos` says of files that are missing.

    Returns the cache (finished episodes) and the `Outcome` (failed episodes with reasons, retries)."""
    options = options or RayOptions()
    encoder_kwargs = dict(encoder_kwargs or {})
    local = load_encoder(encoder, **{**encoder_kwargs, "device": "cpu"})
    job = plan_extraction(
        dataset,
        local,
        out_dir,
        cameras=cameras,
        episodes=episodes,
        dtype=dtype,
        missing_videos=missing_videos,
        state_only=state_only,
    )
    if not job.cameras:  # state only: nothing to decode
        for episode in job.todo:
            write_episode(job, episode, dataset.state(episodes=[episode]), _empty(job, local, episode))
        job.todo = []
    units = _units(dataset, job, job.cameras, options.frames_per_task)
    images: dict[int, np.ndarray] = {}
    filled: dict[int, np.ndarray] = {}
    left = dict.fromkeys(job.todo, 0)
    for unit in units:
        left[unit.episode] += 1

    def done(unit: Unit, chunks: list) -> None:
        e, c = unit.episode, unit.args[0]
        if e not in images:
            images[e] = _empty(job, local, e)
            filled[e] = np.zeros((job.lengths[e], len(job.cameras)), bool)
        for frames, features in chunks:
            images[e][frames, c] = features
            filled[e][frames, c] = True
        left[e] -= 1
        if left[e]:
            return
        image, mask = images.pop(e), filled.pop(e)
        if not mask.all():
            c = int(np.argmin(mask.all(axis=0)))
            raise short_video(job.cameras[c], e, int(mask[:, c].sum()), job.lengths[e])
        if not episode_done(job, e):  # another run may have finished it meanwhile
            write_episode(job, e, dataset.state(episodes=[e]), image)

    with ray_session(options) as ray:
        decode_task = ray.remote(_decode).options(
            num_cpus=options.num_cpus_per_decoder, num_returns=2, max_retries=0
        )
        gpus = options.gpus(ray)
        actor_class = ray.remote(_EncoderActor).options(num_cpus=0, num_gpus=gpus, max_restarts=0)
        kwargs = encoder_kwargs if gpus else {**encoder_kwargs, "device": "cpu"}
        spec = json.dumps(dataset.open_args(), sort_keys=True)
        workers = worker_count(ray, options)
        outcome = run_units(
            ray,
            units,
            make_actor=lambda: actor_class.remote(encoder, kwargs, options.threads()),
            num_workers=workers,
            max_decoding=decode_ahead(ray, options, workers),
            decode=lambda u, crash: decode_task.remote(
                spec, u.args[1], u.episode, u.args[2], u.args[3], crash
            ),
            work=lambda actor, u, chunks, crash: actor.encode.remote(chunks, dtype, crash),
            done=done,
            max_retries=options.max_retries,
            desc="features (ray)",
            progress=progress,
        )
    return finish_extraction(job, {}, {}), outcome


def decode_ahead(ray, options: RayOptions, workers: int) -> int:
    """Decoded ranges allowed in the object store or in decoding at once: one per decoder the cluster's
    CPUs hold (so every core decodes) plus two per actor (so no actor waits for a decode)."""
    decoders = int(ray.cluster_resources().get("CPU", 1) // max(options.num_cpus_per_decoder, 1e-3))
    return max(decoders, 1) + 2 * workers


def _empty(job, encoder, episode: int) -> np.ndarray:
    return np.zeros((job.lengths[episode], len(job.cameras), encoder.image_dim), dtype=job.dtype)
