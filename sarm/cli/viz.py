"""`sarm viz`: per-episode PNGs of progress, stage probabilities and a strip of frames."""

from __future__ import annotations

from sarm.cli.common import add_dataset_args, open_from_args, parse_episodes


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "viz", help="per-episode PNGs: progress, stage probabilities, a strip of frames", formatter_class=fmt
    )
    p.add_argument("progress", help="progress parquet from `sarm progress`")
    p.add_argument("--out", default="sarm_viz", help="output directory")
    p.add_argument("--episodes", help="episodes to plot, e.g. 0-3,7 (default: --num-episodes at random)")
    p.add_argument(
        "--num-episodes", type=int, default=5, help="episodes to plot when --episodes is not given"
    )
    add_dataset_args(p, required=False)
    p.add_argument("--camera", help="camera for the frame strip (default: the first)")
    p.add_argument("--num-frames", type=int, default=6, help="frames in the strip")
    p.set_defaults(run=run)


def run(args) -> int:
    from sarm.viz import plot_progress_file

    ds = open_from_args(args) if args.dataset else None
    paths = plot_progress_file(
        args.progress,
        args.out,
        episodes=parse_episodes(args.episodes),
        num_episodes=args.num_episodes,
        dataset=ds,
        camera=args.camera,
        num_frames=args.num_frames,
    )
    print("\n".join(str(p) for p in paths))
    return 0
