"""benchmarks/bench_online.py runs in its quick configuration (so it cannot rot); no timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]


def test_bench_online_quick_prints_its_table(tmp_path):
    pytest.importorskip("open_clip")
    out = tmp_path / "online.md"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_online.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=HANG_S, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    table = out.read_text()
    assert "| encoder | envs | stream ms/step |" in table
    rows = [line for line in table.splitlines() if line.startswith(("| pixels", "| clip"))]
    assert len(rows) == 4  # two encoders x 1 and 2 environments
    assert all(float(row.split("|")[-2]) < 1e-5 for row in rows)  # stream and naive give the same progress
