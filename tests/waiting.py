"""How tests wait: on the event they need (a printed line, a file, a DOM condition), never on a short clock.

`HANG_S` is the one ceiling: long enough that only a hang reaches it, on a 2-core machine that is running
other jobs. Speed belongs in `benchmarks/`, not in tests (tests/test_suite_rules.py checks the suite).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

HANG_S = 600  # seconds: the ceiling of every wait in the suite
HANG_MS = HANG_S * 1000  # the same, for Playwright (milliseconds)
POLL_S = 0.02  # how often a condition is looked at again (not a deadline)


def read_line(proc: subprocess.Popen, what: str = "its first line") -> str:
    """The next line of `proc.stdout`; fails (and kills `proc`) only if none comes within `HANG_S`."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(HANG_S)
    if not got:
        proc.kill()
        raise AssertionError(f"{proc.args!r} printed no {what} within {HANG_S} s (a hang)")
    return got[0]


def wait_until(condition: Callable[[], bool], what: str, proc: subprocess.Popen | None = None) -> None:
    """Polls `condition` until it holds; fails if `proc` exits first or `HANG_S` passes (a hang)."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {HANG_S} s (a hang)")
        time.sleep(POLL_S)


def wait_for_file(path: Path, proc: subprocess.Popen | None = None) -> None:
    """Waits until `path` exists (see `wait_until`)."""
    wait_until(path.exists, f"{path}", proc)


# A child-process script blocks with this until the test creates `release` (or a hang ends it).
HOLD_UNTIL = f"""
def hold_until(release):
    import os, time
    deadline = time.monotonic() + {HANG_S}
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep({POLL_S})
"""
