"""`sarm progress`: score every frame of a cache -> sarm_progress.parquet (LeRobot's schema), and/or
LeRobot's typed scores file `<dataset root>/scores/<name>.parquet` (`--format scores|both`, a draft of
open LeRobot PRs #4553-#4555)."""

from __future__ import annotations

import sys

from sarm.cli.common import add_engine_args, engine_options, open_from_args


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "progress", help="score every frame of a cache -> sarm_progress.parquet", formatter_class=fmt
    )
    p.add_argument("--model", help="our model (directory or Hub id) or a LeRobot SARM checkpoint directory")
    p.add_argument("--cache", required=True, help="feature cache directory")
    p.add_argument("--output", default="sarm_progress.parquet", help="progress file (LeRobot's schema)")
    p.add_argument("--head", choices=("all", "sparse", "dense"), default="all", help="heads to compute")
    p.add_argument("--stride", type=int, default=1, help="score every k-th frame, interpolate the rest")
    p.add_argument("--batch-size", type=int, default=256, help="windows per forward pass")
    p.add_argument(
        "--soft", action="store_true", help="expected progress over stages (default: argmax stage)"
    )
    p.add_argument("--stage-probs", action="store_true", help="also store per-frame stage probabilities")
    p.add_argument(
        "--state-stats",
        choices=("model", "dataset"),
        default="model",
        help="state normalisation: the model's saved statistics, or the dataset's (--dataset)",
    )
    p.add_argument("--dataset", help="dataset root, for --state-stats dataset (LeRobot checkpoints)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--shard", help="i/n: score every n-th episode from i (default: torchrun's rank)")
    p.add_argument("--merge", action="store_true", help="only merge finished shards into --output")
    p.add_argument(
        "--format",
        choices=("lerobot", "scores", "both"),
        default="lerobot",
        help="lerobot: --output in today's sarm_progress.parquet schema; scores: LeRobot's typed scores file "
        "(draft of PRs #4553-#4555: progress, validity mask, stage confidence and probabilities, "
        "provenance) at --scores-out; both: the two, from the same parts. --output names the parts "
        "directory either way; the merge (last shard or --merge) writes the files",
    )
    p.add_argument(
        "--scores-out", help="the scores file (default: <dataset root>/scores/<--score-name>.parquet)"
    )
    p.add_argument("--score-name", default="sarm", help="the score's name in the default --scores-out")
    p.add_argument(
        "--allow-other-encoder",
        action="store_true",
        help="score a cache made with another encoder than the model was trained on (refused by default: "
        "the features of two encoders are not interchangeable, even at the same width)",
    )
    add_engine_args(p)
    p.set_defaults(run=run, revision=None, keys=None, missing_videos="skip")


def _load_model(source: str):
    from sarm.model.hub import checkpoint_type
    from sarm.model.network import SARM

    if checkpoint_type(source) == "lerobot":
        return SARM.from_lerobot(source), True
    return SARM.from_pretrained(source), False


def run(args) -> int:
    import torch

    from sarm.inference.progress import compute_progress, merge_progress

    for flag, value in (("--stride", args.stride), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{flag} should be a positive integer, but got {value}")
    ray_options = engine_options(args)
    formats = ("lerobot", "scores") if args.format == "both" else (args.format,)
    where = {"formats": formats, "scores_out": args.scores_out, "score_name": args.score_name}
    if args.merge:
        merge_progress(args.cache, args.output, **where, option_names={"scores_out": "--scores-out"})
        _print_written(args, formats)
        return 0
    if not args.model:
        raise ValueError("--model is required (a model directory, Hub id or LeRobot checkpoint)")
    model, lerobot = _load_model(args.model)
    if args.state_stats == "dataset" or (lerobot and args.dataset and args.state_stats == "model"):
        if not args.dataset:
            raise ValueError("--state-stats dataset needs --dataset (the dataset whose stats to use)")
        ds = open_from_args(args)
        mean, std = ds.stats(ds.state_key)
        model.config.state_mean, model.config.state_std = list(map(float, mean)), list(map(float, std))
    elif lerobot and model.config.state_mean is None:
        print(
            "warning: a LeRobot checkpoint carries no state statistics; pass --dataset ROOT to normalise "
            "state with the dataset's mean/std as LeRobot does",
            file=sys.stderr,
        )
    scoring = {
        "heads": None if args.head == "all" else [args.head],
        "batch_size": args.batch_size,
        "stride": args.stride,
        "soft": args.soft,
        "stage_probs": args.stage_probs,
        "reward_model_path": str(args.model),
        "allow_other_encoder": args.allow_other_encoder,
        "option_names": {"allow_other_encoder": "--allow-other-encoder", "scores_out": "--scores-out"},
        **where,
    }
    if ray_options is not None:
        return _run_ray(args, model, formats, scoring, ray_options)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    out = compute_progress(model, args.cache, args.output, shard=args.shard, **scoring)
    if out:
        _print_written(args, formats)
    else:
        print("this shard is done; other shards still running (merge runs when all finish)")
    return 0


def _print_written(args, formats) -> None:
    from sarm.features.cache import FeatureCache
    from sarm.inference.progress import scores_path

    if "lerobot" in formats:
        print(f"wrote {args.output} (LeRobot sarm_progress layout)")
    if "scores" in formats:
        path = scores_path(FeatureCache(args.cache), args.scores_out, args.score_name)
        print(f"wrote {path} (LeRobot scores file, lerobot.scores v1, draft of PRs #4553-#4555)")


def _run_ray(args, model, formats, scoring, options) -> int:
    from sarm.scale.engine import report_failures
    from sarm.scale.progress import compute_progress_ray

    out, outcome = compute_progress_ray(
        model, args.cache, args.output, options=options, device=args.device, **scoring
    )
    print(outcome.summary())
    if out:
        _print_written(args, formats)
    return report_failures(outcome, f"{options.max_retries} retries")
