"""`sarm info`: summarise a dataset (episodes, frames, cameras, missing and undecodable videos)."""

from __future__ import annotations

from sarm.cli.common import add_dataset_args, open_from_args


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a dataset (episodes, frames, cameras, missing and undecodable videos)",
        formatter_class=fmt,
    )
    add_dataset_args(p)
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="do not open each video file to check that its first frame decodes (one frame per file)",
    )
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
        if len(missing):
            print(f"    {ds.missing_report(camera)}")
        if not args.no_probe:
            bad = ds.probe_videos(camera)
            print(
                f"  {camera}: {len(bad)} video file(s) cannot be decoded" + (f" {sorted(bad)}" if bad else "")
            )
            for episode, reason in list(bad.items())[:20]:
                print(f"    episode {episode}: {reason}")
    if not ds.camera_keys:
        print("  no camera: build a state-only cache with `sarm features ... --state-only`")
    print(f"  tasks: {ds.task_texts}")
    return 0
