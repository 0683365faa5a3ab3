"""`sarm features`: decode and encode every frame once into a feature cache."""

from __future__ import annotations

import sys
import warnings

from sarm.cli.common import add_dataset_args, add_engine_args, engine_options, open_from_args, parse_episodes
from sarm.features.encoders import DEFAULT_ENCODER


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "features",
        help="decode and encode every frame once into a feature cache",
        formatter_class=fmt,
        description="Decode every frame of the chosen cameras once "
        "(PyAV) and encode it once (CLIP); write per-episode features, resumable and shardable. Each "
        "episode is written under its own lock, so shards or a second run on the same --out never "
        "encode an episode twice: episodes another run is encoding are left to it and reported.",
    )
    add_dataset_args(p)
    p.add_argument(
        "--out", required=True, help="cache directory (an existing one with the same settings resumes)"
    )
    p.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help="encoder spec: clip:<model>/<weights>, "
        "clip:<model> (random weights), clip:sarm-tiny (CI), pixels (offline, not semantic)",
    )
    p.add_argument("--cameras", nargs="+", help="camera keys to encode (default: all)")
    p.add_argument(
        "--state-only",
        action="store_true",
        help="encode no camera: state and task text only (image features of shape (T, 0, E)), for "
        "datasets without cameras or videos",
    )
    p.add_argument("--episodes", help="episodes to encode, e.g. 0-9,15 (default: all)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored feature dtype")
    p.add_argument("--batch-size", type=int, default=64, help="frames per encoder forward pass")
    p.add_argument("--device", help="encoder device (default: cuda if available, else cpu)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="CUDA autocast")
    p.add_argument("--shard", help="i/n: encode every n-th episode from i (default: torchrun's rank)")
    add_engine_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from sarm.features.cache import parse_shard
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features
    from sarm.features.storage import check_out_dir

    if args.state_only and args.cameras:
        raise ValueError("--state-only encodes no camera; drop --cameras (or --state-only)")
    parse_shard(args.shard)
    ray_options = engine_options(args)
    check_out_dir(args.out, "--out", create=False)  # before hours of decoding and encoding
    ds = open_from_args(args)
    episodes = parse_episodes(args.episodes, "--episodes", available=ds.episodes)
    if not args.state_only and not ds.camera_keys:
        raise ValueError(
            f"`{ds.root}` has no camera (no feature of dtype 'video' in meta/info.json); to build a cache of "
            "state and task text alone, pass --state-only"
        )
    kwargs = {"device": args.device, "batch_size": args.batch_size}
    if args.encoder.startswith("clip"):
        kwargs["precision"] = args.precision
    plan = {
        "cameras": args.cameras,
        "episodes": episodes,
        "dtype": args.dtype,
        "missing_videos": args.missing_videos,
        "state_only": args.state_only,
    }
    if ray_options is not None:
        return _run_ray(args, ds, kwargs, plan, ray_options)
    encoder = load_encoder(args.encoder, **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="skipped .* episode")  # reported below, counted
        cache = extract_features(ds, encoder, args.out, shard=args.shard, **plan)
    print(cache)
    if cache.skipped:
        print(
            f"skipped {len(cache.skipped)} episode(s) whose video cannot be decoded "
            f"(--missing-videos skip): {sorted(cache.skipped)}",
            file=sys.stderr,
        )
        for episode, reason in list(cache.skipped.items())[:10]:
            print(f"  episode {episode}: {reason}", file=sys.stderr)
    unfinished = len(cache.missing) - len(cache.skipped)
    if unfinished > 0:
        print(
            f"{unfinished} planned episode(s) not finished yet (other shards or another run are encoding "
            "them, or run again)"
        )
    return 0


def _run_ray(args, ds, kwargs, plan, options) -> int:
    from sarm.scale.engine import report_failures
    from sarm.scale.features import extract_features_ray

    if args.device is None:
        kwargs.pop("device")  # each actor picks its own: its GPU, if Ray gave it one
    cache, outcome = extract_features_ray(
        ds, args.encoder, args.out, options=options, encoder_kwargs=kwargs, **plan
    )
    print(cache)
    print(outcome.summary())
    return report_failures(outcome, f"{options.max_retries} retries")
