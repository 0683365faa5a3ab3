"""`sarm explore` as a process: one URL line with a token on stdout, Ctrl-C stops it, other hosts warn.
Each step waits on its event (the URL line, the reply, the exit) with a ceiling only a hang reaches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.waiting import HANG_S, read_line

ROOT = Path(__file__).resolve().parents[3]


def _default_sigint():
    """In the child: Ctrl-C's default action. A suite started in the background by a shell without job
    control (`nohup ... &`, some CI runners) inherits SIGINT as ignored, and Python then never raises
    KeyboardInterrupt: the server would not stop and the test would wait for it until the ceiling."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(dataset, *flags):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "sarm.cli", "explore", str(dataset), "--no-browser", *flags]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint
    )


def test_prints_url_serves_and_stops_on_ctrl_c(dataset):
    proc = _start(dataset, "--progress", str(dataset.parent / "progress.parquet"))
    try:
        url = read_line(proc, "URL line").strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        base, token = url.split("/?token=")
        with urllib.request.urlopen(f"{base}/api/episodes?token={token}", timeout=HANG_S) as reply:
            assert reply.status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out == ""


def test_other_host_warns(dataset):
    proc = _start(dataset, "--host", "0.0.0.0")
    try:
        assert read_line(proc, "URL line").startswith("http://0.0.0.0:")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    assert "warning: binding 0.0.0.0" in err


def test_bad_chunk_size_is_one_line(dataset):
    proc = _start(dataset, "--chunk-size", "0")
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 2
    assert err.strip() == "sarm explore: error: --chunk-size should be a positive integer, but got 0"
