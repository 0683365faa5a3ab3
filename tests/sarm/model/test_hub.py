"""Checkpoints: LeRobot parity against LeRobot 0.6.1's own outputs, save/load round trips, Hub paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sarm import SARM, SARMConfig

TINY = dict(
    hidden_dim=32,
    num_layers=1,
    num_heads=2,
    image_dim=16,
    text_dim=8,
    max_state_dim=4,
    n_obs_steps=4,
    max_rewind_steps=2,
)


def _io(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(fixtures_dir / "sarm_forward_io.safetensors")


@pytest.mark.parametrize("head", ["sparse", "dense"])
def test_from_lerobot_matches_lerobot_outputs(fixtures_dir, head):
    io = _io(fixtures_dir)
    model = SARM.from_lerobot(fixtures_dir / "sarm_checkpoint")
    out = model.predict(
        io["text_features"], io["video_features"], io["state_features"], io["lengths"], head=head
    )
    # every slot, padded ones included, as LeRobot's calculate_rewards(return_all_frames=True) returns them
    torch.testing.assert_close(out.progress, io[f"progress_{head}"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.stage_probs, io[f"stage_probs_{head}"], atol=1e-5, rtol=0)


def test_from_lerobot_reads_lerobot_config(fixtures_dir):
    model = SARM.from_lerobot(fixtures_dir / "sarm_checkpoint")
    c = model.config
    assert (c.attention, c.window, c.hidden_dim, c.num_layers, c.num_heads) == (
        "lerobot",
        "centered",
        64,
        2,
        4,
    )
    assert c.num_slots == 13 and c.current_slot == 4
    sparse = c.task_schemas("sparse").schema_for("any task text")
    dense = c.task_schemas("dense").schema_for("any task text")
    assert sparse.names == ("reach", "grasp", "place") and sparse.proportions == (0.2, 0.3, 0.5)
    assert dense.names == ("w", "x", "y", "z") and dense.proportions == (0.1, 0.4, 0.3, 0.2)


def _copy_checkpoint(fixtures_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(fixtures_dir / "sarm_checkpoint", target)
    return target


def test_from_lerobot_rejects_other_types(fixtures_dir, tmp_path):
    ckpt = _copy_checkpoint(fixtures_dir, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    config["type"] = "act"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"type 'act'.*LeRobot SARM checkpoints"):
        SARM.from_lerobot(ckpt)


def test_from_lerobot_names_missing_keys(fixtures_dir, tmp_path):
    ckpt = _copy_checkpoint(fixtures_dir, tmp_path)
    state = load_file(ckpt / "model.safetensors")
    del state["subtask_model.first_pos"], state["stage_model.heads.sparse.bias"]
    save_file(state, ckpt / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"missing keys \['stage_model.heads.sparse.bias', 'tau_model.first_pos'\]"
    ):
        SARM.from_lerobot(ckpt)


def test_corrupt_weights_say_so(fixtures_dir, tmp_path):
    ckpt = _copy_checkpoint(fixtures_dir, tmp_path)
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="corrupt or not safetensors"):
        SARM.from_lerobot(ckpt)


def test_lerobot_checkpoint_survives_our_save_and_load(fixtures_dir, tmp_path):
    io = _io(fixtures_dir)
    model = SARM.from_lerobot(fixtures_dir / "sarm_checkpoint")
    model.save_pretrained(tmp_path / "ours")
    again = SARM.from_pretrained(tmp_path / "ours")
    for head in ("sparse", "dense"):
        a = model.predict(
            io["text_features"], io["video_features"], io["state_features"], io["lengths"], head=head
        )
        b = again.predict(
            io["text_features"], io["video_features"], io["state_features"], io["lengths"], head=head
        )
        assert torch.equal(a.progress, b.progress) and torch.equal(a.stage_probs, b.stage_probs)


def _tiny(**overrides) -> SARM:
    torch.manual_seed(0)
    schemas = {
        "sparse": {"*": {"names": ["a", "b"], "proportions": [0.4, 0.6]}},
        "dense": {"*": {"names": ["x", "y", "z"], "proportions": [0.2, 0.3, 0.5]}},
    }
    return SARM(SARMConfig(**{**TINY, "schemas": schemas, **overrides}))


def _inputs(b=3, t=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 8, generator=g),
        torch.randn(b, t, 16, generator=g),
        torch.randn(b, t, 3, generator=g),
        torch.tensor([t, t - 2, 1][:b]),
    )


def test_save_load_round_trip_is_identical(tmp_path):
    model = _tiny()
    model.save_pretrained(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    again = SARM.from_pretrained(tmp_path / "m")
    assert again.config == model.config
    args = _inputs()
    for head in ("sparse", "dense"):
        assert torch.equal(model.predict(*args, head=head).progress, again.predict(*args, head=head).progress)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "x (0.2), y (0.3), z (0.5)" in card and f"{model.num_parameters():,}" in card


def test_from_pretrained_is_strict(tmp_path):
    _tiny().save_pretrained(tmp_path / "m")
    state = load_file(tmp_path / "m" / "model.safetensors")
    state["extra.weight"] = torch.zeros(1)
    del state["tau_model.first_pos"]
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"missing keys \['tau_model.first_pos'\]; unexpected keys \['extra.weight'\]"
    ):
        SARM.from_pretrained(tmp_path / "m")


def test_from_pretrained_points_lerobot_checkpoints_to_from_lerobot(fixtures_dir):
    with pytest.raises(ValueError, match="SARM.from_lerobot"):
        SARM.from_pretrained(fixtures_dir / "sarm_checkpoint")
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        SARM.from_pretrained("./does/not/exist")


def test_from_pretrained_resolves_hub_repo_from_local_cache(tmp_path):
    """The real huggingface_hub path, offline: a repo id resolved from a populated cache."""
    model = _tiny()
    commit = "0" * 40
    snapshot = tmp_path / "cache" / "models--someone--tiny-sarm" / "snapshots" / commit
    model.save_pretrained(snapshot)
    refs = tmp_path / "cache" / "models--someone--tiny-sarm" / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    again = SARM.from_pretrained("someone/tiny-sarm", cache_dir=tmp_path / "cache", local_files_only=True)
    args = _inputs()
    assert torch.equal(model.predict(*args).progress, again.predict(*args).progress)
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        SARM.from_pretrained("someone/other", cache_dir=tmp_path / "cache", local_files_only=True)


def test_push_to_hub_uploads_a_checkpoint(monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["config"] = json.loads((Path(folder_path) / "config.json").read_text())
            return type("Info", (), {"commit_url": f"https://hf.co/{repo_id}/commit/1"})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = _tiny().push_to_hub("me/sarm", private=True, token="t")
    assert url == "https://hf.co/me/sarm/commit/1"
    assert calls["create"] == ("me/sarm", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]
    assert calls["config"]["model_type"] == "sarm-rabc" and calls["token"] == "t"
