"""Helpers shared by the `sarm` subcommands: dataset arguments, opening a dataset, episode ranges."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

_KEYS_EXAMPLE = '\'{"observation.state": "state", "observation.images.top": "cam_top"}\''
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_keys(text: str | None, flag: str = "--keys") -> dict[str, str] | None:
    """The `--keys` JSON object {canonical name: your name}; anything else names the flag and the form."""
    if not text:
        return None
    try:
        keys = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{flag} is not valid JSON ({e}); expected an object such as {_KEYS_EXAMPLE}"
        ) from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ValueError(
            f"{flag} should be a JSON object of column names such as {_KEYS_EXAMPLE}, but got {text!r}"
        )
    return keys


def open_from_args(args):
    from sarm.data import open_dataset

    return open_dataset(
        args.dataset,
        revision=getattr(args, "revision", None),
        keys=parse_keys(getattr(args, "keys", None)),
        missing_videos=getattr(args, "missing_videos", "error"),
        videos_dir=getattr(args, "videos_dir", None),
    )


def parse_episodes(
    text: str | None, flag: str = "--episodes", available: Sequence[int] | None = None
) -> list[int] | None:
    """Episodes from "0-9,15" (ranges inclusive); None when `text` is empty.

    Each part is a non-negative number or an increasing range `a-b`; errors name `flag`. With
    `available` (the dataset's episode indices), episodes outside it are an error too.
    """
    if text is None or not text.strip():
        return None
    out: list[int] = []
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            why = "episode indices are non-negative" if part.strip().startswith("-") else "not a number"
            raise ValueError(
                f"{flag}: {part.strip()!r} is not an episode or a range ({why}); write non-negative "
                f"episode indices and ranges such as {flag} 0-9,15"
            )
        lo, hi = int(match[1]), int(match[2] or match[1])
        if hi < lo:
            raise ValueError(f"{flag}: the range {part.strip()} is reversed; write it as {flag} {hi}-{lo}")
        out.extend(range(lo, hi + 1))
    out = list(dict.fromkeys(out))  # order kept, repeats dropped
    if available is not None:
        have = {int(e) for e in available}
        unknown = [e for e in out if e not in have]
        if unknown:
            shown = f"{min(have)}..{max(have)}, {len(have)} episodes" if have else "no episodes"
            raise ValueError(
                f"{flag}: episodes {unknown[:20]}{' ...' if len(unknown) > 20 else ''} are not in the "
                f"dataset (episode_index {shown}); see `sarm info`"
            )
    return out


def add_dataset_args(p, required: bool = True) -> None:
    p.add_argument(
        "dataset" if required else "--dataset",
        help="LeRobot dataset root (codebase v2.1 or v3.0) "
        "or a Hub repo id (resolved to a local snapshot with huggingface_hub)",
    )
    p.add_argument("--revision", help="Hub revision when the dataset is a repo id")
    p.add_argument(
        "--keys",
        help="JSON map from canonical to your column names, e.g. "
        '\'{"observation.state": "state"}\', for datasets with other column names',
    )
    p.add_argument(
        "--missing-videos",
        choices=("error", "skip"),
        default="error",
        help="episodes whose video file is missing or cannot be decoded (empty, truncated, not a video): "
        "fail naming them (default), or skip them and report how many",
    )
    p.add_argument(
        "--videos-dir",
        help="folder that holds the dataset's videos (what its videos/ folder normally holds), "
        "when they are kept elsewhere or in a folder named differently",
    )


def add_engine_args(p) -> None:
    """`--engine {local,ray}` and the Ray flags (`sarm features`, `sarm progress`)."""
    g = p.add_argument_group("engine", "where the work runs (docs/scale.md); ray needs the [ray] extra")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default; --shard splits the work by hand); ray: tasks decode and "
        "actors encode / score on a Ray cluster, retried when a worker is lost",
    )
    g.add_argument(
        "--ray-address",
        help="Ray to use: default starts one on this machine; 'auto' joins the running cluster; or the "
        "head's address",
    )
    g.add_argument("--num-workers", type=int, help="encoder / scorer actors (default: GPUs, or 2 without)")
    g.add_argument(
        "--num-gpus-per-worker",
        type=float,
        help="GPUs per actor (default: 1 if the cluster has GPUs, else 0)",
    )
    g.add_argument("--num-cpus-per-decoder", type=float, default=1.0, help="CPUs per decoding task")
    g.add_argument(
        "--max-retries", type=int, default=3, help="restarts of a unit whose worker died before it fails"
    )
    g.add_argument(
        "--frames-per-task", type=int, default=512, help="frames per decoding task (a multiple of 64)"
    )


def engine_options(args):
    """The `RayOptions` of `--engine ray` (None for local); Ray flags without it are an error."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("ray_address", "num_workers", "num_gpus_per_worker")
        if getattr(args, name) is not None
    ]
    if args.engine == "local":
        if given:
            raise ValueError(f"{', '.join(given)} apply to --engine ray only; add --engine ray or drop them")
        return None
    if getattr(args, "shard", None):
        raise ValueError("--engine ray balances the episodes itself; drop --shard")
    from sarm.scale.engine import RayOptions

    return RayOptions(
        address=args.ray_address,
        num_workers=args.num_workers,
        num_gpus_per_worker=args.num_gpus_per_worker,
        num_cpus_per_decoder=args.num_cpus_per_decoder,
        max_retries=args.max_retries,
        frames_per_task=args.frames_per_task,
    )
