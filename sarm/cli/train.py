"""`sarm train`: train a SARM from a feature cache and annotations."""

from __future__ import annotations

import json
from pathlib import Path

from sarm.cli.labels import add_label_args, label_options


def add_parser(sub, fmt) -> None:
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
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start over even if a checkpoint exists (a rerun into an existing --out otherwise resumes it, "
        "and must use the run's settings: others are refused, each named with its old and new value)",
    )
    p.add_argument(
        "--extend",
        action="store_true",
        help="train an existing run (finished or not) further, to a larger --steps, with otherwise the same "
        "settings; the cosine schedule is recomputed for the new total from the current step",
    )
    add_label_args(p)
    p.set_defaults(run=run)


# how errors from the library name its arguments on this command line
_LABELS = "--annotations, --dense-annotations, --proportions, --stage-map, --stages, --order, --mistakes, "
_LABELS += "--failures"
_FLAGS = {
    "resume": "--no-resume",
    "extend": "--extend",
    "steps": "--steps",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "min_lr": "--lr (min_lr = lr / 10)",
    "warmup_steps": "--warmup",
    "eval_every": "--eval-every",
    "checkpoint_every": "--checkpoint-every",
    "seed": "--seed",
    "window": "--window",
    "attention": "--attention",
    "n_obs_steps": "--n-obs-steps",
    "frame_gap": "--frame-gap",
    "hidden_dim": "--hidden-dim",
    "num_layers": "--num-layers",
    "num_heads": "--num-heads",
    "schemas": f"stage schemas ({_LABELS})",
    "state_mean": "state statistics (--cache)",
    "state_std": "state statistics (--cache)",
    "encoder": "encoder (--cache)",
    "image_dim": "image features (--cache)",
    "text_dim": "text features (--cache)",
    "num_cameras": "cameras (--cache)",
    "train_set.anchor_stride": "--anchor-stride",
    "train_set.targets": f"labels ({_LABELS})",
    "train_set.labels": "label policies (--order, --mistakes, --failures)",
    "mistakes": "--mistakes",
    "failures": "--failures",
    "order": "--order",
    "train_set.episodes": "training episodes (--eval-fraction, --annotations, --seed)",
    "train_set.windows": "training windows (--cache, --annotations, --anchor-stride)",
}


def _check_args(args) -> None:
    """Flag values the library would refuse, refused here in the command line's terms."""
    positive = ("steps", "batch_size", "eval_every", "checkpoint_every", "anchor_stride", "frame_gap")
    positive += ("hidden_dim", "num_layers", "num_heads")
    for name in (*positive, "warmup", "num_workers", "n_obs_steps"):
        value = getattr(args, name)
        if value is not None and (value < 1 if name in positive else value < 0):
            kind = "a positive" if name in positive else "a non-negative"
            raise ValueError(f"--{name.replace('_', '-')} should be {kind} integer, but got {value}")
    if not 0.0 < args.eval_fraction < 1.0:
        raise ValueError(f"--eval-fraction should be in (0, 1), but got {args.eval_fraction}")
    if not args.lr > 0:
        raise ValueError(f"--lr should be positive, but got {args.lr}")
    width, heads = args.hidden_dim or 768, args.num_heads or 12
    if width % heads:
        raise ValueError(
            f"--hidden-dim {width} is not divisible by --num-heads {heads}; choose sizes that are"
        )
    n_obs = 8 if args.n_obs_steps is None else args.n_obs_steps
    if args.window == "centered" and n_obs % 2:
        raise ValueError(f"--window centered needs an even --n-obs-steps, but got {n_obs}")
    if args.window != "centered" and n_obs < 1:
        raise ValueError("--window past needs --n-obs-steps >= 1 (slot 0 shows the episode's first frame)")


def run(args) -> int:
    from sarm.training.from_cache import load_annotations, train_from_cache
    from sarm.training.loop import TrainConfig

    _check_args(args)

    annotations = {"sparse": load_annotations(args.annotations, "sparse")}
    if args.dense_annotations:
        annotations["dense"] = load_annotations(args.dense_annotations, "dense")
    labels = label_options(args)
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
        **labels,
        extend=args.extend,
        option_names=_FLAGS,
    )
    print(json.dumps(report, indent=1))
    print(f"trained to step {result.step}; model saved to {Path(args.out) / 'model'}")
    return 0
