"""`rabc` command line: weights and diagnostics from a progress file.

rabc weights sarm_progress.parquet --chunk-size 50 --kappa auto -o rabc_weights.parquet
rabc diagnose sarm_progress.parquet --chunk-size 50 --plot rabc_diagnostics.png
rabc demo --out rabc_demo        # both, on a small progress file shipped with the package
rabc episodes sarm_progress.parquet --chunk-size 50 -o episodes.csv          # scores, worst first
rabc curate sarm_progress.parquet --chunk-size 50 --drop worst:5 -o drop.json
rabc weights sarm_progress.parquet --chunk-size 50 --drop-episodes drop.json -o rabc_weights.parquet
rabc advantages sarm_progress.parquet --chunk-size 50 --gamma 0.99 -o advantages.parquet   # offline RL
"""

from __future__ import annotations

import argparse
import re
import sys

from rabc.cli import advantages, episodes, weights
from rabc.files import check_output_dir, check_output_file, refuse_overwrite

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
        "advantages": lambda: {"-o/--output": args.output},
    }[args.command]()
    refuse_overwrite({"PROGRESS": args.progress}, outputs)
    for flag, path in outputs.items():
        if path is not None:
            check_output_file(path, flag)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rabc", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    weights.add_parsers(sub)
    episodes.add_parsers(sub)
    advantages.add_parsers(sub)
    return parser
