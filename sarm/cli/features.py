"""`sarm features`: decode and encode every frame once into a feature cache."""

from __future__ import annotations

from sarm.cli.common import add_dataset_args, open_from_args, parse_episodes
from sarm.features.encoders import DEFAULT_ENCODER


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "features",
        help="decode and encode every frame once into a feature cache",
        formatter_class=fmt,
        description="Decode every frame of the chosen cameras once "
        "(PyAV) and encode it once (CLIP); write per-episode features, resumable and shardable.",
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
    p.add_argument("--episodes", help="episodes to encode, e.g. 0-9,15 (default: all)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored feature dtype")
    p.add_argument("--batch-size", type=int, default=64, help="frames per encoder forward pass")
    p.add_argument("--device", help="encoder device (default: cuda if available, else cpu)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="CUDA autocast")
    p.add_argument("--shard", help="i/n: encode every n-th episode from i (default: torchrun's rank)")
    p.set_defaults(run=run)


def run(args) -> int:
    from sarm.features.cache import extract_features
    from sarm.features.encoders import load_encoder

    ds = open_from_args(args)
    kwargs = {"device": args.device, "batch_size": args.batch_size}
    if args.encoder.startswith("clip"):
        kwargs["precision"] = args.precision
    encoder = load_encoder(args.encoder, **kwargs)
    episodes = parse_episodes(args.episodes)
    cache = extract_features(
        ds,
        encoder,
        args.out,
        cameras=args.cameras,
        episodes=episodes,
        dtype=args.dtype,
        shard=args.shard,
        missing_videos=args.missing_videos,
    )
    print(cache)
    if len(cache.missing):
        print(f"{len(cache.missing)} planned episode(s) not finished yet (other shards, or run again)")
    return 0
