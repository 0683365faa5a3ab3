"""Processes of the Meta-World benchmark: tasks side by side, and a helper per task once no task waits.

`run_tasks` keeps `parallel` processes busy: one per task while tasks wait, then a helper (`run.py
--one TASK --helper`) for a task still running, so no core idles at the end. A task's workers split
its units of work (reward models, policy runs) with `shared`: claim files taken one unit at a time,
from opposite ends of the list. Every unit is seeded, so who runs it does not change its result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 5.0  # how often a worker looks for another worker's results


def claim(path: Path) -> bool:
    """Take one unit of work (a reward model, an arm's seed) for this process; False while another
    live worker holds it. A claim left by a killed worker is taken over."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(path.read_text() or 0), 0)
                return False  # its worker is alive
            except (ProcessLookupError, ValueError):
                path.unlink(missing_ok=True)  # a killed worker's claim
            except PermissionError:
                return False
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def shared(units: list, paths):
    """Work shared by the workers of one task: yields (unit, mine) for every unit, mine=True for the
    ones this process is to do. `paths(unit)` -> (done file, claim file). Units are claimed one at a
    time as they come; those another worker held come last, once it has done them (a unit whose worker
    was killed is taken over)."""
    later = []
    for unit in units:
        done, held = paths(unit)
        if done.exists():
            yield unit, False
        elif claim(held):
            yield unit, True
        else:
            later.append(unit)
    for unit in later:
        done, held = paths(unit)
        while not done.exists() and not claim(held):
            time.sleep(POLL_S)
        yield unit, not done.exists()


def run_tasks(script: Path, out: Path, tasks: list[str], parallel: int, extra: list[str]) -> None:
    """Run `script --one TASK` for every task, `parallel` processes at once, logs in `out/<name>.log`;
    a free slot with no task waiting goes to a helper of a running task (one each)."""
    out.mkdir(parents=True, exist_ok=True)
    pending, running, helped = list(tasks), [], set()  # running: (log name, task, process)
    while pending or running:
        unhelped = sorted({task for _, task, _ in running} - helped)
        while len(running) < parallel and (pending or unhelped):
            helper = not pending
            task = unhelped.pop(0) if helper else pending.pop(0)
            name = f"{task}.helper" if helper else task
            log = (out / f"{name}.log").open("a")
            cmd = [sys.executable, str(script), "--out", str(out), "--one", task, *extra]
            cmd += ["--helper"] if helper else []
            helped |= {task} if helper else set()
            running.append((name, task, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
            print(f"started {name} (log: {out / (name + '.log')})", flush=True)
        time.sleep(2)
        for entry in list(running):
            if entry[2].poll() is not None:
                running.remove(entry)
                code = entry[2].returncode
                print(f"{entry[0]}: {'done' if code == 0 else f'FAILED ({code})'}", flush=True)
