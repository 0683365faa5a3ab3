"""ProgressRewardWrapper on a real simulator's gymnasium Env: Meta-World pick-place-v3, frames from
`env.render()` (headless MuJoCo), state from the observation. Run in a child process: a GL context in
the test process would outlive the test (see sarm.demo.record)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import HANG_S

pytest.importorskip("metaworld")
pytest.importorskip("gymnasium")
ROOT = Path(__file__).resolve().parents[3]

CHILD = """
import json, sys
import numpy as np
from sarm.demo.collect import make_env
from sarm.demo.protocol import DEFAULT_PROTOCOL
from sarm.online import ProgressRewardWrapper, ProgressStream
from tests.sarm.online.tiny import TASK, encoder, tiny_model

mt1, env = make_env("pick-place-v3", DEFAULT_PROTOCOL, render=True)
env.set_task(mt1.train_tasks[0])
state = lambda obs: np.asarray(obs[:2], np.float32)  # noqa: E731
wrapped = ProgressRewardWrapper(env, ProgressStream(tiny_model(), encoder()), task=TASK, reward="delta",
                                reward_mode="replace", state_key=state)
check = ProgressStream(tiny_model(), encoder())  # the same frames, scored by hand
check.reset(TASK)
obs, info = wrapped.reset(seed=0)
first = float(check.step(env.render()[None], state(obs)[None])[0])
rows = [{"progress": float(info["sarm_progress"]), "check": first}]
rng = np.random.default_rng(0)
for _ in range(12):
    obs, reward, terminated, truncated, info = wrapped.step(rng.uniform(-1, 1, 4).astype(np.float32))
    rows.append({"progress": float(info["sarm_progress"]), "reward": float(reward),
                 "sarm_reward": float(info["sarm_reward"]), "sim_success": float(info["success"]),
                 "check": float(check.step(env.render()[None], state(obs)[None])[0]),
                 "frame_shape": list(np.shape(env.render()))})
json.dump(rows, sys.stdout)
"""


def test_the_wrapper_scores_a_rendered_meta_world_env_as_a_stream_of_its_frames():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    run = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=HANG_S, env=env, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(rows) == 13
    assert all(r["progress"] == r["check"] for r in rows)  # what the wrapper gave is the stream's number
    assert all(r["reward"] == r["sarm_reward"] for r in rows[1:])  # reward_mode="replace"
    assert rows[1]["frame_shape"] == [64, 64, 3] and "sim_success" in rows[1]  # env info kept
    assert len({round(r["progress"], 6) for r in rows}) > 1  # the frames move the progress
