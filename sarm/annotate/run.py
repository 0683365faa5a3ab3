"""The episode loop of `sarm annotate`: sample frames, ask the VLM per head, check, keep one JSON per episode.

    settings = AnnotateSettings(sparse=["grab", "fold"], camera="observation.images.top")
    summary = annotate_episodes(ds, settings, backend, work_dir="ds/.sarm_annotate", episodes=None)
    summary.results[3]["heads"]["sparse"]["start_frames"]     # per-episode results, finished or failed

Each episode's result is written to `work_dir/episodes/episode_XXXXXX.json` (through a temporary file and
a rename) as soon as it is known, so a run killed at any moment (kill -9 included) keeps every finished
episode: a rerun with the same settings reuses the annotated ones and asks the model only for the rest
(failed episodes are tried again). A result made with other settings (names, camera, sampling, model,
dataset) is not reused. Workers are threads: the model calls run in parallel, frame decoding and the
local model's generation take turns.

Per head the conversation is: instructions (task, names in order, duration, the JSON contract), then the
sampled frames, each after its time. A bad answer goes back into the conversation with its error, up to
`max_retries` more times; a transport error (timeout, HTTP 5xx) is retried the same way without a new
turn. An episode is annotated only when every asked head got a valid answer; otherwise it stays
unannotated and its result records why.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sarm.annotate.backends import Backend, BackendError, Frame
from sarm.annotate.prompt import AnswerError, instructions, parse_answer, retry_message, spans_from_seconds
from sarm.annotate.write import write_json

__all__ = ["AnnotateSettings", "Summary", "annotate_episodes", "sample_frames"]

PROMPT_VERSION = 1


@dataclass(frozen=True)
class AnnotateSettings:
    """What decides an episode's annotation (and so whether a saved result can be reused).

    sparse / dense: subtask names in order, None for a head the model is not asked for. dense_only makes
    the sparse head one "task" stage over the whole episode, as LeRobot does. fps_sample: frames per
    second shown to the model; max_frames caps them (evenly spaced); max_side shrinks larger frames.
    """

    camera: str
    sparse: list[str] | None = None
    dense: list[str] | None = None
    dense_only: bool = False
    fps_sample: float = 1.0
    max_frames: int | None = None
    max_side: int | None = 448
    model: str = ""

    def heads(self) -> dict[str, list[str]]:
        """{head: names} the model is asked for."""
        asked = {} if self.dense_only or not self.sparse else {"sparse": list(self.sparse)}
        return asked | ({"dense": list(self.dense)} if self.dense else {})

    def digest(self, fingerprint: str) -> str:
        text = json.dumps([asdict(self), fingerprint, PROMPT_VERSION], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Summary:
    """results: {episode: result dict} of this run's episodes; the counts of what happened to them."""

    results: dict[int, dict] = field(default_factory=dict)
    annotated: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def mean_spans(self, head: str) -> float:
        done = [self.results[e] for e in self.annotated + self.resumed]
        counts = [len(r["heads"][head]["names"]) for r in done if head in r["heads"]]
        return float(np.mean(counts)) if counts else 0.0


def sample_frames(length: int, fps: float, fps_sample: float, max_frames: int | None = None) -> np.ndarray:
    """Episode-local frames at `fps_sample` per second from frame 0, plus the last frame; at most
    `max_frames`, evenly spaced."""
    if not fps_sample > 0:
        raise ValueError(f"--fps-sample should be a positive number, got {fps_sample!r}")
    times = np.arange(0.0, length / fps, 1.0 / fps_sample)
    frames = np.unique(np.r_[np.minimum(np.round(times * fps).astype(np.int64), length - 1), length - 1])
    if max_frames is not None and frames.size > max_frames:
        frames = frames[np.unique(np.round(np.linspace(0, frames.size - 1, max_frames)).astype(np.int64))]
    return frames


def _shrink(images: np.ndarray, max_side: int | None) -> list[np.ndarray]:
    h, w = images.shape[1:3]
    if max_side is None or max(h, w) <= max_side:
        return list(images)
    from PIL import Image

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return [np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR)) for im in images]


def _ask(backend: Backend, messages: list[dict], names, fps, length, tolerance_s, episode, attempts):
    """(spans, seconds, attempts used) or raise AnswerError/BackendError after the last attempt."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            answer = backend.chat(messages)
        except BackendError as err:
            last = err
            continue
        try:
            subtasks = parse_answer(answer)
            spans = spans_from_seconds(
                subtasks, names, fps=fps, num_frames=length, tolerance_s=tolerance_s, episode=episode
            )
            return spans, subtasks, attempt
        except AnswerError as err:
            last = err
            messages = [
                *messages,
                {"role": "assistant", "content": [answer]},
                {"role": "user", "content": [retry_message(str(err))]},
            ]
    kind = "answer" if isinstance(last, AnswerError) else "request"
    raise type(last)(f"no valid answer in {attempts} attempt(s); the last {kind} failed: {last}")


def _head_columns(spans, seconds, duration) -> dict:
    return {
        "names": [s.name for s in spans],
        "start_times": [float(a) for _, a, _ in seconds],
        "end_times": [min(float(b), duration) for _, _, b in seconds],
        "start_frames": [s.start for s in spans],
        "end_frames": [s.end for s in spans],
    }


def annotate_episode(ds, episode: int, settings: AnnotateSettings, backend: Backend, max_retries: int,
                     decode_lock: threading.Lock | None = None) -> dict:  # fmt: skip
    """One episode's result dict (status "annotated" or "failed"); never raises for a bad answer."""
    p = ds.episode_position(episode)
    length, fps, task = int(ds.episode_lengths[p]), float(ds.fps), ds.tasks[p]
    duration = length / fps
    frames = sample_frames(length, fps, settings.fps_sample, settings.max_frames)
    result = {"episode": int(episode), "status": "failed", "heads": {}, "attempts": {}, "reason": None,
              "frames_sampled": int(frames.size)}  # fmt: skip
    try:
        with decode_lock or threading.Lock():
            images = np.concatenate([im for _, im in ds.decode(settings.camera, episode, frames)])
    except (ValueError, OSError) as err:  # a damaged or missing video (DatasetError): reported, others go on
        result["reason"] = f"frames could not be decoded: {err}"
        return result
    content: list = []
    for k, image in zip(frames.tolist(), _shrink(images, settings.max_side), strict=True):
        content += [f"t={k / fps:.2f} s", Frame(image, k / fps)]
    content.append(f"Answer with the JSON for this {duration:.2f}-second video.")
    tolerance_s = 0.5 / settings.fps_sample  # the model sees time only at the sampled frames
    for head, names in settings.heads().items():
        messages = [
            {"role": "system", "content": [instructions(task, names, duration)]},
            {"role": "user", "content": content},
        ]
        try:
            spans, seconds, used = _ask(
                backend, messages, names, fps, length, tolerance_s, episode, 1 + max_retries
            )
        except (AnswerError, BackendError) as err:
            result["reason"] = f"{head} head: {err}"
            result["heads"] = {}
            return result
        result["heads"][head] = _head_columns(spans, seconds, duration)
        result["attempts"][head] = used
    if settings.dense_only:
        result["heads"]["sparse"] = {"names": ["task"], "start_times": [0.0], "end_times": [duration],
                                     "start_frames": [0], "end_frames": [length - 1]}  # fmt: skip
    result["status"] = "annotated"
    return result


def _result_path(work_dir: Path, episode: int) -> Path:
    return work_dir / "episodes" / f"episode_{episode:06d}.json"


def load_result(work_dir: Path, episode: int, digest: str) -> dict | None:
    """A saved annotated result made with these settings, else None (missing, failed, other settings)."""
    path = _result_path(work_dir, episode)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(saved, dict) and saved.get("settings") == digest and saved.get("status") == "annotated"
    return saved if ok else None


def annotate_episodes(
    ds,
    settings: AnnotateSettings,
    backend: Backend,
    work_dir: str | os.PathLike,
    episodes: Iterable[int] | None = None,
    *,
    max_retries: int = 2,
    num_workers: int = 1,
    progress: bool = True,
) -> Summary:
    """Annotate `episodes` (default all) of `ds`, resuming from `work_dir`; returns the `Summary`."""
    if num_workers < 1:
        raise ValueError(f"--num-workers should be at least 1, got {num_workers}")
    if max_retries < 0:
        raise ValueError(f"--max-retries should be 0 or more, got {max_retries}")
    work_dir = Path(work_dir)
    digest = settings.digest(ds.fingerprint())
    todo, summary = [], Summary()
    for ep in ds.episodes.tolist() if episodes is None else [int(e) for e in episodes]:
        saved = load_result(work_dir, ep, digest)
        if saved is None:
            todo.append(ep)
        else:
            summary.results[ep] = saved
            summary.resumed.append(ep)
    lock = threading.Lock()
    bar = tqdm(total=len(todo), desc="sarm annotate", unit="episode", disable=not progress)
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        futures = {
            pool.submit(annotate_episode, ds, ep, settings, backend, max_retries, lock): ep for ep in todo
        }
        for future in as_completed(futures):
            result = {**future.result(), "settings": digest}
            write_json(_result_path(work_dir, result["episode"]), result, indent=1)
            summary.results[result["episode"]] = result
            (summary.annotated if result["status"] == "annotated" else summary.failed).append(
                result["episode"]
            )
            bar.update()
    bar.close()
    for name in ("annotated", "resumed", "failed"):
        getattr(summary, name).sort()
    summary.results = dict(sorted(summary.results.items()))
    return summary
