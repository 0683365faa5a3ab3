"""The examples run offline on CPU and do what their docstrings say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.waiting import HANG_S

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_loop.py"), *args],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        cwd=EXAMPLES.parent,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # a tiny MLP: threads only contend (2x slower on 2 cores)
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def _epoch_losses(out: str, mode: str) -> list[float]:
    return [float(x) for x in re.findall(rf"^{mode} epoch \d+: mean loss ([0-9.]+)", out, re.M)]


def test_custom_loop_trains_with_the_sampler_and_with_the_loss_and_resumes():
    out = _run()  # default: both modes
    assert re.search(r"^7172 frames, mean weight 0\.5\d\d$", out, re.M), out  # kappa="auto" targets 0.55
    for mode in ("sampler", "loss"):
        losses = _epoch_losses(out, mode)
        assert len(losses) == 3, out
        assert losses[-1] < 0.6 * losses[0], f"{mode} loss did not decrease: {losses}"
    # the example compares the resumed batches with the uninterrupted run's and exits non-zero otherwise
    assert "mode=sampler done: resumed after 10 steps, the other 54 batches of epoch 1 match" in out
    assert out.rstrip().endswith("mode=loss done")
