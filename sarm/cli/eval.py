"""`sarm eval`: judge a reward model from its progress file (VOC, success AUROC, paper's rule, demo MSE
against the labels `sarm train` builds, plots, a verdict)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sarm.cli.common import add_dataset_args, open_from_args
from sarm.cli.labels import add_label_args, label_options

_LEVELS = {"failure": 0, "partial": 1, "success": 2}
_LEVELS_SHOWN = ("success", "partial", "failure")


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "eval",
        help="reward-model metrics of a progress file: VOC, AUROC, the paper's rule, demo MSE, a verdict",
        formatter_class=fmt,
    )
    p.add_argument(
        "progress", help="progress file: LeRobot's sarm_progress.parquet schema or its scores/<name>.parquet"
    )
    p.add_argument("--head", choices=("sparse", "dense"), default="sparse", help="progress column")
    p.add_argument(
        "--success",
        help="JSON {episode_index: true|false}: outcomes for AUROC and the rule (default: --outcomes, else "
        "the --dataset's `outcome` column when it has one)",
    )
    p.add_argument(
        "--levels",
        help='JSON {episode_index: "success"|"partial"|"failure"}: the paper\'s rho (default: the outcomes '
        "when they come from --outcomes or the dataset)",
    )
    p.add_argument("--json", help="write the metrics as JSON")
    p.add_argument(
        "--plots", metavar="DIR", help="write PNGs: VOC histogram, final progress by outcome, worst episodes"
    )
    add_dataset_args(p, required=False)
    p.add_argument(
        "--annotations",
        metavar="SRC",
        help="spans of --head's stages, as `sarm train --annotations` takes them (a LeRobot dataset root, a "
        "folder of BEHAVIOR JSON, a spans JSON, or 'none' for single-stage linear labels): labels as `sarm "
        "train` builds them, for demo MSE, Pearson and Spearman; needs --dataset",
    )
    add_label_args(p)
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


def _outcomes(args, ds, episodes: set[int]):
    """(success, levels, where they came from): --success, else --outcomes, else the dataset's column."""
    from sarm.labels.records import OUTCOME_COLUMN, read_outcomes

    levels = _read_json(args.levels, "--levels", lambda v: _LEVELS[v]) if args.levels else None
    if args.success:
        success = _read_json(args.success, "--success", _bool)
        return success, levels, f"--success `{args.success}` ({len(success)} episodes)"
    if args.outcomes:
        source, where = args.outcomes, f"--outcomes `{args.outcomes}`"
    elif ds is not None and (Path(ds.root) / "meta" / "episodes").is_dir():
        source, where = ds.root, f"the dataset's `{OUTCOME_COLUMN}` column"
    else:
        return None, levels, "none known (give --success FILE or a dataset with an `outcome` column)"
    outcomes = {e: o for e, o in read_outcomes(source).items() if e in episodes}
    if not outcomes:
        return None, levels, f"none known in {where}"
    counts = ", ".join(f"{sum(o == k for o in outcomes.values())} {k}" for k in _LEVELS_SHOWN)
    success = {e: o == "success" for e, o in outcomes.items()}
    levels = levels or {e: _LEVELS[o] for e, o in outcomes.items()}
    return success, levels, f"{where} ({len(outcomes)} episodes: {counts})"


def _rows(ds, table) -> tuple[np.ndarray, np.ndarray]:
    """Each progress row's episode position in the dataset and its frame; a mismatch is an error."""
    order = np.argsort(ds.episodes, kind="stable")
    sorted_eps = ds.episodes[order]
    at = np.minimum(np.searchsorted(sorted_eps, table.episode_index), len(sorted_eps) - 1)
    missing = sorted_eps[at] != table.episode_index
    if missing.any():
        bad = np.unique(table.episode_index[missing]).tolist()
        raise ValueError(
            f"`{table.source}` has episode(s) {bad[:10]} that are not in the dataset `{ds.root}`; pass the "
            "--dataset the progress was computed on"
        )
    position = order[at]
    lengths = ds.episode_lengths[position]
    outside = (table.frame_index < 0) | (table.frame_index >= lengths)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"`{table.source}` has frame_index {int(table.frame_index[i])} in episode "
            f"{int(table.episode_index[i])}, which has {int(lengths[i])} frames in the dataset `{ds.root}`; "
            "pass the --dataset the progress was computed on"
        )
    return position, table.frame_index


def _labels(args, ds, table, rows) -> tuple[np.ndarray, dict]:
    """Label progress per row of `table`, built by `sarm.labels.targets.label_episodes` as `sarm train`
    builds it, and a note of what was compared."""
    from sarm.labels.targets import label_episodes
    from sarm.training.from_cache import load_annotations

    position, frames = rows
    lengths = dict(zip(ds.episodes.tolist(), ds.episode_lengths.tolist(), strict=True))
    spans = load_annotations(args.annotations, args.head, num_frames=lengths)
    if args.annotations != "none" and not spans:
        raise ValueError(
            f"--annotations `{args.annotations}` holds no episode spans; annotate the episodes, or pass "
            "--annotations none for single-stage (linear) labels"
        )
    labels = label_episodes(
        ds.episodes.tolist(),
        ds.episode_lengths.tolist(),
        list(ds.tasks),
        annotations={args.head: spans} if spans else {},
        method=args.proportions,
        where=f"the dataset `{ds.root}`",
        **label_options(args),
    )
    head = args.head if spans else "sparse"  # no spans: one stage, stored under the sparse head
    per_row = labels.progress(head)[labels.starts[position] + frames]
    in_file = np.unique(table.episode_index)
    labelled = set(labels.episodes[labels.labelled].tolist())
    compared = [e for e in in_file.tolist() if e in labelled]
    if not compared:
        raise ValueError(
            f"none of the {in_file.size} episode(s) of `{table.source}` has labels from --annotations "
            f"`{args.annotations}` (labelled episodes: {sorted(labelled)[:10]}); annotate them or check "
            "the episode numbers"
        )
    note = {
        "source": str(args.annotations),
        "head": args.head,
        "policy": {k: getattr(args, k) for k in ("proportions", "stages", "order", "mistakes", "failures")},
        "episodes_compared": compared,
        "episodes_without_labels": [e for e in in_file.tolist() if e not in labelled],
        "excluded_failures": [e for e in labels.excluded if e in set(in_file.tolist())],
    }
    return per_row, note


def _fmt(x, f=".3f") -> str:
    return "n/a" if x is None else format(x, f)


def _print(report: dict, where: str) -> None:
    v = report["voc"]
    print(f"episodes {report['num_episodes']}; outcomes: {where}")
    print(f"VOC mean {_fmt(v['mean'])} on {v['on']} ({v['episodes']})")
    print(
        f"AUROC of final progress {_fmt(report['auroc'])} (episode length alone "
        f"{_fmt(report['auroc_length'])}, length-controlled {_fmt(report['auroc_length_controlled'])}); "
        f"paper-rule accuracy {_fmt(report['paper_rule_accuracy'], '.2f')}; paper rho "
        f"{_fmt(report['paper_rho'])}"
    )
    note = report.get("labels")
    if note:
        missing = note["episodes_without_labels"]
        print(
            f"against labels ({note['source']}, order {note['policy']['order']}, mistakes "
            f"{note['policy']['mistakes']}, failures {note['policy']['failures']}): demo MSE "
            f"{_fmt(report['demo_mse'], '.4f')}, Pearson {_fmt(report['pearson'])}, Spearman "
            f"{_fmt(report['spearman'])} on {len(note['episodes_compared'])} episodes "
            f"({report['label_frames']} frames)"
            + (f"; {len(missing)} without labels, not compared: {missing[:10]}" if missing else "")
        )
    tasks = report["per_task"]
    for task, r in list(tasks.items())[:10] if len(tasks) > 1 else []:
        print(
            f"  task {task!r}: VOC {_fmt(r['voc']['mean'])} ({r['voc']['episodes']}), AUROC "
            f"{_fmt(r['auroc'])} (length {_fmt(r['auroc_length'])}, length-controlled "
            f"{_fmt(r['auroc_length_controlled'])}), demo MSE {_fmt(r['demo_mse'], '.4f')}, Pearson "
            f"{_fmt(r['pearson'])}"
        )
    if len(tasks) > 10:
        print(f"  ... and {len(tasks) - 10} more tasks (all in --json)")
    print(f"verdict: {report['verdict']}")


def run(args) -> int:
    from rabc.files import atomic_write
    from rabc.progress_io import read_progress
    from sarm.eval import evaluate

    if args.annotations and not args.dataset:
        raise ValueError(
            "--annotations needs --dataset ROOT: the labels need the episodes' lengths and tasks"
        )
    table = read_progress(args.progress, heads=[args.head], progress_bar=True)
    print(table.format_line())
    ds = open_from_args(args) if args.dataset else None
    rows = _rows(ds, table) if ds is not None else None  # the progress file must belong to the dataset
    episodes = set(np.unique(table.episode_index).tolist())
    success, levels, where = _outcomes(args, ds, episodes)
    tasks = dict(zip(ds.episodes.tolist(), ds.tasks, strict=True)) if ds is not None else None
    labels, note = _labels(args, ds, table, rows) if args.annotations else (None, None)
    report = evaluate(table, args.head, success=success, levels=levels, tasks=tasks, labels=labels)
    report["outcomes_from"] = where
    if note:
        report["labels"] = note
    _print(report, where)
    if args.plots:
        from sarm.eval.plots import write_plots

        paths = write_plots(table, args.head, report, args.plots, success=success, labels=labels)
        print(f"wrote {len(paths)} plots to {args.plots}: {', '.join(Path(p).name for p in paths)}")
    if args.json:
        text = json.dumps(report, indent=1)
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.json}")
    return 0
