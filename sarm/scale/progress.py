"""`sarm progress --engine ray`: the episodes of a feature cache scored by a pool of Ray actors, each
holding the SARM (on a GPU when it reserves one); the same parts and files as the local loop.

The driver runs every check of the local path first (`sarm.inference.progress.plan_progress`: heads,
encoder, output, settings and provenance in the parts folder), then sends each episode without a part
to an actor: its cached features, normalised state and task text go through the object store, so
workers need no access to the cache. The driver writes each result as the same atomic
`<out>.parts/episode_*.npz` and merges once every episode has one; a rerun skips finished parts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sarm.features.cache import FeatureCache
from sarm.inference.progress import plan_progress, score_episode
from sarm.model.network import SARM
from sarm.scale.engine import Outcome, RayOptions, Unit, crash_now, ray_session, run_units, worker_count

__all__ = ["compute_progress_ray"]


class _ScorerActor:
    """Holds one SARM on its device and scores whole episodes."""

    def __init__(self, model: SARM, device: str | None, threads: int):
        torch.set_num_threads(threads)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(device).eval()

    @torch.no_grad()
    def score(self, inputs: tuple, options: dict, crash: bool) -> dict:
        if crash:
            crash_now()
        return score_episode(self.model, *inputs, **options)


def compute_progress_ray(
    model: SARM,
    cache: FeatureCache | str | Path,
    out_path: str | Path,
    *,
    options: RayOptions | None = None,
    device: str | None = None,
    progress: bool = True,
    **kwargs,
) -> tuple[Path | None, Outcome]:
    """`compute_progress` on Ray: the same output files. `kwargs` as in `compute_progress` (heads,
    batch_size, stride, soft, stage_probs, formats, ...; not `shard`: the engine balances the episodes
    itself). `device` is the actors' (default: cuda when the actor has a GPU, else cpu).

    Returns the written file (None when an episode failed) and the `Outcome`."""
    if kwargs.get("shard") not in (None, (0, 1), "0/1"):
        raise ValueError("the Ray engine balances the episodes itself; drop shard (--shard)")
    kwargs.pop("shard", None)
    options = options or RayOptions()
    model = model.cpu()
    job = plan_progress(model, cache, out_path, shard=(0, 1), **kwargs)
    units = [Unit(e, job.cache.length(e), (e,), f"cache `{job.cache.root}`") for e in job.todo]

    def work(actor, unit: Unit, _, crash: bool):
        inputs = job.inputs(model, unit.episode)
        job.cache.release()
        return actor.score.remote(inputs, job.options, crash)

    with ray_session(options) as ray:
        gpus = options.gpus(ray)
        actor_class = ray.remote(_ScorerActor).options(num_cpus=0, num_gpus=gpus, max_restarts=0)
        model_ref = ray.put(model)
        outcome = run_units(
            ray,
            units,
            make_actor=lambda: actor_class.remote(model_ref, device if gpus else "cpu", options.threads()),
            num_workers=worker_count(ray, options),
            work=work,
            done=lambda unit, result: job.write_part(unit.episode, result),
            max_retries=options.max_retries,
            desc="progress (ray)",
            progress=progress,
        )
    if outcome.failed:
        return None, outcome
    return job.merge_if_done(), outcome
