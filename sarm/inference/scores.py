"""The scores-file side of `sarm progress --format scores`: where the file goes, the checks made before
any compute, and the provenance stamped on it (LeRobot's typed scores file, draft of PRs #4553-#4555;
the layout itself is in `rabc.score_files`).

Provenance, who scored what:

    {"producer": {"package", "version", "git_commit", "git_dirty"},   the code that scored
     "model":    {"path", "weights_file", "sha256"},                   sha256 of model.safetensors
     "encoder":  the feature cache's encoder description (spec, dims, preprocessing),
     "dataset":  {"root", "fingerprint", "fingerprint_method", "codebase_version", "fps",
                  "total_episodes", "total_frames"},
     "scoring":  {"heads", "stride", "soft", "window", "n_obs_steps", "frame_gap", "stages"},
     "created":  UTC ISO 8601 time of the merge that wrote the file}

Everything but `created` is fixed when the first shard starts (`scoring_provenance`) and kept in the
parts directory, so every shard and the final merge stamp the same facts. Nothing here fails for lack
of git or of an installed package: those fields are then null.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from rabc import score_files
from rabc.files import check_output_file

__all__ = [
    "check_scores_output",
    "code_version",
    "created_now",
    "file_sha256",
    "keep_provenance",
    "scores_path",
    "scoring_provenance",
    "weights_file",
    "write_json",
]

WEIGHTS_NAME = "model.safetensors"
FINGERPRINT_METHOD = (
    "sarm.data LeRobotDataset.fingerprint: first 16 hex digits of sha256 over meta/info.json's "
    "codebase_version, fps and features, the episode indices, the episode lengths and the task texts"
)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def weights_file(source: str | None) -> Path | None:
    """The model.safetensors a model was loaded from: `<dir>/model.safetensors`, or a Hub repo's cached
    copy; None for a model built in memory or a file that cannot be found."""
    if not source:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        return (path / WEIGHTS_NAME).resolve() if (path / WEIGHTS_NAME).is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(source), WEIGHTS_NAME)
    except Exception:  # not a repo id, or no cache: unknown, recorded as null
        return None
    return Path(cached) if isinstance(cached, str) else None


def code_version() -> dict[str, Any]:
    """This package's version and, when it runs from a git checkout, the commit (never an error)."""
    try:
        version = metadata.version("sarm-rabc")
    except metadata.PackageNotFoundError:
        version = None
    here = Path(__file__).resolve().parent
    commit = _git(here, "rev-parse", "HEAD")
    dirty = None if commit is None else bool(_git(here, "status", "--porcelain", "--untracked-files=no"))
    return {"package": "sarm-rabc", "version": version, "git_commit": commit, "git_dirty": dirty}


def created_now() -> str:
    """The current UTC time, ISO 8601 with a Z (e.g. 2026-09-20T12:00:00Z)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def scoring_provenance(model, cache, *, reward_model_path: str, heads, stride: int, soft: bool) -> dict:
    """Everything but the time: model path and digest, encoder, code, dataset fingerprint, settings."""
    weights = weights_file(model.source)
    dataset = dict(cache.manifest["dataset"])
    planned = cache.manifest["episodes"]
    config = model.config
    return {
        "producer": code_version(),
        "model": {
            "path": reward_model_path,
            "weights_file": None if weights is None else str(weights),
            "sha256": None if weights is None else file_sha256(weights),
        },
        "encoder": cache.manifest["encoder"],
        "dataset": {
            **dataset,
            "fingerprint_method": FINGERPRINT_METHOD,
            "total_episodes": len(planned["episode_index"]),
            "total_frames": int(sum(planned["length"])),
        },
        "scoring": {
            "heads": list(heads),
            "stride": stride,
            "soft": soft,
            "window": config.window,
            "n_obs_steps": config.n_obs_steps,
            "frame_gap": config.frame_gap,
            "stages": {h: {t: s["names"] for t, s in config.schemas[h].items()} for h in heads},
        },
    }


def _git(where: Path, *args: str) -> str | None:
    try:
        run = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def scores_path(cache, path: str | Path | None = None, name: str = "sarm") -> Path:
    """Where the scores file goes: `path`, else `<dataset root>/scores/<name>.parquet` (LeRobot's draft)."""
    if path is not None:
        return Path(path)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"a score name should be a file name without a folder, but got {name!r}")
    return Path(cache.manifest["dataset"]["root"]) / score_files.SCORES_DIR / f"{name}.parquet"


def check_scores_output(path: Path, out_path: Path, cache, flag: str) -> None:
    """Before any compute: the scores file can be written, and not over an input or the Hub's cache."""
    from huggingface_hub import constants

    check_output_file(path, flag)
    target = path.resolve()
    hub = Path(constants.HF_HUB_CACHE).resolve()
    for what, root in (
        ("the progress file", out_path),
        ("the feature cache", cache.root),
        ("the Hub cache", hub),
    ):
        root = root.resolve()
        if target == root or root in target.parents:
            raise ValueError(
                f"the scores file `{path}` would be written into {what} `{root}`; pass {flag} with a path "
                "elsewhere"
            )
    try:  # a real write: permission bits alone do not tell (root, /proc, read-only mounts)
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"cannot write {flag} `{path}` ({error.strerror or error}: `{error.filename or path.parent}`); "
            "choose a writable location"
        ) from error


def keep_provenance(parts: Path, provenance: dict) -> None:
    """The first shard's provenance is kept; a shard scoring with other model weights is refused."""
    path = parts / "provenance.json"
    if not path.is_file():
        write_json(path, provenance)
        return
    kept = json.loads(path.read_text())
    if kept["model"] != provenance["model"]:
        raise ValueError(
            f"`{parts}` holds parts scored with the model {kept['model']}, not {provenance['model']}; "
            "delete it or write to another output path"
        )


def write_json(path: Path, value: dict) -> None:
    """Write JSON through a temporary file and a rename."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)
