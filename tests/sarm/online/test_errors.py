"""ProgressStream refuses what it cannot score, each time naming the fix."""

from __future__ import annotations

import numpy as np
import pytest

from sarm.features.encoders import PixelEncoder
from sarm.online import ProgressStream
from tests.sarm.online.tiny import TASK, encoder, tiny_model


def test_a_centered_window_model_is_refused():
    with pytest.raises(ValueError, match=r"window='past'.*sarm train --window past"):
        ProgressStream(tiny_model(window="centered"), encoder())


def test_step_before_reset():
    stream = ProgressStream(tiny_model(), encoder(), num_envs=2)
    stream.reset(TASK, env_ids=[1])
    with pytest.raises(
        RuntimeError, match=r"environment\(s\) \[0\] were never reset: call stream.reset\(task\)"
    ):
        stream.step(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 2)))
    stream.step(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 2)), env_ids=[1])  # env 1 alone is fine


def test_wrong_frame_shape_and_num_envs_mismatch():
    stream = ProgressStream(tiny_model(), encoder(), num_envs=2)
    stream.reset(TASK)
    with pytest.raises(ValueError, match=r"frames should be uint8 RGB \(2, H, W, 3\)"):
        stream.step(np.zeros((2, 3, 8, 8), np.uint8), np.zeros((2, 2)))  # channels first
    with pytest.raises(ValueError, match=r"frames should be uint8 RGB \(2, H, W, 3\)"):
        stream.step(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 2)))  # one env too many
    with pytest.raises(ValueError, match=r"video should be \(2, 1, 8\).*num_envs=2"):
        stream.step_features(np.zeros((2, 1, 16)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"env_ids should be distinct environment numbers in \[0, 2\)"):
        stream.reset(TASK, env_ids=[2])
    with pytest.raises(ValueError, match=r"state should be \(2, s\)"):
        stream.step_features(np.zeros((2, 1, 8)), np.zeros((2, 7)))
    with pytest.raises(ValueError, match=r"pass state=\(num_envs, s\)"):
        stream.step_features(np.zeros((2, 1, 8)))  # the model was trained with state statistics


def test_no_encoder_no_text_and_another_encoder():
    model = tiny_model(encoder=PixelEncoder(8).describe())
    with pytest.raises(ValueError, match="neither an encoder nor text_features"):
        ProgressStream(model).reset(TASK)
    with pytest.raises(ValueError, match=r"has no encoder, so it cannot encode frames"):
        ProgressStream(model, text_features={TASK: np.zeros(8)}).step(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(KeyError, match="no feature for task"):
        ProgressStream(model, text_features={"other": np.zeros(8)}).reset(TASK)
    other = PixelEncoder(8, seed=3)
    with pytest.raises(
        ValueError, match=r"trained on features of encoder `pixels:8`.*allow_other_encoder=True"
    ):
        ProgressStream(model, other)
    ProgressStream(model, other, allow_other_encoder=True)
    with pytest.raises(ValueError, match="num_envs should be a positive integer value"):
        ProgressStream(model, num_envs=0)
