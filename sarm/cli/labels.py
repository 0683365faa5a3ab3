"""Label flags shared by `sarm train` and `sarm eval`, so a reward model is judged against the labels it
was trained on: proportions, canonical stages, the order policy, mistakes and failures (docs/labels.md)."""

from __future__ import annotations


def add_label_args(p) -> None:
    """--proportions, --stage-map, --stages, --order, --mistakes, --failures, --mistake-spans, --outcomes."""
    p.add_argument(
        "--proportions",
        choices=("paper", "lerobot"),
        default="paper",
        help="temporal proportions: paper Eq. 1 or LeRobot's variant",
    )
    # labels: raw skills -> canonical stages, and what spans that go back do (docs/labels.md)
    p.add_argument(
        "--stage-map",
        metavar="FILE",
        help='JSON {skill: stage or null} or {"skills": {...}, "tasks": {task text: {...}}}: maps raw '
        "skills (BEHAVIOR's 'move to', 'pick up from') to a task's canonical stages; null merges a skill "
        "into the next stage; a task's stage order is the order of the map's values",
    )
    p.add_argument(
        "--stages",
        choices=("names", "ordinal"),
        default="names",
        help="names: span (or mapped) names are the stages, ordered by mean relative start; ordinal: the "
        "k-th span is stage k, every episode of a task must have the same sequence",
    )
    p.add_argument(
        "--order",
        choices=("error", "monotone", "allow"),
        default="error",
        help="spans that go back in their task's stage order: error (name the episodes), monotone (hold "
        "the running maximum of progress), allow (keep the drop, for deliberate regressions)",
    )
    # mistakes and outcomes (sarm.labels.mistakes; docs/labels.md)
    p.add_argument(
        "--mistakes",
        choices=("ignore", "hold"),
        default="ignore",
        help="mistake spans: ignore them, or hold (progress flat inside a mistake, resuming from there after "
        "it; the mistake frames leave the episode's clock)",
    )
    p.add_argument(
        "--failures",
        choices=("keep", "truncate", "exclude"),
        default="keep",
        help="episodes whose outcome is not a success: keep their labels, truncate (the unfinished stage "
        "stays at its start), or exclude (outcome 'failure' leaves training)",
    )
    p.add_argument(
        "--mistake-spans",
        metavar="SOURCE",
        help="where the mistake spans are: a LeRobot dataset root (mistake_* columns) or a spans JSON with "
        '{"mistakes": [...]} per episode (default: the --annotations source)',
    )
    p.add_argument(
        "--outcomes",
        metavar="SOURCE",
        help="episode outcomes: a LeRobot dataset root (`outcome` column), a JSON {episode: 'success' | "
        "'failure' | 'partial' | true | false}, or a spans JSON with \"outcome\" (default: the "
        "--annotations source)",
    )


def label_records(args) -> tuple[dict, dict]:
    """Mistake spans and outcomes for the chosen policies, from their flags or the --annotations source."""
    from sarm.labels.records import read_mistakes, read_outcomes

    def source(flag_value, flag: str, why: str):
        value = flag_value or (None if args.annotations in (None, "none") else args.annotations)
        if value is None:
            raise ValueError(f"{why} needs {flag} SOURCE (or --annotations with those records)")
        return value

    mistake_spans = outcomes = {}
    if args.mistakes == "hold":
        mistake_spans = read_mistakes(source(args.mistake_spans, "--mistake-spans", "--mistakes hold"))
        if not mistake_spans:
            raise ValueError(
                "--mistakes hold found no mistake span in "
                f"`{args.mistake_spans or args.annotations}`; mark mistakes (mistake_* columns or "
                '{"mistakes": [...]}) or use --mistakes ignore'
            )
    if args.failures != "keep":
        outcomes = read_outcomes(source(args.outcomes, "--outcomes", f"--failures {args.failures}"))
        if not outcomes:
            raise ValueError(
                f"--failures {args.failures} found no episode outcome in "
                f"`{args.outcomes or args.annotations}`; "
                "add an `outcome` column or pass --outcomes FILE, or use --failures keep"
            )
    return mistake_spans, outcomes


def label_options(args) -> dict:
    """The label keywords of `prepare_training` / `label_episodes` from the flags above (records read)."""
    mistake_spans, outcomes = label_records(args)
    names = ("stage_map", "stages", "order", "mistakes", "failures")
    return {**{k: getattr(args, k) for k in names}, "mistake_spans": mistake_spans, "outcomes": outcomes}
