"""Who scored what: the provenance `sarm progress --format scores` stamps on LeRobot's typed scores file.

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
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["code_version", "created_now", "file_sha256", "scoring_provenance", "weights_file"]

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
