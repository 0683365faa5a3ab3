"""`rabc` command line: weights and diagnostics from a progress file.

rabc weights sarm_progress.parquet --chunk-size 50 --kappa auto -o rabc_weights.parquet
rabc diagnose sarm_progress.parquet --chunk-size 50 --plot rabc_diagnostics.png
rabc demo --out rabc_demo        # both, on a small progress file shipped with the package
rabc episodes sarm_progress.parquet --chunk-size 50 -o episodes.csv          # scores, worst first
rabc curate sarm_progress.parquet --chunk-size 50 --drop worst:5 -o drop.json
rabc weights sarm_progress.parquet --chunk-size 50 --drop-episodes drop.json -o rabc_weights.parquet
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from rabc.diagnostics import diagnose
from rabc.files import atomic_write, check_output_dir, check_output_file, refuse_overwrite
from rabc.progress_io import read_progress
from rabc.weights import DEFAULT_TARGET_MEAN_WEIGHT, STATS, RABCWeights

EXAMPLE_PROGRESS = "data/example_progress.parquet"
SCORE_BAR_DELAY_S = 1.0  # `rabc episodes` / `rabc curate` show their scoring bar only when it runs longer


# Python argument names in the library's messages -> the CLI flags a user of `rabc` types
_FLAGS = (
    (re.compile(r"\bpass sort=True \(CLI: --sort\)"), "pass --sort"),
    (re.compile(r"\bfallback_weight=None\b"), "--fallback-weight none"),
    *(
        (re.compile(rf"\b{name}=(['\"]?)([^\s,;)'\"]*)\1"), rf"{flag} \2")
        for name, flag in (
            ("fallback_weight", "--fallback-weight"),
            ("chunk_size", "--chunk-size"),
            ("kappa", "--kappa"),
            ("target_mean_weight", "--target-mean-weight"),
            ("target", "--target-mean-weight"),
            ("head", "--head"),
            ("stats", "--stats"),
        )
    ),
    (re.compile(r"\bfallback_weight\b"), "--fallback-weight"),
    (re.compile(r"\bchunk_size\b"), "--chunk-size"),
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_paths(args)  # before any compute: a bad output path fails in a second, not after the work
        return args.run(args)
    except (ValueError, KeyError, OSError, ImportError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"rabc {args.command}: error: {cli_terms(message)}", file=sys.stderr)
        return 2


def cli_terms(message: str) -> str:
    """A library message with Python argument names (`fallback_weight=None`) turned into CLI flags."""
    for pattern, flag in _FLAGS:
        message = pattern.sub(flag, message)
    return " ".join(message.split())


def _check_paths(args) -> None:
    """Refuse outputs that are directories, unwritable, or one of the inputs; all before any work."""
    if args.command == "demo":
        check_output_dir(args.out, "--out")
        return
    outputs = {
        "weights": lambda: {"-o/--output": args.output},
        "diagnose": lambda: {"--plot": args.plot, "--json": args.json},
        "episodes": lambda: {"-o/--output": args.output, "--json": args.json},
        "curate": lambda: {"-o/--output": args.output},
    }[args.command]()
    refuse_overwrite({"PROGRESS": args.progress}, outputs)
    for flag, path in outputs.items():
        if path is not None:
            check_output_file(path, flag)


def _weights(args) -> int:
    w = _build(args)
    out = w.save(args.output)
    report = diagnose(w, target_mean_weight=args.target_mean_weight)
    print(report)
    print(f"\nwrote {out} ({len(w):,} frames, kappa {w.kappa:.4g}, mean weight {w.mean_weight:.3f})")
    return 0


def _diagnose(args) -> int:
    w = _build(args)
    report = diagnose(w, target_mean_weight=args.target_mean_weight, plot=args.plot, top_episodes=args.top)
    print(report)
    if args.json:
        text = json.dumps(
            {
                "metrics": report.metrics,
                "verdict": report.verdict,
                "kappa_suggestions": report.kappa_suggestions,
            },
            indent=2,
        )
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.json}")
    return 0


def _scores(args):
    from rabc.episodes import score_episodes

    if _is_weights_file(Path(args.progress)):
        raise ValueError("PROGRESS should be a progress file (scores need the progress itself), not weights")
    if args.chunk_size is None:
        raise ValueError("--chunk-size is required: the policy's action chunk length")
    table = read_progress(args.progress, heads=[args.head], sort=args.sort, progress_bar=True)
    print(table.format_line(), file=sys.stderr)
    # two vectorised stages (~12 s + ~17 s at 1.3e8 rows): a bar on stderr only past SCORE_BAR_DELAY_S
    with tqdm(total=2, desc="score episodes", unit="stage", delay=SCORE_BAR_DELAY_S) as bar:
        bar.set_postfix_str("RA-BC weights", refresh=False)
        w = _from_table(table, args)
        bar.set_postfix_str("per-episode scores", refresh=False)
        bar.update()
        scores = score_episodes(
            table,
            args.chunk_size,
            head=args.head,
            tasks=_tasks(args.tasks) if args.tasks else None,
            stall_threshold=args.stall_threshold,
            success_final=args.success_final,
            success_last_third=args.success_last_third,
            weights=w,
        )
        bar.update()
    return scores


def _tasks(path: str) -> dict[int, str]:
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


def _demo(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    example = resources.files("rabc").joinpath(EXAMPLE_PROGRESS)
    with resources.as_file(example) as path:
        print(f"progress file: {path} (synthetic, 24 episodes; see examples/make_example_progress.py)\n")
        before = RABCWeights.from_progress(path, chunk_size=args.chunk_size, kappa=0.01)
        first = diagnose(before, plot=out / "diagnostics_kappa_0.01.png")
        print(first)
        after = before.with_kappa("auto")
        report = diagnose(after, plot=out / "diagnostics_kappa_auto.png")
        print(f"\n--- with kappa auto ---\n{report}")
        after.save(out / "rabc_weights.parquet")
    print(
        f"\nLeRobot's default kappa 0.01 gives mean weight {before.mean_weight:.3f} "
        f"({first.verdict}); "
        f"kappa auto = {after.kappa:.4g} gives {after.mean_weight:.3f} ({report.verdict})."
    )
    print(f"wrote {out / 'rabc_weights.parquet'} and the plots {out}/diagnostics_kappa_*.png")
    return 0


def _build(args) -> RABCWeights:
    source = Path(args.progress)
    if _is_weights_file(source):
        w = RABCWeights.load(source)
        return w if args.kappa is None else w.with_kappa(_kappa(args.kappa), args.target_mean_weight)
    if args.chunk_size is None:
        raise ValueError("--chunk-size is required with a progress file: the policy's action chunk length")
    table = read_progress(source, heads=[args.head], sort=args.sort, progress_bar=True)
    print(table.format_line(), file=sys.stderr)
    drop = getattr(args, "drop_episodes", None)
    if drop:
        from rabc.curation import read_drop_list

        drop = read_drop_list(drop)
    return _from_table(table, args, drop)


def _from_table(table, args, drop=None) -> RABCWeights:
    return RABCWeights.from_progress(
        table,
        args.chunk_size,
        kappa=0.01 if args.kappa is None else _kappa(args.kappa),
        head=args.head,
        stats=args.stats,
        fallback_weight=args.fallback_weight,
        target_mean_weight=args.target_mean_weight,
        drop_episodes=drop,
    )


def _kappa(value: str) -> float | str:
    return value if value == "auto" else float(value)


def _is_weights_file(path: Path) -> bool:
    try:
        return b"rabc" in (pq.read_schema(path).metadata or {})
    except (OSError, pa.ArrowInvalid):  # missing or unreadable: the progress reader gives the precise error
        return False


def _kappa_arg(text: str) -> str:
    if text != "auto":
        try:
            float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"kappa should be a number or 'auto', got {text!r}") from None
    return text


def _fallback_arg(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"should be a number in [0, 1] (RA-BC weights lie in [0, 1]) or 'none', got {text!r}"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rabc", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "progress",
            help="progress file (LeRobot's sarm_progress.parquet, or its scores/<name>.parquet), a dataset "
            "root holding one, or a weights file",
        )
        p.add_argument(
            "--chunk-size", type=int, help="delta in frames: the policy's action chunk (e.g. 50 for pi0)"
        )
        p.add_argument(
            "--kappa",
            type=_kappa_arg,
            default=None,
            help="Eq. 9 threshold (default 0.01, LeRobot's), or 'auto' to reach --target-mean-weight",
        )
        p.add_argument(
            "--target-mean-weight",
            type=float,
            default=DEFAULT_TARGET_MEAN_WEIGHT,
            help=f"mean weight that kappa 'auto' aims at (default {DEFAULT_TARGET_MEAN_WEIGHT})",
        )
        p.add_argument("--head", choices=["sparse", "dense"], default="sparse", help="progress column to use")
        p.add_argument(
            "--stats",
            choices=STATS,
            default="global",
            help="'global' = LeRobot's delta statistics; 'interior' drops end-of-episode clamped deltas",
        )
        p.add_argument(
            "--fallback-weight",
            type=_fallback_arg,
            default=1.0,
            help="weight of frames with unknown progress (default 1.0 like LeRobot; 'none' = error)",
        )
        p.add_argument(
            "--sort", action="store_true", help="sort rows by index instead of rejecting unsorted files"
        )

    p = sub.add_parser("weights", help="compute per-frame RA-BC weights and write a weights parquet")
    common(p)
    p.add_argument("-o", "--output", required=True, help="output weights parquet")
    p.add_argument(
        "--drop-episodes",
        help="drop list (`rabc curate` output, or a JSON list): those episodes get weight 0",
    )
    p.set_defaults(run=_weights)

    def scoring(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--tasks", help="JSON {episode_index: task}: rank episodes within their task")
        p.add_argument(
            "--stall-threshold",
            type=float,
            default=0.01,
            help="a frame is stalled when |delta over the chunk| <= this (default 0.01)",
        )
        p.add_argument(
            "--success-final",
            type=float,
            default=0.8,
            help="paper's rule: final progress above this (default 0.8)",
        )
        p.add_argument(
            "--success-last-third",
            type=float,
            default=0.6,
            help="paper's rule: mean over the last third above this (default 0.6)",
        )

    p = sub.add_parser("episodes", help="one quality row per episode, worst first (table, parquet/csv, JSON)")
    scoring(p)
    p.add_argument("-o", "--output", help="write every episode to .parquet or .csv")
    p.add_argument("--json", help="write every episode as a JSON list")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table (default 20)")
    p.set_defaults(run=_episodes)

    p = sub.add_parser("curate", help="a drop list from explicit rules, with reasons and LeRobot's command")
    scoring(p)
    p.add_argument(
        "--drop",
        action="append",
        required=True,
        help="predicted-failures | worst:K | below:SCORE | max-drop:X | list:FILE (repeatable)",
    )
    p.add_argument("-o", "--output", required=True, help="output JSON")
    p.add_argument("--repo-id", default="<repo_id>", help="dataset repo id for the lerobot-edit-dataset line")
    p.set_defaults(run=_curate)

    p = sub.add_parser("diagnose", help="delta statistics, weight fractions, a verdict and kappa suggestions")
    common(p)
    p.add_argument("--plot", help="write a PNG: delta histogram with kappa lines, weight histogram")
    p.add_argument("--json", help="write the metrics as JSON")
    p.add_argument("--top", type=int, default=5, help="how many episodes with the most zero weights to list")
    p.set_defaults(run=_diagnose)

    p = sub.add_parser("demo", help="diagnose + weights on a small progress file shipped with the package")
    p.add_argument("--out", default="rabc_demo", help="output directory (default: rabc_demo)")
    p.add_argument("--chunk-size", type=int, default=30, help="action chunk in frames (default 30)")
    p.set_defaults(run=_demo)
    return parser


if __name__ == "__main__":
    sys.exit(main())
