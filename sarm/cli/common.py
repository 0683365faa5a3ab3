"""Helpers shared by the `sarm` subcommands: dataset arguments, opening a dataset, episode ranges."""

from __future__ import annotations

import json


def open_from_args(args):
    from sarm.data import open_dataset

    keys = json.loads(args.keys) if getattr(args, "keys", None) else None
    return open_dataset(
        args.dataset,
        revision=getattr(args, "revision", None),
        keys=keys,
        missing_videos=getattr(args, "missing_videos", "error"),
    )


def parse_episodes(text: str | None) -> list[int] | None:
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
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
        help="episodes whose video file is missing: fail listing them (default) or skip them",
    )
