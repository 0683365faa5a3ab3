"""`sarm demo`: the whole pipeline offline on a small noisy Meta-World dataset."""

from __future__ import annotations


def add_parser(sub, fmt) -> None:
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
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (torch.set_num_threads); default: one per core that the 1-minute load "
        "average leaves free, at least 1 and at most torch's own (one per core, or OMP_NUM_THREADS): on a "
        "busy machine two threads ran the demo's models 2-5x slower than one. The demo prints the number "
        "it used",
    )
    p.add_argument(
        "--mistakes",
        choices=("ignore", "hold"),
        help="SARM's labels inside the recorded mistake spans, as `sarm train --mistakes` (default: hold, "
        "the best label policy of the Meta-World v2 benchmark)",
    )
    p.add_argument(
        "--failures",
        choices=("keep", "truncate", "exclude"),
        help="SARM's labels of failed episodes, as `sarm train --failures` (default: exclude, as above); "
        "--mistakes ignore --failures keep trains on the annotator's spans as they are",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import dataclasses

    from sarm.demo.config import DemoConfig
    from sarm.demo.run import run_demo

    if args.threads is not None and args.threads <= 0:
        raise ValueError(f"--threads should be a positive integer, but got --threads {args.threads}")
    config = DemoConfig.small() if args.small else DemoConfig()
    labels = {k: v for k, v in (("mistakes", args.mistakes), ("failures", args.failures)) if v is not None}
    config = dataclasses.replace(config, task=args.task, seed=args.seed, threads=args.threads, **labels)
    run_demo(args.out, config)
    return 0
