"""The demo's episodes on disk: recorded into a LeRobot v3.0 dataset, listed, and their progress read back.

`record_dataset` renders in a spawned process (see its docstring); `episode_table` is the
`episodes.json` of a demo or benchmark run; `progress_by_episode` splits a progress file's sparse
column at the episodes' bounds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from sarm.demo.collect import TASK_TEXT, Episode, annotation_spans, collect, mistake_record
from sarm.demo.protocol import Protocol

__all__ = ["CAMERA", "episode_table", "progress_by_episode", "record_dataset"]

CAMERA = "observation.images.corner"


def progress_by_episode(path: Path, bounds: np.ndarray) -> list[np.ndarray]:
    """The sparse progress column of a progress file, split at the episode `bounds` (rows)."""
    from rabc import read_progress

    values = read_progress(path).column("sparse")
    return [values[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


def _rendering_available(protocol: Protocol, task: str) -> bool:
    from sarm.demo.collect import make_env

    try:
        mt1, env = make_env(task, protocol, render=True)
        env.set_task(mt1.train_tasks[0])
        env.reset(seed=0)
        env.render()
        env.close()
        return True
    except Exception as err:  # any GL failure: no EGL, no OSMesa, no display
        print(
            f"headless rendering is not available here ({type(err).__name__}: {err}); running state-only: "
            "the camera frames are blank, so SARM learns from the robot state alone",
            flush=True,
        )
        return False


def record_dataset(
    root: Path, task: str, ids: list[int], protocol: Protocol, policy=None, goal_seed: int = 0
) -> tuple[list[Episode], bool]:
    """Collect episodes `ids` and write them as a LeRobot v3.0 dataset at `root`, in a fresh process.

    With `policy`, the episodes are `len(ids)` rollouts of it on the goals of MT1(seed=goal_seed)
    instead of expert demonstrations.

    Rendering runs in its own spawned process: a GL context (EGL's Mesa) in the training process
    makes later native imports (Triton, through torch.compile's optimizer hooks) crash. Returns
    the episodes without their images, and whether frames were rendered.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_record_dataset, root, task, ids, protocol, policy, goal_seed).result()


def _record_dataset(root, task, ids, protocol, policy, goal_seed) -> tuple[list[Episode], bool]:
    from tqdm import tqdm

    from sarm.data.writer import LeRobotWriter
    from sarm.demo.collect import collect_rollouts

    render = _rendering_available(protocol, task)
    size, episodes = protocol.image_size, []
    extra = {name: {"dtype": "float32", "shape": (1,)} for name in ("progress_true", "stage_true")}
    cameras = {CAMERA: (size, size)}
    with LeRobotWriter(
        root,
        fps=protocol.fps,
        state_dim=39,
        action_dim=4,
        cameras=cameras,
        robot_type="sawyer",
        extra_features=extra,
    ) as writer:
        source = (
            collect(task, ids, protocol, render=render)
            if policy is None
            else collect_rollouts(task, policy, len(ids), protocol, goal_seed=goal_seed, render=render)
        )
        for ep in tqdm(source, total=len(ids), desc="episodes"):
            images = ep.images if render else np.zeros((len(ep.states), size, size, 3), np.uint8)
            writer.add_episode(
                state=ep.states,
                action=ep.actions,
                task=TASK_TEXT[ep.task],
                images={CAMERA: images},
                annotations={
                    "sparse": annotation_spans(ep.stage, end=ep.first_success if ep.success else None)
                },
                mistakes=mistake_record(ep),
                outcome=ep.success,
                extra={"progress_true": ep.progress, "stage_true": ep.stage.astype(np.float32)},
            )
            episodes.append(dataclasses.replace(ep, images=None))
    return episodes, render


def episode_table(episodes: list[Episode], held_out: set[int]) -> list[dict]:
    return [
        {
            "episode": i,
            "split": "held_out" if i in held_out else "train",
            "success": ep.success,
            "mistake": ep.mistake,
            "mistake_span": ep.mistake_span,
            "frames": len(ep.states),
        }
        for i, ep in enumerate(episodes)
    ]
