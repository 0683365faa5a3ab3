"""`rabc episodes` and `rabc curate`: one quality row per episode, and drop lists from explicit rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from rabc.cli.options import is_weights_file, scoring_options, weights_from_table
from rabc.files import atomic_write
from rabc.progress_io import read_progress

SCORE_BAR_DELAY_S = 1.0  # `rabc episodes` / `rabc curate` show their scoring bar only when it runs longer


def add_parsers(sub) -> None:
    p = sub.add_parser("episodes", help="one quality row per episode, worst first (table, parquet/csv, JSON)")
    scoring_options(p)
    p.add_argument("-o", "--output", help="write every episode to .parquet or .csv")
    p.add_argument("--json", help="write every episode as a JSON list")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table (default 20)")
    p.set_defaults(run=_episodes)

    p = sub.add_parser("curate", help="a drop list from explicit rules, with reasons and LeRobot's command")
    scoring_options(p)
    p.add_argument(
        "--drop",
        action="append",
        required=True,
        help="predicted-failures | worst:K | below:SCORE | max-drop:X | list:FILE (repeatable)",
    )
    p.add_argument("-o", "--output", required=True, help="output JSON")
    p.add_argument("--repo-id", default="<repo_id>", help="dataset repo id for the lerobot-edit-dataset line")
    p.set_defaults(run=_curate)


def _scores(args):
    from rabc.episodes import score_episodes

    if is_weights_file(Path(args.progress)):
        raise ValueError("PROGRESS should be a progress file (scores need the progress itself), not weights")
    if args.chunk_size is None:
        raise ValueError("--chunk-size is required: the policy's action chunk length")
    table = read_progress(args.progress, heads=[args.head], sort=args.sort, progress_bar=True)
    print(table.format_line(), file=sys.stderr)
    # two vectorised stages (~12 s + ~17 s at 1.3e8 rows): a bar on stderr only past SCORE_BAR_DELAY_S
    with tqdm(total=2, desc="score episodes", unit="stage", delay=SCORE_BAR_DELAY_S) as bar:
        bar.set_postfix_str("RA-BC weights", refresh=False)
        w = weights_from_table(table, args)
        bar.set_postfix_str("per-episode scores", refresh=False)
        bar.update()
        scores = score_episodes(
            table,
            args.chunk_size,
            head=args.head,
            tasks=read_tasks(args.tasks) if args.tasks else None,
            stall_threshold=args.stall_threshold,
            success_final=args.success_final,
            success_last_third=args.success_last_third,
            weights=w,
        )
        bar.update()
    return scores


def read_tasks(path: str) -> dict[int, str]:
    """`--tasks FILE`: a JSON object {episode_index: task}."""
    try:
        data = json.loads(Path(path).read_text())
        return {int(k): str(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(
            f"--tasks `{path}` should be a JSON object {{episode_index: task}} ({err})"
        ) from None


def _episodes(args) -> int:
    scores = _scores(args)
    rows = scores.rows()
    head = (
        "episode",
        "task",
        "frames",
        "len_pct",
        "final",
        "max",
        "max_drop",
        "stalled",
        "weight",
        "zero_w",
        "success",
        "score",
    )
    print(" ".join(f"{h:>9}" for h in head))
    fmt = lambda v: "nan" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in rows[: args.top]:
        values = [
            r["episode_index"],
            (r["task"] or "-")[:9],
            r["num_frames"],
            r["length_percentile"],
            r["final_progress"],
            r["max_progress"],
            r["max_drop"],
            r["stalled_fraction"],
            r["mean_weight"],
            r["zero_weight_fraction"],
            r["predicted_success"],
            r["score"],
        ]
        print(" ".join(f"{fmt(v):>9}" for v in values))
    failures = sum(not r["predicted_success"] for r in rows)
    print(
        f"\n{len(rows)} episodes, worst first ({min(args.top, len(rows))} shown); "
        f"{failures} predicted failures by the paper's rule"
    )
    for path in (args.output, args.json):
        if path:
            scores.write(path if path == args.output else Path(path).with_suffix(".json"))
            print(f"wrote {path}")
    return 0


def _curate(args) -> int:
    from rabc.curation import curate

    result = curate(_scores(args), args.drop, repo_id=args.repo_id)
    result = {"progress": str(args.progress), "chunk_size": args.chunk_size, **result}
    text = json.dumps(result, indent=1)
    atomic_write(args.output, lambda tmp: tmp.write_text(text))
    print(f"drop {len(result['drop'])} of {result['num_episodes']} episodes by {', '.join(args.drop)}")
    if result["lerobot_command"]:
        print(f"to delete them in LeRobot: {result['lerobot_command']}")
    print(
        f"to weight them 0 instead: rabc weights {args.progress} --chunk-size {args.chunk_size} "
        f"--drop-episodes {args.output} -o rabc_weights.parquet"
    )
    print(f"wrote {args.output}")
    return 0
