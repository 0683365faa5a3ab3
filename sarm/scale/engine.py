"""The Ray engine's scheduler: work units through an optional CPU task stage and an actor pool, with
retries of lost workers, a failure list by episode, and a progress bar on the driver.

`sarm.scale.features` and `sarm.scale.progress` describe their work as `Unit`s and hand them to
`run_units`; nothing here knows about videos or models. Ray is imported only inside `ray_session`, so
`import sarm` never imports it.

Retries are the driver's, not Ray's: tasks and actors are started with Ray's own retries off, and a
unit whose worker died (a killed process, a lost node, an object lost with it) starts again from its
first stage, at most `max_retries` times; an error raised by our own code (an mp4 that does not decode)
is deterministic and fails the unit's episode at once. A lost actor is replaced by a fresh one.

Test hook: `SARM_ENGINE_FAULT="<stage>:<n>"` (stage `decode` or `work`) makes the worker running the
n-th call of that stage (1-based, first attempts only) exit with `os._exit(1)` mid-call, as a killed
process would.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

__all__ = ["RayOptions", "Unit", "import_ray", "ray_session", "run_units", "worker_count"]

FAULT_ENV = "SARM_ENGINE_FAULT"


@dataclass
class RayOptions:
    """How to run on Ray (the `--ray-*` / `--num-*` / `--max-retries` flags of `sarm features` and
    `sarm progress`).

    Args:
        address: None starts a local Ray on this machine; "auto" joins the running cluster; else the
            address of its head ("ray://host:10001" or "host:6379").
        num_workers: encoder / scorer actors (default: the cluster's GPUs / num_gpus_per_worker, or 2
            without GPUs).
        num_gpus_per_worker: GPUs each actor reserves (0: actors run on CPU; default: 1 when the
            cluster has GPUs, else 0).
        num_cpus_per_decoder: CPUs each decoding task reserves.
        max_retries: times a unit whose worker died is started again before its episode is failed.
        frames_per_task: frames of one episode decoded per task (a multiple of 64; long episodes are
            split so no task holds more than this many decoded frames).
        threads_per_worker: torch CPU threads of each actor (default: the driver's
            `torch.get_num_threads()`). A CPU matmul's rounding depends on its thread count, so actors on
            CPU match the local engine bit for bit only with the same count; on a GPU it matters little.
    """

    address: str | None = None
    num_workers: int | None = None
    num_gpus_per_worker: float | None = None
    num_cpus_per_decoder: float = 1.0
    max_retries: int = 3
    frames_per_task: int = 512
    threads_per_worker: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_gpus_per_worker", "num_cpus_per_decoder", "max_retries"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} should be >= 0, but got {getattr(self, name)}")
        for name in ("num_workers", "threads_per_worker"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} should be a positive integer, but got {getattr(self, name)}")
        if self.frames_per_task < 64 or self.frames_per_task % 64:
            raise ValueError(f"frames_per_task should be a multiple of 64, but got {self.frames_per_task}")

    def threads(self) -> int:
        """torch threads per actor: as given, else the driver's."""
        import torch

        return self.threads_per_worker or torch.get_num_threads()

    def gpus(self, ray) -> float:
        """GPUs per actor: as given, else 1 when the cluster has GPUs, else 0."""
        if self.num_gpus_per_worker is not None:
            return float(self.num_gpus_per_worker)
        return 1.0 if ray.cluster_resources().get("GPU", 0.0) >= 1 else 0.0


@dataclass
class Unit:
    """One piece of work: `args` go to the first stage; `episode` is what a failure is listed under,
    `where` (a file, say) is added to its reason; `frames` advances the bar when the unit is done."""

    episode: int
    frames: int
    args: tuple
    where: str = ""
    attempts: int = 0
    payload: Any = None  # the decode stage's output ref, handed to the actor stage


@dataclass
class Outcome:
    """What `run_units` did: failed episodes with their reasons, retries, wall time."""

    failed: dict[int, str] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"ray: {self.retries} unit(s) retried, {len(self.failed)} episode(s) failed, {self.seconds:.1f} s"
        )


def import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(
            "--engine ray needs Ray: pip install 'sarm-rabc[ray]' (or pip install 'ray>=2.9'); the default "
            "--engine local needs nothing more"
        ) from None
    return ray


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Yield the `ray` module, connected: to an already initialised Ray, else per `options.address`.
    A Ray started here is shut down on exit."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        quiet = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": False}
        if options.address is None:
            ray.init(num_cpus=os.cpu_count(), **quiet)
        else:
            ray.init(address=options.address, logging_level="warning")
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def worker_count(ray, options: RayOptions) -> int:
    if options.num_workers is not None:
        return options.num_workers
    per_worker = options.gpus(ray)
    if per_worker > 0:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        count = int(gpus // per_worker)
        if count < 1:
            raise ValueError(
                f"the Ray cluster has {gpus:g} GPU(s), fewer than --num-gpus-per-worker {per_worker:g}; "
                "lower it, or pass --num-gpus-per-worker 0 to run on CPU"
            )
        return count
    return 2


def crash_now() -> None:
    """The fault hook's effect: this worker process dies as a killed one would."""
    os._exit(1)


class _Faults:
    def __init__(self) -> None:
        stage, _, n = os.environ.get(FAULT_ENV, "").partition(":")
        self.stage, self.n = stage, int(n or 0)
        self.calls: dict[str, int] = {}

    def fire(self, stage: str, unit: Unit) -> bool:
        if unit.attempts:
            return False
        self.calls[stage] = self.calls.get(stage, 0) + 1
        return stage == self.stage and self.calls[stage] == self.n


def _lost_worker(ray, error: BaseException) -> bool:
    """Whether `error` says a worker, node or object was lost (retried), not that our code raised."""
    ex = ray.exceptions
    lost = tuple(
        getattr(ex, name)
        for name in (
            "WorkerCrashedError",
            "RayActorError",
            "ActorDiedError",
            "ActorUnavailableError",
            "ObjectLostError",
            "OwnerDiedError",
            "NodeDiedError",
            "LocalRayletDiedError",
            "OutOfMemoryError",
            "RaySystemError",
        )
        if hasattr(ex, name)
    )
    return isinstance(error, lost)


def _reason(ray, error: BaseException) -> str:
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause if getattr(error, "cause", None) is not None else error
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def run_units(
    ray,
    units: list[Unit],
    *,
    make_actor: Callable[[], Any],
    num_workers: int,
    work: Callable[[Any, Unit, Any, bool], Any],
    done: Callable[[Unit, Any], None],
    decode: Callable[[Unit, bool], tuple[Any, Any]] | None = None,
    max_retries: int = 3,
    max_decoding: int | None = None,
    desc: str = "ray",
    progress: bool = True,
) -> Outcome:
    """Run every unit: `decode(unit, crash) -> (status_ref, payload_ref)` as a Ray task (optional), then
    `work(actor, unit, payload_ref, crash) -> result_ref` on one of `num_workers` actors, then
    `done(unit, result)` on the driver (an error it raises fails the unit's episode). At most two calls
    wait on each actor and `max_decoding` decoded units wait in the object store (default 2 per actor).
    Returns the failed episodes and retries."""
    faults = _Faults()
    outcome = Outcome()
    start = time.monotonic()
    actors = [make_actor() for _ in range(num_workers)]
    load = [0] * num_workers
    max_decoding = max_decoding or 2 * num_workers
    todo: deque[Unit] = deque(units)
    decoded: deque[Unit] = deque()
    inflight: dict[Any, tuple[Unit, str, int, Any]] = {}  # ref -> (unit, stage, actor slot, actor)
    episodes = {u.episode for u in units}
    remaining = {e: 0 for e in episodes}
    for u in units:
        remaining[u.episode] += 1
    bar = tqdm(total=sum(u.frames for u in units), unit="frame", desc=desc, disable=not progress)

    finished = 0

    def postfix() -> None:
        bar.set_postfix_str(
            f"episodes {finished}/{len(episodes)}, retries {outcome.retries}, failed {len(outcome.failed)}",
            refresh=False,
        )

    def fail(unit: Unit, reason: str) -> None:
        if unit.episode not in outcome.failed:
            where = f" ({unit.where})" if unit.where else ""
            outcome.failed[unit.episode] = f"{reason}{where}"
        postfix()

    def retry(unit: Unit, error: BaseException) -> None:
        unit.attempts += 1
        unit.payload = None
        if unit.attempts > max_retries:
            fail(unit, f"worker lost {unit.attempts} time(s), last: {_reason(ray, error)}")
            return
        outcome.retries += 1
        todo.appendleft(unit)
        postfix()

    postfix()
    try:
        while todo or decoded or inflight:
            while todo and (decode is None or len(decoded) + _count(inflight, "decode") < max_decoding):
                unit = todo.popleft()
                if unit.episode in outcome.failed:
                    continue
                if decode is None:
                    decoded.append(unit)
                    continue
                status, unit.payload = decode(unit, faults.fire("decode", unit))
                inflight[status] = (unit, "decode", -1, None)
            while decoded and min(load) < 2:
                unit = decoded.popleft()
                if unit.episode in outcome.failed:
                    continue
                slot = load.index(min(load))
                ref = work(actors[slot], unit, unit.payload, faults.fire("work", unit))
                inflight[ref] = (unit, "work", slot, actors[slot])
                load[slot] += 1
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                unit, stage, slot, actor = inflight.pop(ref)
                if slot >= 0:
                    load[slot] -= 1
                try:
                    value = ray.get(ref)
                except Exception as error:  # sorted: lost workers / our errors
                    if (
                        actor is not None
                        and actors[slot] is actor
                        and isinstance(error, ray.exceptions.RayActorError)
                    ):
                        ray.kill(actor, no_restart=True)
                        actors[slot] = make_actor()  # its other calls fail too and are retried
                    if _lost_worker(ray, error):
                        retry(unit, error)
                    else:
                        fail(unit, _reason(ray, error))
                    continue
                if unit.episode in outcome.failed:
                    continue
                if stage == "decode":
                    decoded.append(unit)
                    continue
                unit.payload = None
                remaining[unit.episode] -= 1
                try:
                    done(unit, value)
                except Exception as error:  # the driver's own check of the result (deterministic)
                    fail(unit, _reason(ray, error))
                    continue
                finished += remaining[unit.episode] == 0
                bar.update(unit.frames)
                postfix()
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    outcome.seconds = time.monotonic() - start
    return outcome


def _count(inflight: dict, stage: str) -> int:
    return sum(1 for _, s, _, _ in inflight.values() if s == stage)


def report_failures(outcome: Outcome, what: str) -> int:
    """Print the failed episodes (one line each, to stderr) and return the exit code: 0, or 3."""
    if not outcome.failed:
        return 0
    print(
        f"{len(outcome.failed)} episode(s) failed after up to {what}; fix what is named and run the "
        "same command again (finished episodes are kept):",
        file=sys.stderr,
    )
    for episode, reason in sorted(outcome.failed.items()):
        print(f"  episode {episode}: {reason}", file=sys.stderr)
    return 3
