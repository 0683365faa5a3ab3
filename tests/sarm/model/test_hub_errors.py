"""Checkpoint files that are wrong say so in one line; files get the user's umask; the model records
its source and the encoder it was trained on; a state-only model (no camera) works."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from sarm import SARM, SARMConfig

TINY = dict(
    hidden_dim=32, num_layers=1, num_heads=2, image_dim=16, text_dim=8, max_state_dim=4, n_obs_steps=4
)


def _tiny(**kwargs) -> SARM:
    torch.manual_seed(0)
    return SARM(SARMConfig(**TINY, **kwargs))


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    return text


# ---- config.json that is not JSON, model directories that do not exist ------------------------------------
@pytest.mark.parametrize("content", [b"not json {", b"\xff\xfe\x00garbage", b"[1, 2]"])
def test_a_config_that_is_not_a_json_object_names_the_file(tmp_path, content):
    _tiny().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_bytes(content)
    with pytest.raises(ValueError) as error:
        SARM.from_pretrained(tmp_path / "m")
    text = _one_line(error)
    assert str(tmp_path / "m" / "config.json") in text and "re-save" in text


@pytest.mark.parametrize("content", [b"{'type': 'sarm'", b"\xff\xfe\x00garbage"])
def test_a_lerobot_config_that_is_not_json_names_the_file(fixtures_dir, tmp_path, content):
    root = shutil.copytree(fixtures_dir / "sarm_checkpoint", tmp_path / "lerobot")
    (root / "config.json").write_bytes(content)
    with pytest.raises(ValueError) as error:
        SARM.from_lerobot(root)
    assert str(root / "config.json") in _one_line(error)


def test_a_lerobot_config_with_a_bad_value_names_the_file(fixtures_dir, tmp_path):
    root = shutil.copytree(fixtures_dir / "sarm_checkpoint", tmp_path / "lerobot")
    raw = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**raw, "hidden_dim": -3}))
    with pytest.raises(ValueError) as error:
        SARM.from_lerobot(root)
    assert str(root / "config.json") in _one_line(error) and "hidden_dim" in str(error.value)


@pytest.mark.parametrize("relative", ["runs/model", "nodir"])
def test_a_model_directory_that_does_not_exist_is_one_line(tmp_path, monkeypatch, relative):
    """A missing relative path that could be a Hub id: one line naming it (no multi-line hub error)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as error:
        SARM.from_pretrained(relative, cache_dir=tmp_path / "hub")
    text = _one_line(error)
    assert f"`{relative}`" in text and "config.json" in text


def test_an_absolute_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        SARM.from_pretrained(tmp_path / "runs" / "sarm" / "model")
    text = _one_line(error)
    assert "does not exist" in text and str(tmp_path / "runs" / "sarm" / "model") in text


def test_sarm_config_load_of_a_non_json_file_names_it(tmp_path):
    (tmp_path / "c.json").write_text("nope")
    with pytest.raises(ValueError, match="c.json"):
        SARMConfig.load(tmp_path / "c.json")


# ---- umask ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o027])
def test_saved_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        _tiny().save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert not list((tmp_path / "m").glob(".*.tmp"))


# ---- what the model records --------------------------------------------------------------------------------
def test_loaders_record_the_source_the_user_gave(fixtures_dir, tmp_path):
    assert _tiny().source is None
    _tiny().save_pretrained(tmp_path / "m")
    assert SARM.from_pretrained(tmp_path / "m").source == str(tmp_path / "m")
    assert SARM.from_lerobot(fixtures_dir / "sarm_checkpoint").source == str(fixtures_dir / "sarm_checkpoint")


def test_the_encoder_is_saved_and_old_checkpoints_without_it_still_load(tmp_path):
    encoder = {"spec": "pixels:16", "image_dim": 16, "text_dim": 8}
    model = _tiny(encoder=encoder)
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["encoder"] == encoder
    assert SARM.from_pretrained(tmp_path / "m").config.encoder == encoder
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    del raw["encoder"]  # a checkpoint written before the field existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(raw))
    assert SARM.from_pretrained(tmp_path / "m").config.encoder is None
    with pytest.raises(ValueError, match="encoder"):
        SARMConfig(**TINY, encoder={"image_dim": 16})


# ---- state-only -------------------------------------------------------------------------------------------
def test_a_state_only_model_sees_text_and_state(tmp_path):
    model = _tiny(num_cameras=0)
    assert not any("visual_proj" in k or "first_pos" in k for k in model.state_dict())
    text, video = torch.randn(2, 8), torch.zeros(2, 7, 0, 16)
    state = torch.randn(2, 7, 3)
    out = model.predict(text, video, state)
    assert out.progress.shape == (2, 7) and torch.isfinite(out.progress).all()
    other = model.predict(text, video, state + 1.0)
    assert not torch.equal(out.progress, other.progress) or not torch.equal(
        out.stage_probs, other.stage_probs
    )
    head = model(text, video, state, stage_prior={"sparse": torch.zeros(2, 7, dtype=torch.long)})["sparse"]
    (head.stage_logits.sum() + head.tau.sum()).backward()  # every parameter takes part (DDP)
    assert all(p.grad is not None for p in model.parameters())
    model.save_pretrained(tmp_path / "m")
    again = SARM.from_pretrained(tmp_path / "m")
    assert torch.equal(again.predict(text, video, state).progress, out.progress)


def test_a_state_only_model_needs_state():
    with pytest.raises(ValueError, match="state-only.*max_state_dim=0"):
        SARMConfig(**{**TINY, "max_state_dim": 0}, num_cameras=0)
    model = _tiny(num_cameras=0)
    with pytest.raises(ValueError, match="state-only.*state_features"):
        model.predict(torch.randn(1, 8), torch.zeros(1, 5, 0, 16))
    with pytest.raises(ValueError, match="state-only.*0 dimensions"):
        model.predict(torch.randn(1, 8), torch.zeros(1, 5, 0, 16), torch.zeros(1, 5, 0))
    with pytest.raises(ValueError, match="num_cameras"):
        SARMConfig(**TINY, num_cameras=-1)
