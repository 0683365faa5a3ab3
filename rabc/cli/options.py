"""The `rabc` subcommands' shared flags, their argument types, and the weights they build from PROGRESS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rabc.progress_io import read_progress
from rabc.weights import DEFAULT_TARGET_MEAN_WEIGHT, STATS, RABCWeights

__all__ = ["build_weights", "is_weights_file", "progress_options", "scoring_options", "weights_from_table"]


def progress_options(p: argparse.ArgumentParser) -> None:
    """PROGRESS and the RA-BC weight flags shared by weights, diagnose, episodes and curate."""
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


def scoring_options(p: argparse.ArgumentParser) -> None:
    """`progress_options` plus the per-episode scoring flags of episodes and curate."""
    progress_options(p)
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


def build_weights(args) -> RABCWeights:
    source = Path(args.progress)
    if is_weights_file(source):
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
    return weights_from_table(table, args, drop)


def weights_from_table(table, args, drop=None) -> RABCWeights:
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


def is_weights_file(path: Path) -> bool:
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
