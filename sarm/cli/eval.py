"""`sarm eval`: judge a reward model from its progress file (VOC, success AUROC, paper's rule, verdict)."""

from __future__ import annotations

import json
from pathlib import Path

from sarm.cli.common import add_dataset_args, open_from_args

_LEVELS = {"failure": 0, "partial": 1, "success": 2}


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "eval",
        help="reward-model metrics of a progress file: VOC, AUROC, the paper's rule, a verdict",
        formatter_class=fmt,
    )
    p.add_argument(
        "progress", help="progress parquet in LeRobot's schema (ours, LeRobot's, Robometer, TOPReward)"
    )
    p.add_argument("--head", choices=("sparse", "dense"), default="sparse", help="progress column")
    p.add_argument("--success", help="JSON {episode_index: true|false}: outcomes for AUROC and the rule")
    p.add_argument("--levels", help='JSON {episode_index: "success"|"partial"|"failure"}: the paper\'s rho')
    p.add_argument("--json", help="write the metrics as JSON")
    add_dataset_args(p, required=False)
    p.add_argument("--annotations", help="not available yet: labels for demo MSE (reported as null)")
    p.set_defaults(run=run)


def _read_json(path: str, flag: str, kind):
    try:
        data = json.loads(Path(path).read_text())
        return {int(k): kind(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as err:
        raise ValueError(
            f"{flag} `{path}` should be a JSON object {{episode_index: value}} ({err})"
        ) from None


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError(f"outcomes should be true or false, got {v!r}")
    return v


def run(args) -> int:
    from rabc.files import atomic_write
    from rabc.progress_io import read_progress
    from sarm.eval import evaluate

    if args.annotations:
        raise NotImplementedError(
            "--annotations: demo MSE against labels is not implemented in `sarm eval` yet; leave it out"
        )
    success = _read_json(args.success, "--success", _bool) if args.success else None
    levels = _read_json(args.levels, "--levels", lambda v: _LEVELS[v]) if args.levels else None
    tasks = None
    if args.dataset:
        ds = open_from_args(args)
        tasks = dict(zip(ds.episodes.tolist(), ds.tasks, strict=True))
    table = read_progress(args.progress, heads=[args.head], progress_bar=True)
    report = evaluate(table, args.head, success=success, levels=levels, tasks=tasks)
    v = report["voc"]
    fmt = lambda x, f=".3f": "n/a" if x is None else format(x, f)  # noqa: E731
    print(f"episodes {report['num_episodes']}; VOC mean {fmt(v['mean'])} on {v['on']} ({v['episodes']})")
    print(
        f"AUROC of final progress {fmt(report['auroc'])}; paper-rule accuracy "
        f"{fmt(report['paper_rule_accuracy'], '.2f')}; paper rho {fmt(report['paper_rho'])}"
    )
    print(f"verdict: {report['verdict']}")
    if args.json:
        text = json.dumps(report, indent=1)
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.json}")
    return 0
