"""`sarm info`: summarise a dataset (episodes, frames, cameras, missing videos)."""

from __future__ import annotations

from sarm.cli.common import add_dataset_args, open_from_args


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "info", help="summarise a dataset (episodes, frames, cameras, missing videos)", formatter_class=fmt
    )
    add_dataset_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    ds = open_from_args(args)
    print(ds)
    for camera in ds.camera_keys:
        missing = ds.missing_videos(camera)
        print(
            f"  {camera}: {len(missing)} episode(s) without video"
            + (f" {missing.tolist()}" if len(missing) else "")
        )
    print(f"  tasks: {ds.task_texts}")
    return 0
