"""`sarm` command line: a LeRobot dataset -> feature cache -> trained SARM -> progress file -> plots.

    sarm info     path/to/dataset
    sarm features path/to/dataset --out features/            # every frame decoded and CLIP-encoded once
    sarm train    --cache features/ --annotations path/to/dataset --out runs/sarm
    sarm progress --model runs/sarm/model --cache features/ --output sarm_progress.parquet
    sarm viz      sarm_progress.parquet --dataset path/to/dataset --out plots/
    rabc weights  sarm_progress.parquet --chunk-size 50       # then RA-BC (the `rabc` command)
    sarm demo     --out sarm_demo                             # all of it on a small Meta-World dataset

Every long step resumes where a killed run stopped and shards with `--shard i/n` (or torchrun's rank).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sarm.encoders import DEFAULT_ENCODER

_EPILOG = "Docs: docs/data.md (datasets, cache, progress) and docs/sarm.md (model, training)."


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError, ImportError, RuntimeError, NotImplementedError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"sarm {args.command}: error: {message}", file=sys.stderr)
        return 2


def _open(args):
    from sarm.data import open_dataset

    keys = json.loads(args.keys) if getattr(args, "keys", None) else None
    return open_dataset(
        args.dataset,
        revision=getattr(args, "revision", None),
        keys=keys,
        missing_videos=getattr(args, "missing_videos", "error"),
    )


def _info(args) -> int:
    ds = _open(args)
    print(ds)
    for camera in ds.camera_keys:
        missing = ds.missing_videos(camera)
        print(
            f"  {camera}: {len(missing)} episode(s) without video"
            + (f" {missing.tolist()}" if len(missing) else "")
        )
    print(f"  tasks: {ds.task_texts}")
    return 0


def _features(args) -> int:
    from sarm.encoders import load_encoder
    from sarm.features import extract_features

    ds = _open(args)
    kwargs = {"device": args.device, "batch_size": args.batch_size}
    if args.encoder.startswith("clip"):
        kwargs["precision"] = args.precision
    encoder = load_encoder(args.encoder, **kwargs)
    episodes = _episodes(args.episodes)
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


def _train(args) -> int:
    from sarm.dataset_train import load_annotations, train_from_cache
    from sarm.train import TrainConfig

    annotations = {"sparse": load_annotations(args.annotations, "sparse")}
    if args.dense_annotations:
        annotations["dense"] = load_annotations(args.dense_annotations, "dense")
    overrides = {
        k: v
        for k, v in {
            "hidden_dim": args.hidden_dim,
            "num_layers": args.num_layers,
            "num_heads": args.num_heads,
            "window": args.window,
            "attention": args.attention,
            "n_obs_steps": args.n_obs_steps,
            "frame_gap": args.frame_gap,
        }.items()
        if v is not None
    }
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        min_lr=min(args.lr / 10, TrainConfig.min_lr),
        warmup_steps=min(args.warmup, args.steps),
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        num_workers=args.num_workers,
    )
    _, result, report = train_from_cache(
        args.cache,
        args.out,
        annotations=annotations,
        config=config,
        method=args.proportions,
        eval_fraction=args.eval_fraction,
        anchor_stride=args.anchor_stride,
        model_overrides=overrides,
        device=args.device,
        resume=not args.no_resume,
    )
    print(json.dumps(report, indent=1))
    print(f"trained to step {result.step}; model saved to {Path(args.out) / 'model'}")
    return 0


def _load_model(source: str):
    from sarm.model import SARM

    path = Path(source) / "config.json"
    if path.is_file() and json.loads(path.read_text()).get("type") == "sarm":
        return SARM.from_lerobot(source), True
    return SARM.from_pretrained(source), False


def _progress(args) -> int:
    import torch

    from sarm.progress import compute_progress, merge_progress

    if args.merge:
        print(f"wrote {merge_progress(args.cache, args.output)}")
        return 0
    if not args.model:
        raise ValueError("--model is required (a model directory, Hub id or LeRobot checkpoint)")
    model, lerobot = _load_model(args.model)
    if args.state_stats == "dataset" or (lerobot and args.dataset and args.state_stats == "model"):
        if not args.dataset:
            raise ValueError("--state-stats dataset needs --dataset (the dataset whose stats to use)")
        ds = _open(args)
        mean, std = ds.stats(ds.state_key)
        model.config.state_mean, model.config.state_std = list(map(float, mean)), list(map(float, std))
    elif lerobot and model.config.state_mean is None:
        print(
            "warning: a LeRobot checkpoint carries no state statistics; pass --dataset ROOT to normalise "
            "state with the dataset's mean/std as LeRobot does",
            file=sys.stderr,
        )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    heads = None if args.head == "all" else [args.head]
    out = compute_progress(
        model,
        args.cache,
        args.output,
        heads=heads,
        batch_size=args.batch_size,
        stride=args.stride,
        soft=args.soft,
        stage_probs=args.stage_probs,
        shard=args.shard,
        reward_model_path=str(args.model),
    )
    print(
        f"wrote {out}"
        if out
        else "this shard is done; other shards still running (merge runs when all finish)"
    )
    return 0


def _viz(args) -> int:
    from sarm.viz import plot_progress_file

    ds = _open(args) if args.dataset else None
    paths = plot_progress_file(
        args.progress,
        args.out,
        episodes=_episodes(args.episodes),
        num_episodes=args.num_episodes,
        dataset=ds,
        camera=args.camera,
        num_frames=args.num_frames,
    )
    print("\n".join(str(p) for p in paths))
    return 0


def _episodes(text: str | None) -> list[int] | None:
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return out


def _dataset_args(p, required: bool = True) -> None:
    p.add_argument(
        "dataset" if required else "--dataset",
        help="LeRobot dataset root (codebase v2.1 or v3.0) "
        "or a Hub repo id (resolved to a local snapshot with huggingface_hub)",
    )
    p.add_argument("--revision", help="Hub revision when the dataset is a repo id")
    p.add_argument(
        "--keys",
        help="JSON map from canonical to your column names, e.g. "
        '\'{"observation.state": "state"}\', for datasets with other column names',
    )
    p.add_argument(
        "--missing-videos",
        choices=("error", "skip"),
        default="error",
        help="episodes whose video file is missing: fail listing them (default) or skip them",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sarm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser(
        "info", help="summarise a dataset (episodes, frames, cameras, missing videos)", formatter_class=fmt
    )
    _dataset_args(p)
    p.set_defaults(run=_info)

    p = sub.add_parser(
        "features",
        help="decode and encode every frame once into a feature cache",
        formatter_class=fmt,
        description="Decode every frame of the chosen cameras once "
        "(PyAV) and encode it once (CLIP); write per-episode features, resumable and shardable.",
    )
    _dataset_args(p)
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
    p.set_defaults(run=_features)

    p = sub.add_parser("train", help="train a SARM from a feature cache and annotations", formatter_class=fmt)
    p.add_argument("--cache", required=True, help="feature cache directory from `sarm features`")
    p.add_argument("--out", required=True, help="run directory: checkpoint/, metrics.jsonl, model/, best/")
    p.add_argument(
        "--annotations",
        default="none",
        help="sparse-head spans: 'none' (single stage), a LeRobot "
        "dataset root (its sparse_subtask_* columns), a folder of BEHAVIOR JSON, or a spans JSON file",
    )
    p.add_argument("--dense-annotations", help="dense-head spans (same sources); adds the dense head")
    p.add_argument(
        "--proportions",
        choices=("paper", "lerobot"),
        default="paper",
        help="temporal proportions: paper Eq. 1 or LeRobot's variant",
    )
    p.add_argument("--steps", type=int, default=5000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step")
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=500, help="warmup steps")
    p.add_argument(
        "--eval-fraction", type=float, default=0.1, help="share of episodes held out for evaluation"
    )
    p.add_argument("--eval-every", type=int, default=1000, help="steps between evaluations")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--anchor-stride", type=int, default=1, help="train on every k-th frame as window anchor")
    p.add_argument("--window", choices=("past", "centered"), help="window mode (default: past)")
    p.add_argument("--attention", choices=("causal", "lerobot"), help="attention mode (default: causal)")
    p.add_argument("--n-obs-steps", type=int, help="observation slots besides one (default 8)")
    p.add_argument("--frame-gap", type=int, help="frames between slots (default 30)")
    p.add_argument("--hidden-dim", type=int, help="model width (default 768)")
    p.add_argument("--num-layers", type=int, help="transformer layers (default 8)")
    p.add_argument("--num-heads", type=int, help="attention heads (default 12)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, split, coins and order")
    p.add_argument("--device", help="training device (default: cuda if available, else cpu)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.set_defaults(run=_train)

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
    p.set_defaults(run=_progress, revision=None, keys=None, missing_videos="skip")

    p = sub.add_parser(
        "viz", help="per-episode PNGs: progress, stage probabilities, a strip of frames", formatter_class=fmt
    )
    p.add_argument("progress", help="progress parquet from `sarm progress`")
    p.add_argument("--out", default="sarm_viz", help="output directory")
    p.add_argument("--episodes", help="episodes to plot, e.g. 0-3,7 (default: --num-episodes at random)")
    p.add_argument(
        "--num-episodes", type=int, default=5, help="episodes to plot when --episodes is not given"
    )
    _dataset_args(p, required=False)
    p.add_argument("--camera", help="camera for the frame strip (default: the first)")
    p.add_argument("--num-frames", type=int, default=6, help="frames in the strip")
    p.set_defaults(run=_viz)

    p = sub.add_parser(
        "demo",
        help="the whole pipeline offline on a small noisy Meta-World dataset: SARM, RA-BC vs BC",
        formatter_class=fmt,
        description="Generate noisy scripted-expert demonstrations in Meta-World, train SARM, write "
        "progress, weights, diagnostics and plots, train BC and RA-BC briefly and compare their success "
        "in the simulator (needs the metaworld extra).",
    )
    p.add_argument("--out", default="sarm_demo", help="output directory")
    p.add_argument("--task", default="pick-place-v3", help="Meta-World task")
    p.add_argument("--small", action="store_true", help="tiny budgets: a smoke run of every stage")
    p.add_argument("--seed", type=int, default=0, help="SARM and policy seed")
    p.set_defaults(run=_demo)
    return parser


def _demo(args) -> int:
    import dataclasses

    from sarm.demo.run import DemoConfig, run_demo

    config = DemoConfig.small() if args.small else DemoConfig()
    run_demo(args.out, dataclasses.replace(config, task=args.task, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
