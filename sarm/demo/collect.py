"""Meta-World demonstrations from the scripted experts, with the protocol's mistakes injected.

    for episode in collect("pick-place-v3", range(40), DEFAULT_PROTOCOL):
        episode.states, episode.actions, episode.images, episode.stage, episode.progress, episode.success

The three tasks share one stage structure, read from the simulator state (never from time):
0 reach (hand far from the object), 1 grasp (hand at the object, object not lifted), 2 transport
(object lifted and carried to the goal). A dropped object sends the stage back to 0 or 1.
Ground-truth progress is `(stage + tau) / 3`, with tau from distances (reach: hand to object; grasp:
gripper closure; transport: object to goal, relative to the start), so a pause is flat, a detour and
a drop go down, and a failure ends below 1. SARM annotations are the spans of the running maximum of
the stage: what a human would mark as subtask boundaries, regressions included in their stage; the
last span of a success ends at its first success. The injected mistake is recorded as a mistake span
(`mistake_record`) and the simulator's flag as the outcome, in the dataset's `mistake_*` and `outcome`
columns (`sarm.labels.records`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from sarm.demo.protocol import Protocol

__all__ = [
    "STAGES",
    "TASK_TEXT",
    "Episode",
    "annotation_spans",
    "collect",
    "collect_rollouts",
    "make_env",
    "mistake_record",
    "stage_and_progress",
]

STAGES = ("reach", "grasp", "transport")
TASK_TEXT = {
    "pick-place-v3": "Pick up the puck and place it at the goal",
    "assembly-v3": "Pick up the wrench and put it on the peg",
    "shelf-place-v3": "Pick up the block and place it on the shelf",
}
_NEAR_M, _LIFT_M, _GRIP_CLOSED = 0.06, 0.01, 0.5  # hand-object distance, object lift, gripper reading
# object-goal distance (of the observed object point) when the task is done, measured on clean experts
_PLACED_M = {"pick-place-v3": 0.07, "assembly-v3": 0.135, "shelf-place-v3": 0.08}


@dataclass
class Episode:
    """One recorded episode: frame t is the observation before action t."""

    task: str
    episode: int
    states: np.ndarray  # float32 (T, 39)
    actions: np.ndarray  # float32 (T, 4)
    images: np.ndarray | None  # uint8 (T, H, W, 3)
    stage: np.ndarray  # int64 (T,) 0 reach, 1 grasp, 2 transport
    progress: np.ndarray  # float32 (T,) ground truth in [0, 1]
    success: bool  # the simulator's flag at the last recorded step
    first_success: int | None
    mistake: str | None  # None for a clean episode
    mistake_span: tuple[int, int] | None  # [start, end) frames of the injected segment


def _install_hint() -> str:
    return "the Meta-World demo needs `pip install metaworld packaging` (or the `metaworld` extra)"


def make_env(task: str, protocol: Protocol, render: bool):
    """`(MT1 benchmark, env)`; with `render`, 64-96 px RGB from the corner camera, shadows off."""
    if render:
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import metaworld
    except ImportError as err:
        raise ImportError(f"{_install_hint()} ({err})") from err
    if task not in TASK_TEXT:
        raise ValueError(f"task should be one of {sorted(TASK_TEXT)}, but got {task!r}")
    mt1 = metaworld.MT1(task, seed=protocol.seed)
    kwargs = {}
    if render:
        size = protocol.image_size
        kwargs = {"render_mode": "rgb_array", "width": size, "height": size, "camera_name": "corner"}
    env = mt1.train_classes[task](**kwargs)
    if render:  # software rendering: shadows and multisampling cost ~8x
        env.unwrapped.model.vis.quality.shadowsize = 0
        env.unwrapped.model.vis.quality.offsamples = 0
    return mt1, env


def stage_and_progress(states: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame stage (0 reach, 1 grasp, 2 transport) and ground-truth progress of one episode.

    Transport: the object is held and lifted, or already at least half way to the goal (so placing it
    down and letting go at the goal stays in transport).
    """
    hand, grip, obj, goal = states[:, :3], states[:, 3], states[:, 4:7], states[:, -3:]
    reach = np.linalg.norm(hand - obj, axis=1)
    placed = _PLACED_M[task]
    carried = 1 - (np.linalg.norm(obj - goal, axis=1) - placed) / max(
        np.linalg.norm(obj[0] - goal[0]) - placed, 1e-6
    )
    near, lifted = reach < _NEAR_M, obj[:, 2] - obj[0, 2] > _LIFT_M
    stage = np.where((near & lifted) | (carried >= 0.5), 2, np.where(near, 1, 0)).astype(np.int64)
    tau = np.select(
        [stage == 0, stage == 1],
        [
            1 - (reach - _NEAR_M) / max(reach[0] - _NEAR_M, 1e-6),
            (grip[0] - grip) / max(grip[0] - _GRIP_CLOSED, 1e-6),
        ],
        carried,
    )
    progress = (stage + np.clip(tau, 0, 1)) / len(STAGES)
    return stage, progress.astype(np.float32)


def annotation_spans(stage: np.ndarray, end: int | None = None) -> tuple[list[str], list[int], list[int]]:
    """SARM sparse spans (names, start frames, end frames inclusive) from the stage's running maximum.

    `end` is the frame the task is done (the first success): the last span ends there, and the frames
    recorded after it lie after the last span, labelled finished (K - 1 + 0.999, LeRobot's rule). Without
    it (a failure) the last span runs to the last frame. Ending the last span at the last recorded frame
    of a success taught SARM a tau that still rises through `steps_after_success` frames that all look
    the same, so it ended successes below 1 (docs/labels.md, "Why successes ended below 1.0").
    """
    level = np.maximum.accumulate(stage)
    starts = [int(np.argmax(level >= k)) for k in range(int(level[-1]) + 1)]
    last = len(stage) - 1 if end is None else max(min(int(end), len(stage) - 1), starts[-1])
    ends = [s - 1 for s in starts[1:]] + [last]
    kept = [k for k in range(len(starts)) if ends[k] >= starts[k]]  # a stage skipped in one step has no span
    return [STAGES[k] for k in kept], [starts[k] for k in kept], [ends[k] for k in kept]


def mistake_record(episode: Episode) -> list[tuple[str, int, int]]:
    """The protocol's record of the episode's injected mistake as mistake spans [(kind, start, end)]
    (inclusive frames; [] for a clean episode): from the first injected frame until ground-truth
    progress is back at its value when the mistake began, i.e. the injected segment plus the recovery
    it forced (a pause: the pause alone; a drop: the drop, the re-reach and the regrasp), or to the
    episode's end when it never recovers. What a person marking the mistake in the explorer would mark."""
    if episode.mistake_span is None:
        return []
    start, stop = episode.mistake_span
    back = np.flatnonzero(episode.progress[stop:] >= episode.progress[start])
    end = len(episode.progress) - 1 if back.size == 0 else stop + int(back[0]) - 1
    return [(str(episode.mistake), int(start), int(max(end, stop - 1)))]


@dataclass
class _Mistake:
    kind: str
    onset: int
    length: int
    target: np.ndarray | None = None  # detour goal
    start: int | None = None  # first frame actually injected


def _plan(rng: np.random.Generator, protocol: Protocol) -> _Mistake | None:
    if rng.random() >= protocol.noisy_share:
        return None
    kind = protocol.mistakes[rng.integers(len(protocol.mistakes))]
    lengths = {
        "pause": protocol.pause_steps,
        "detour": protocol.detour_steps,
        "drop_regrasp": protocol.drop_open_steps,
        "random": protocol.random_steps,
    }[kind]
    onset = int(rng.integers(protocol.onset[0], protocol.onset[1] + 1))
    return _Mistake(kind, onset, int(rng.integers(lengths[0], lengths[1] + 1)))


def _mistake_action(m: _Mistake, step: int, obs, obs0, expert, rng, protocol: Protocol, task: str):
    """The injected action at `step`, or None when the expert acts (drop_regrasp waits for a carry)."""
    if m.start is None:
        if step < m.onset:
            return None
        if m.kind == "drop_regrasp" and stage_and_progress(np.stack([obs0, obs]), task)[0][1] != 2:
            return None
        m.start = step
        if m.kind == "detour":
            angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(*protocol.detour_distance_m)
            m.target = obs[:3] + dist * np.array([np.cos(angle), np.sin(angle), 0.3])
    if step >= m.start + m.length:
        return None
    grip = expert[3]
    if m.kind == "pause":
        return np.array([0.0, 0.0, 0.0, grip], np.float32)
    if m.kind == "detour":
        return np.concatenate([np.clip(10 * (m.target - obs[:3]), -1, 1), [grip]]).astype(np.float32)
    if m.kind == "drop_regrasp":
        return np.array([0.0, 0.0, 0.0, -1.0], np.float32)
    return rng.uniform(-1, 1, 4).astype(np.float32)


def collect(task: str, episodes: Iterable[int], protocol: Protocol, render: bool = True) -> Iterator[Episode]:
    """Record `episodes` (ids) of `task`; episode e draws its goal and mistake from (seed, task, e)."""
    from metaworld.policies import ENV_POLICY_MAP

    mt1, env = make_env(task, protocol, render)
    expert = ENV_POLICY_MAP[task]()
    task_id = protocol.tasks.index(task) if task in protocol.tasks else len(protocol.tasks)
    try:
        for e in episodes:
            rng = np.random.default_rng([protocol.seed, task_id, e])
            env.set_task(mt1.train_tasks[e % len(mt1.train_tasks)])
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            mistake = _plan(rng, protocol)
            yield _record(env, expert.get_action, obs, task, e, mistake, rng, protocol, render)
    finally:
        env.close()


def collect_rollouts(
    task: str, policy, count: int, protocol: Protocol, *, goal_seed: int, render: bool = True
) -> Iterator[Episode]:
    """Record `count` rollouts of `policy` (`.act(obs)` -> action chunk, executed whole, then re-planned)
    on the goals of `MT1(task, seed=goal_seed)`, with the same recording rule as the demonstrations."""
    import metaworld

    _, env = make_env(task, protocol, render)
    goals = metaworld.MT1(task, seed=goal_seed).train_tasks
    try:
        for r in range(count):
            plan: list = []

            def act(obs, plan=plan):
                if not plan:
                    plan.extend(policy.act(obs))
                return plan.pop(0)

            env.set_task(goals[r % len(goals)])
            obs, _ = env.reset(seed=r)
            yield _record(env, act, obs, task, r, None, None, protocol, render)
    finally:
        env.close()


def _record(env, actor, obs, task, e, mistake, rng, protocol: Protocol, render: bool) -> Episode:
    states, actions, images, first_success, info = [], [], [], None, {"success": 0.0}
    obs0 = obs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the experts' "Constant(s) may be too high" on every step
        for step in range(protocol.max_steps):
            if first_success is not None and step >= first_success + protocol.steps_after_success:
                break
            action = np.asarray(actor(obs), np.float32)
            if mistake is not None:
                injected = _mistake_action(mistake, step, obs, obs0, action, rng, protocol, task)
                action = action if injected is None else injected
            states.append(np.asarray(obs, np.float32))
            actions.append(np.clip(action, -1, 1))
            if render:
                images.append(np.flipud(env.render()).copy())  # the corner camera is upside down
            obs, _, _, _, info = env.step(actions[-1])
            if info["success"] and first_success is None:
                first_success = step
    states_arr = np.stack(states)
    stage, progress = stage_and_progress(states_arr, task)
    span = None
    if mistake is not None and mistake.start is not None:
        span = (mistake.start, min(mistake.start + mistake.length, len(states)))
    return Episode(
        task=task,
        episode=e,
        states=states_arr,
        actions=np.stack(actions),
        images=np.stack(images) if render else None,
        stage=stage,
        progress=progress,
        success=bool(info["success"]),
        first_success=first_success,
        mistake=mistake.kind if span else None,
        mistake_span=span,
    )
