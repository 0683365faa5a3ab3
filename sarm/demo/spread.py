"""Where one `sarm demo` run's policy success sits among the policy seeds of the same configuration.

`benchmarks/bench_demo_seeds.py` trains and rolls out the demo's BC and RA-BC policies (stage 6) under
several seeds on one demo run's data and SARM weights, and records the success rates in
`policy_seeds.json` beside this module. `sarm demo` reads that file and prints its own run against
it, so a reader who sees 68% after reading 78% in the README sees that both are in the range:

    print(spread_line(summary, load_spread()))
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

__all__ = ["MATCH_KEYS", "SPREAD_FILE", "load_spread", "placement", "spread_line"]

SPREAD_FILE = Path(__file__).with_name("policy_seeds.json")
# the DemoConfig fields a recorded spread must share with a run to describe it (the seed is left out:
# other seeds of the data are a different sample, and the spread is the guide the README quotes)
MATCH_KEYS = (
    "task",
    "train_episodes",
    "held_out_episodes",
    "sarm_steps",
    "policy_steps",
    "rollouts",
    "kappa",
    "mistakes",
    "failures",
    "smoke",
)
METHODS = {"bc": "BC", "sampler": "RA-BC"}


def load_spread(path: str | Path = SPREAD_FILE) -> list[dict]:
    """The recorded spreads (one per torch thread count measured), or [] when no file is there."""
    path = Path(path)
    if not path.is_file():
        return []
    runs = json.loads(path.read_text()).get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ValueError(
            f"`{path}` has no list of `runs`; rewrite it with "
            "`python benchmarks/bench_demo_seeds.py --record`"
        )
    for run in runs:
        for key in ("config", "success_rate", "policy_seeds"):
            if key not in run:
                raise ValueError(
                    f"a run in `{path}` has no `{key}`; rewrite it with "
                    "`python benchmarks/bench_demo_seeds.py --record`"
                )
    return runs


def placement(value: float, values: list[float]) -> str:
    """Where `value` sits among `values`: below / at the low end of / within / at the high end of / above."""
    low, high = min(values), max(values)
    if value < low:
        return "below the range"
    if value > high:
        return "above the range"
    if low == high:
        return "equal to every seed"
    if value == low:
        return "the lowest of the seeds"
    if value == high:
        return "the highest of the seeds"
    return "within the range"


def _summary(values: list[float]) -> str:
    return f"mean {statistics.fmean(values):.0%} (range {min(values):.0%}-{max(values):.0%})"


def spread_line(summary: dict, runs: list[dict]) -> str:
    """One line: the recorded spread of BC and RA-BC over policy seeds, and where this run sits in it.

    Of the recorded runs of this configuration, the one measured with this run's torch thread count
    is used (threads change the floating-point sums, so the models), else the first.
    """
    config = summary["config"]
    if not runs:
        return "seed spread: none recorded (python benchmarks/bench_demo_seeds.py --record measures it)"
    matching = [r for r in runs if not [k for k in MATCH_KEYS if r["config"].get(k) != config.get(k)]]
    if not matching:
        differ = [k for k in MATCH_KEYS if runs[0]["config"].get(k) != config.get(k)]
        return (
            f"seed spread: recorded for another configuration (it differs in {', '.join(differ)}); "
            "the spread of the default run is in the README"
        )
    same_threads = [r for r in matching if r.get("torch_threads") == summary.get("torch_threads")]
    spread = (same_threads or matching)[0]
    rates = spread["success_rate"]
    recorded = "; ".join(f"{name} {_summary(rates[m])}" for m, name in METHODS.items())
    mine = ", ".join(
        f"{name} {summary['success_rate'][m]:.0%} ({placement(summary['success_rate'][m], rates[m])})"
        for m, name in METHODS.items()
    )
    threads = spread.get("torch_threads", "?")
    where = (
        f"{len(spread['policy_seeds'])} policy seeds, torch {spread.get('torch', '?')}, {threads} thread(s)"
    )
    return f"seed spread over {where} (benchmarks/bench_demo_seeds.py): {recorded}; this run: {mine}"
