"""`rabc advantages`: returns-to-go, chunk advantages and advantage labels for offline RL (docs/rl.md)."""

from __future__ import annotations

import sys

from rabc.advantages import BASELINES, progress_advantages
from rabc.cli.episodes import read_tasks
from rabc.progress_io import read_progress


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "advantages",
        help="per-frame return_to_go, advantage and advantage_label from progress (offline RL, RECAP)",
    )
    p.add_argument("progress", help="progress file (sarm_progress.parquet or scores/<name>.parquet)")
    p.add_argument(
        "--chunk-size", type=int, required=True, help="N: advantages over the policy's action chunk"
    )
    p.add_argument("--gamma", type=float, default=1.0, help="discount of the return-to-go (default 1)")
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        default="task",
        help="subtract the mean chunk delta of the frame's task (default; --tasks), stage, or nothing",
    )
    p.add_argument("--tasks", help="JSON {episode_index: task}: per-task baselines and label thresholds")
    p.add_argument(
        "--quantile",
        type=float,
        default=0.7,
        help="label 1 above this quantile of the group's advantages (default 0.7: the top 30%%)",
    )
    p.add_argument("--head", choices=["sparse", "dense"], default="sparse", help="progress column to use")
    p.add_argument(
        "--sort", action="store_true", help="sort rows by index instead of rejecting unsorted files"
    )
    p.add_argument("-o", "--output", required=True, help="output .parquet")
    p.set_defaults(run=_advantages)


def _advantages(args) -> int:
    table = read_progress(
        args.progress, heads=[args.head], sort=args.sort, progress_bar=True, extras=args.baseline == "stage"
    )
    print(table.format_line(), file=sys.stderr)
    adv = progress_advantages(
        table,
        args.chunk_size,
        head=args.head,
        gamma=args.gamma,
        baseline=args.baseline,
        tasks=read_tasks(args.tasks) if args.tasks else None,
        quantile=args.quantile,
    )
    for name, g in adv.info["groups"].items():
        print(
            f"{name}: {g['frames']} frames, baseline {g['baseline']:+.4f}, label 1 above "
            f"{g['threshold']:+.4f} ({g['positive']} frame(s))"
        )
    unknown = int((~adv.labelled).sum())
    if unknown:
        print(f"{unknown} frame(s) have unknown progress: NaN advantage, null label")
    adv.write(args.output)
    print(f"wrote {args.output} ({len(adv)} frames)")
    return 0
