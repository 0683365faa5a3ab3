"""`sarm` command line: a LeRobot dataset -> feature cache -> trained SARM -> progress file -> plots.

    sarm info     path/to/dataset
    sarm annotate path/to/dataset --sparse-subtasks "a,b,c" --api-base URL   # VLM subtask spans (optional)
    sarm features path/to/dataset --out features/            # every frame decoded and CLIP-encoded once
    sarm train    --cache features/ --annotations path/to/dataset --out runs/sarm
    sarm progress --model runs/sarm/model --cache features/ --output sarm_progress.parquet
    sarm viz      sarm_progress.parquet --dataset path/to/dataset --out plots/
    sarm eval     sarm_progress.parquet --dataset DS --annotations DS --plots eval/  # VOC, demo MSE, verdict
    rabc weights  sarm_progress.parquet --chunk-size 50       # then RA-BC (the `rabc` command)
    sarm demo     --out sarm_demo                             # all of it on a small Meta-World dataset

Every long step resumes where a killed run stopped and shards with `--shard i/n` (or torchrun's rank).
"""

from __future__ import annotations

import argparse
import sys

from sarm.cli import annotate, demo, eval, explore, features, info, progress, train, viz

_EPILOG = "Docs: docs/data.md (datasets, cache, progress), docs/sarm.md (model, training), docs/annotate.md."
_COMMANDS = (info, annotate, features, train, progress, viz, eval, explore, demo)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError, ImportError, RuntimeError, NotImplementedError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"sarm {args.command}: error: {message}", file=sys.stderr)
        return 2


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to a flag's help only where the help does not already say its default and
    the default is a value (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if "default" in help or action.default in (None, False, argparse.SUPPRESS):
            return help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sarm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.add_parser(sub, _HelpFormatter)
    return parser
