"""integrations.lerobot's SARM reward step over LeRobot-style transition dicts, without LeRobot; and its
`ProcessorStep` subclass against a stand-in `lerobot.processor` module."""

from __future__ import annotations

import abc
import sys
import types

import numpy as np
import pytest
import torch

from integrations.lerobot import SARMRewardStep, sarm_reward_processor_step
from sarm.online import ProgressStream, RewardSpec
from tests.sarm.online.tiny import TASK, encoder, tiny_model

IMAGE, STATE = "observation.images.front", "observation.state"


def frames(n: int = 6) -> list[np.ndarray]:
    out = []
    for t in range(n):
        x = np.zeros((12, 12, 3), np.uint8)
        x[..., 0], x[: t + 1, :, 2] = 30 * t, 250
        out.append(x)
    return out


def transition(frame, t, *, done=False, reward=0.0, layout="lerobot"):
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 if layout == "lerobot" else frame
    return {
        "observation": {IMAGE: image, STATE: torch.tensor([[t / 6, 1.0]])},
        "action": torch.zeros(1, 2),
        "reward": reward,
        "done": done,
        "truncated": False,
        "info": {},
        "complementary_data": {"task": [TASK]},
    }


def expected_progress(model, shown) -> np.ndarray:
    stream = ProgressStream(model, encoder())
    stream.reset(TASK)
    return np.array([stream.step(f[None], np.array([[t / 6, 1.0]]))[0] for t, f in enumerate(shown)])


def test_step_scores_lerobot_float_chw_frames_like_the_stream():
    model = tiny_model()
    step = SARMRewardStep(ProgressStream(model, encoder()), image_key=IMAGE, state_key=STATE)
    out = [step(transition(f, t, reward=5.0)) for t, f in enumerate(frames())]
    progress = np.array([o["info"]["sarm_progress"] for o in out])
    np.testing.assert_allclose(
        progress, expected_progress(model, frames()), atol=1e-6
    )  # float -> uint8 exact
    assert [o["reward"] for o in out] == pytest.approx(progress.tolist(), abs=1e-6)  # replaced
    assert isinstance(out[0]["info"]["sarm_stage"], int) and out[0]["info"]["sarm_stage_probs"].shape == (2,)
    assert out[0]["action"] is not None and "task" in out[0]["complementary_data"]


def test_done_starts_a_new_episode_and_reset_does_too():
    model = tiny_model()
    step = SARMRewardStep(ProgressStream(model, encoder()), task=TASK, image_key=IMAGE, reward="delta")
    shown = frames(3)
    step(transition(shown[0], 0, layout="raw"))
    step(transition(shown[1], 1, layout="raw", done=True))
    again = step(transition(shown[0], 0, layout="raw"))  # frame 0 of the next episode
    assert step.stream.last.frame_index.tolist() == [0] and again["info"]["sarm_delta"] == 0.0
    step(transition(shown[1], 1, layout="raw"))
    step.reset()
    step(transition(shown[0], 0, layout="raw"))
    assert step.stream.last.frame_index.tolist() == [0]


def test_add_info_modes_tensor_rewards_and_terminate_on_success():
    model = tiny_model()
    shown = frames(3)
    add = SARMRewardStep(ProgressStream(model, encoder()), image_key=IMAGE, reward_mode="add", scale=2.0)
    got = add(transition(shown[0], 0, reward=torch.tensor([1.0])))
    assert isinstance(got["reward"], torch.Tensor) and got["reward"].shape == (1,)
    assert float(got["reward"]) == pytest.approx(1.0 + 2.0 * got["info"]["sarm_reward"], abs=1e-6)
    info = SARMRewardStep(ProgressStream(model, encoder()), image_key=IMAGE, reward_mode="info")
    assert info(transition(shown[0], 0, reward=3.0))["reward"] == 3.0
    success = SARMRewardStep(
        ProgressStream(model, encoder()), image_key=IMAGE,
        reward=RewardSpec("success", threshold=0.0, steps=2), terminate_on_success=True,
    )  # fmt: skip
    assert success(transition(shown[0], 0))["done"] is False
    last = success(transition(shown[1], 1))
    assert last["done"] is True and last["reward"] == 1.0 and last["info"]["sarm_success"] is True


def test_errors_name_the_fix():
    model = tiny_model()
    step = SARMRewardStep(ProgressStream(model, encoder()), image_key="observation.images.wrist")
    with pytest.raises(KeyError, match=r"no \['observation.images.wrist'\].*pass image_key="):
        step(transition(frames(1)[0], 0))
    no_task = SARMRewardStep(ProgressStream(model, encoder()), image_key=IMAGE)
    bare = transition(frames(1)[0], 0) | {"complementary_data": {}}
    with pytest.raises(ValueError, match="no task text: pass SARMRewardStep"):
        no_task(bare)
    with pytest.raises(ValueError, match="reward_mode should be one of"):
        SARMRewardStep(ProgressStream(model, encoder()), reward_mode="swap")
    assert step({"observation": None}) == {"observation": None}  # nothing to score: passed through


def test_processor_step_subclass(monkeypatch):
    monkeypatch.setitem(sys.modules, "lerobot", None)
    with pytest.raises(ImportError, match=r"pip install 'lerobot>=0.4'.*SARMRewardStep"):
        sarm_reward_processor_step(ProgressStream(tiny_model(), encoder()))

    class ProcessorStep(abc.ABC):  # LeRobot's abstract interface, as far as the step relies on it
        @abc.abstractmethod
        def __call__(self, transition): ...

        @abc.abstractmethod
        def transform_features(self, features): ...

    fake = types.ModuleType("lerobot.processor")
    fake.ProcessorStep = ProcessorStep
    monkeypatch.setitem(sys.modules, "lerobot", types.ModuleType("lerobot"))
    monkeypatch.setitem(sys.modules, "lerobot.processor", fake)
    step = sarm_reward_processor_step(ProgressStream(tiny_model(), encoder()), task=TASK, image_key=IMAGE)
    assert isinstance(step, ProcessorStep) and isinstance(step, SARMRewardStep)
    assert step.get_config()["reward"]["mode"] == "progress"
    assert "sarm_progress" in step(transition(frames(1)[0], 0))["info"]
