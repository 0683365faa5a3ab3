"""Save, load and share SARM models: this library's checkpoints and LeRobot's.

A checkpoint is a directory (or a Hub model repo) with
    config.json        `SARMConfig` fields plus "model_type": "sarm-rabc" and "format_version"
    model.safetensors  the state dict, loaded with strict key checking
    README.md          a model card (stage names and proportions, sizes, how to load)

`from_lerobot` reads LeRobot's SARM checkpoints (config.json with "type": "sarm", written by
`SARMRewardModel.save_pretrained`) into the same `SARM` class with LeRobot's attention layout and
window, so its outputs match LeRobot's to float32 rounding. Nothing is ever pushed unless
`push_to_hub` is called.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sarm.model.card import model_card as _card
from sarm.model.config import SARMConfig

__all__ = [
    "HubMixin",
    "checkpoint_type",
    "load_lerobot",
    "load_pretrained",
    "push_to_hub",
    "read_config",
    "save_pretrained",
]

log = logging.getLogger(__name__)

MODEL_TYPE = "sarm-rabc"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# the model class: built from a SARMConfig, with a `config` (sarm.model.network.SARM, never imported here)
M = TypeVar("M", bound=nn.Module)


# ---- resolving a directory or a Hub repo --------------------------------------------------------------
def _resolve(
    repo_or_dir: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | None = None,
) -> Path:
    """A local directory as is; anything else is a Hub model repo id, fetched as a snapshot."""
    path = Path(repo_or_dir).expanduser()
    if path.is_dir():
        return path
    text = str(repo_or_dir)
    if path.exists():
        raise FileNotFoundError(
            f"`{repo_or_dir}` is a file, not a checkpoint directory; pass the directory that holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME} (or a Hub repo id)"
        )
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep in text.replace("/", ""):
        raise FileNotFoundError(
            f"model directory `{repo_or_dir}` does not exist (not a checkpoint directory); pass the "
            f"directory that holds {CONFIG_NAME} and {WEIGHTS_NAME} (e.g. the run's model/ folder) or a "
            "Hub repo id"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                text,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"],
            )
        )
    except HFValidationError as error:
        raise FileNotFoundError(
            f"`{repo_or_dir}` is neither a local directory nor a valid Hub repo id ({_one_line(error)})"
        ) from error
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"`{text}` is not a local directory, and the Hub repo `{text}` could not be fetched and is not "
            f"in the local cache ({_one_line(error)}); check the path (a directory with {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}), the repo id or your connection"
        ) from error


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"`{path}` not found: a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"`{path}` is not valid JSON ({_one_line(error, 80)}); re-download or re-save the checkpoint"
        ) from error
    if not isinstance(data, dict):
        raise ValueError(
            f"`{path}` holds a JSON {type(data).__name__}, not a config object; re-download or re-save "
            "the checkpoint"
        )
    return data


def checkpoint_type(directory: str | Path) -> str | None:
    """The kind of checkpoint: "lerobot" for a LeRobot SARM checkpoint directory (config.json with
    `"type": "sarm"`), "sarm" for this library's, None when `directory` is not a local directory (e.g.
    a Hub repo id). A config.json that is missing or not a JSON object is a one-line error naming it."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        return None
    raw = _read_json(root / CONFIG_NAME)
    return "lerobot" if raw.get("type") == "sarm" else "sarm"


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"`{path}` not found: a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"could not read `{path}` ({error}); the file is corrupt or not safetensors: re-download it "
            "(force_download) or re-save the model"
        ) from error


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: Path, strict: bool) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append(
            "shape mismatches "
            + ", ".join(
                f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong
            )
        )
    if problems and (strict or wrong):
        raise ValueError(
            f"`{source}` does not match its config: "
            + "; ".join(problems)
            + ". The weights and config.json come from different models; re-save the checkpoint"
        )
    if problems:
        log.warning("loading `%s` with strict=False: %s", source, "; ".join(problems))
    model.load_state_dict(state, strict=False)


# ---- this library's checkpoints ------------------------------------------------------------------------
def save_pretrained(model: nn.Module, directory: str | Path, *, model_card: bool = True) -> Path:
    """Write config.json, model.safetensors and a model card; each file through a temp file + rename."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION, **model.config.to_dict()}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    _atomic(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    if model_card:
        _atomic(directory / "README.md", lambda tmp: Path(tmp).write_text(_card(model)))
    return directory


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> None:
    """`write(tmp)` then rename onto `path`, with the mode any new file gets under the user's umask
    (safetensors and mkstemp write 0600, which would survive the rename)."""
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_pretrained(
    model_class: type[M],
    repo_or_dir: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | None = None,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> M:
    """Load a model saved by `save_pretrained` from a directory or a Hub repo id (strict keys)."""
    root = _resolve(
        repo_or_dir, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    model = model_class(read_config(root))
    _load_state(model, _read_weights(root / WEIGHTS_NAME), root / WEIGHTS_NAME, strict)
    model.source = str(repo_or_dir)
    return model.to(map_location)


def read_config(directory: str | Path) -> SARMConfig:
    """The `SARMConfig` of a local checkpoint directory of this library (its config.json only)."""
    root = Path(directory)
    raw = _read_json(root / CONFIG_NAME)
    if raw.get("type") == "sarm":
        raise ValueError(
            f"`{root}` is a LeRobot SARM checkpoint (type 'sarm'); load it with SARM.from_lerobot"
        )
    if raw.get("model_type") != MODEL_TYPE:
        raise ValueError(
            f"`{root / CONFIG_NAME}` has model_type={raw.get('model_type')!r}, not {MODEL_TYPE!r}: "
            "it is not a checkpoint of this library"
        )
    version = raw.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"`{root / CONFIG_NAME}` has format_version={version}; this library reads {FORMAT_VERSION}"
        )
    raw.pop("model_type")
    try:
        return SARMConfig.from_dict(raw)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{root / CONFIG_NAME}` is not a valid SARM config: {error}") from error


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload SARM model",
    create_pr: bool = False,
) -> str:
    """Create the model repo if needed and upload config, weights and card. Returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            repo_type="model",
            revision=revision,
            commit_message=commit_message,
            create_pr=create_pr,
        )
    return str(getattr(info, "commit_url", info))


# ---- LeRobot checkpoints -----------------------------------------------------------------------------
_LEROBOT_DEFAULTS = {
    "annotation_mode": "single_stage",
    "n_obs_steps": 8,
    "frame_gap": 30,
    "max_rewind_steps": 4,
    "image_dim": 512,
    "text_dim": 512,
    "hidden_dim": 768,
    "num_heads": 12,
    "num_layers": 8,
    "max_state_dim": 32,
    "dropout": 0.1,
}
_LEROBOT_MODES = ("single_stage", "dense_only", "dual")


def _lerobot_schema(raw: dict[str, Any], head: str) -> dict[str, dict[str, list]]:
    names = raw.get(f"{head}_subtask_names")
    if not names:
        raise ValueError(f"LeRobot config has no `{head}_subtask_names`; the {head} head cannot be rebuilt")
    proportions = raw.get(f"{head}_temporal_proportions")
    if proportions is None:  # LeRobot's fallback: uniform breakpoints
        proportions = [1.0 / len(names)] * len(names)
    return {"*": {"names": list(names), "proportions": list(proportions)}}


def lerobot_config(raw: dict[str, Any]) -> SARMConfig:
    """The `SARMConfig` equivalent to a LeRobot SARM config.json (its attention layout and window)."""
    cfg = {**_LEROBOT_DEFAULTS, **{k: raw[k] for k in _LEROBOT_DEFAULTS if raw.get(k) is not None}}
    mode = cfg.pop("annotation_mode")
    if mode not in _LEROBOT_MODES:
        raise ValueError(f"LeRobot annotation_mode should be one of {list(_LEROBOT_MODES)}, but got {mode!r}")
    single = {"*": {"names": ["task"], "proportions": [1.0]}}
    schemas = {"sparse": single if mode != "dual" else _lerobot_schema(raw, "sparse")}
    if mode != "single_stage":
        schemas["dense"] = _lerobot_schema(raw, "dense")
    return SARMConfig(**cfg, num_cameras=1, attention="lerobot", window="centered", schemas=schemas)


def load_lerobot(
    model_class: type[M],
    repo_or_dir: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | None = None,
    map_location: str | torch.device = "cpu",
) -> M:
    """Load a LeRobot SARM checkpoint (`"type": "sarm"`) with LeRobot-identical outputs.

    LeRobot's two sub-models keep their parameter names (`stage_model.*`; `subtask_model.*` becomes
    `tau_model.*`). LeRobot builds both a sparse and a dense head in every mode; the head a mode does
    not use (dense in "single_stage") is left out, and every other key must match exactly.
    LeRobot normalises robot state with the dataset's mean and std before the model: pass state
    normalised the same way.
    """
    root = _resolve(
        repo_or_dir, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    raw = _read_json(root / CONFIG_NAME)
    if raw.get("type") != "sarm":
        kind = raw.get("type", raw.get("model_type"))
        hint = "; load it with SARM.from_pretrained" if kind == MODEL_TYPE else ""
        raise ValueError(
            f"`{root / CONFIG_NAME}` has type {kind!r}, but from_lerobot loads LeRobot SARM checkpoints "
            f"(type 'sarm'){hint}"
        )
    try:
        config = lerobot_config(raw)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{root / CONFIG_NAME}` is not a valid LeRobot SARM config: {error}") from error
    model = model_class(config)
    state = {}
    for key, value in _read_weights(root / WEIGHTS_NAME).items():
        key = "tau_model." + key[len("subtask_model.") :] if key.startswith("subtask_model.") else key
        head = key.split(".heads.")[1].split(".")[0] if ".heads." in key else None
        if head is not None and head not in model.config.heads:
            continue  # a head LeRobot builds but this mode never uses
        state[key] = value
    _load_state(model, state, root / WEIGHTS_NAME, strict=True)
    model.source = str(repo_or_dir)
    return model.to(map_location)


class HubMixin:
    """`save_pretrained` / `push_to_hub` / `from_pretrained` / `from_lerobot` for a model class built from a
    `SARMConfig` (as huggingface_hub's `PyTorchModelHubMixin`): the model inherits them, so this module
    never imports the model."""

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Path:
        return save_pretrained(self, directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        return push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, repo_or_dir: str | Path, **kwargs: Any):
        """Load a model saved by `save_pretrained` from a directory or a Hub repo id (strict keys)."""
        return load_pretrained(cls, repo_or_dir, **kwargs)

    @classmethod
    def from_lerobot(cls, repo_or_dir: str | Path, **kwargs: Any):
        """Load a LeRobot SARM checkpoint with LeRobot-identical outputs (see `load_lerobot`)."""
        return load_lerobot(cls, repo_or_dir, **kwargs)
