"""`rabc weights`, `rabc diagnose` and `rabc demo`: RA-BC weights and their diagnostics from PROGRESS."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from rabc.cli.options import build_weights, progress_options
from rabc.diagnostics import diagnose
from rabc.files import atomic_write
from rabc.weights import RABCWeights

EXAMPLE_PROGRESS = "data/example_progress.parquet"


def add_parsers(sub) -> None:
    p = sub.add_parser("weights", help="compute per-frame RA-BC weights and write a weights parquet")
    progress_options(p)
    p.add_argument("-o", "--output", required=True, help="output weights parquet")
    p.add_argument(
        "--drop-episodes",
        help="drop list (`rabc curate` output, or a JSON list): those episodes get weight 0",
    )
    p.set_defaults(run=_weights)

    p = sub.add_parser("diagnose", help="delta statistics, weight fractions, a verdict and kappa suggestions")
    progress_options(p)
    p.add_argument("--plot", help="write a PNG: delta histogram with kappa lines, weight histogram")
    p.add_argument("--json", help="write the metrics as JSON")
    p.add_argument("--top", type=int, default=5, help="how many episodes with the most zero weights to list")
    p.set_defaults(run=_diagnose)

    p = sub.add_parser("demo", help="diagnose + weights on a small progress file shipped with the package")
    p.add_argument("--out", default="rabc_demo", help="output directory (default: rabc_demo)")
    p.add_argument("--chunk-size", type=int, default=30, help="action chunk in frames (default 30)")
    p.set_defaults(run=_demo)


def _weights(args) -> int:
    w = build_weights(args)
    out = w.save(args.output)
    report = diagnose(w, target_mean_weight=args.target_mean_weight)
    print(report)
    print(f"\nwrote {out} ({len(w):,} frames, kappa {w.kappa:.4g}, mean weight {w.mean_weight:.3f})")
    return 0


def _diagnose(args) -> int:
    w = build_weights(args)
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
