"""benchmarks/stress_suite.sh: runs pytest beside two busy loops, reports each run, kills the loops."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]


def _stress(*pytest_args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNS": "2", "PYTHONPATH": str(ROOT)}
    script = ROOT / "benchmarks" / "stress_suite.sh"
    return subprocess.run(
        ["bash", str(script), *pytest_args], capture_output=True, text=True, env=env, timeout=HANG_S
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_green_runs_are_counted_and_the_loops_are_killed():
    run = _stress("tests/test_suite_rules.py")
    assert run.returncode == 0, run.stdout + run.stderr
    pids = [int(p) for p in re.search(r"busy loops: pids (\d+) (\d+)", run.stdout).groups()]
    assert re.findall(r"run (\d): rc=0, 4 passed in [\d.]+s, wall \d+ s", run.stdout) == ["1", "2", "1", "2"]
    assert all(_gone(pid) for pid in pids)


def test_a_failing_run_fails_the_script_and_names_the_test(tmp_path):
    (tmp_path / "test_red.py").write_text("def test_red():\n    assert False\n")
    run = _stress(str(tmp_path / "test_red.py"))
    assert run.returncode == 1
    assert "run 1: rc=1, 1 failed in" in run.stdout and "FAILED" in run.stdout and "test_red" in run.stdout
