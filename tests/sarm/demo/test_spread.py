"""`sarm demo`'s seed spread: where one run sits among the recorded policy seeds, and the packaged record."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sarm.demo.config import DemoConfig
from sarm.demo.spread import MATCH_KEYS, SPREAD_FILE, load_spread, placement, spread_line


def _record(threads: int, bc: list[float], sampler: list[float], **config) -> dict:
    return {
        "config": {**dataclasses.asdict(DemoConfig()), **config},
        "torch": "2.13.0+cpu",
        "torch_threads": threads,
        "policy_seeds": list(range(len(bc))),
        "success_rate": {"bc": bc, "sampler": sampler},
    }


def _summary(bc: float, sampler: float, threads: int = 1, **config) -> dict:
    return {
        "config": {**dataclasses.asdict(DemoConfig()), **config},
        "success_rate": {"bc": bc, "sampler": sampler},
        "torch_threads": threads,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.30, "below the range"),
        (0.40, "the lowest of the seeds"),
        (0.45, "within the range"),
        (0.50, "the highest of the seeds"),
        (0.52, "above the range"),
    ],
)
def test_placement(value, expected):
    assert placement(value, [0.40, 0.50, 0.44]) == expected
    assert placement(0.5, [0.5, 0.5]) == "equal to every seed"


def test_line_names_the_spread_and_where_this_run_sits():
    runs = [_record(1, [0.40, 0.44, 0.48], [0.66, 0.72, 0.78]), _record(2, [0.2, 0.3], [0.9, 1.0])]
    line = spread_line(_summary(0.44, 0.68, threads=1), runs)
    assert "3 policy seeds, torch 2.13.0+cpu, 1 thread(s)" in line
    assert "BC mean 44% (range 40%-48%)" in line and "RA-BC mean 72% (range 66%-78%)" in line
    assert "this run: BC 44% (within the range), RA-BC 68% (within the range)" in line
    # the record of the run's own thread count is chosen; any matching one when none has it
    assert "2 policy seeds" in spread_line(_summary(0.3, 0.9, threads=2), runs)
    assert "3 policy seeds" in spread_line(_summary(0.3, 0.9, threads=4), runs)


def test_other_configurations_and_no_record_say_so():
    runs = [_record(1, [0.4], [0.7])]
    line = spread_line(_summary(0.4, 0.7, mistakes="ignore", failures="keep"), runs)
    assert line.startswith(
        "seed spread: recorded for another configuration (it differs in mistakes, failures)"
    )
    assert "none recorded" in spread_line(_summary(0.4, 0.7), [])


def test_load_spread(tmp_path):
    assert load_spread(tmp_path / "absent.json") == []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {}}))
    with pytest.raises(
        ValueError, match=r"no list of `runs`; rewrite it with `python benchmarks/bench_demo"
    ):
        load_spread(bad)
    bad.write_text(json.dumps({"runs": [{"config": {}, "policy_seeds": [0]}]}))
    with pytest.raises(ValueError, match="has no `success_rate`"):
        load_spread(bad)


def test_the_packaged_spread_describes_the_default_demo():
    """If the demo's defaults change, the recorded spread must be measured again (or the demo says so)."""
    runs = load_spread()
    assert runs, f"{SPREAD_FILE} is missing: python benchmarks/bench_demo_seeds.py --demo DIR --record"
    default = dataclasses.asdict(DemoConfig())
    for run in runs:
        assert {k: run["config"][k] for k in MATCH_KEYS} == {k: default[k] for k in MATCH_KEYS}
        assert len(run["policy_seeds"]) >= 3
        for rates in run["success_rate"].values():
            assert len(rates) == len(run["policy_seeds"]) and all(0 <= r <= 1 for r in rates)
