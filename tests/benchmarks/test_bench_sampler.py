"""benchmarks/bench_sampler.py in a tiny configuration, so the benchmark cannot rot (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]


def test_the_sampler_benchmark_runs_and_reports_the_ratio_and_the_batches_path(tmp_path):
    out = tmp_path / "sampler.md"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_sampler.py"),
        "--sizes",
        "4096",
        "--draws",
        "1000",
    ]
    run = subprocess.run(
        [*cmd, "--repeats", "1", "--out", str(out)], capture_output=True, text=True, timeout=HANG_S, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = out.read_text()
    assert "| 4.1e+03 | RABCWeightedSampler |" in report
    assert "| 4.1e+03 | RABCWeightedSampler.batches(64) |" in report
    assert (
        "| 4.1e+03 | torch WeightedRandomSampler |" in report
        and "**ratio (ours / torch, draws/s)**" in report
    )
