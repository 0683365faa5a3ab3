"""Two processes sharing one Meta-World task (`workers.py --helper`): every unit of work is done exactly once,
the units a worker met claimed come last, and a killed worker's claim is taken over."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[2] / "benchmarks" / "metaworld" / "workers.py"


@pytest.fixture(scope="module")
def workers():
    spec = importlib.util.spec_from_file_location("metaworld_workers", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_two_workers_split_the_units_and_each_sees_all(workers, tmp_path):
    units = list(range(7))

    def paths(u):
        return tmp_path / f"{u}.done", tmp_path / f"{u}.claim"

    first = workers.shared(units, paths)
    second = workers.shared(units[::-1], paths)  # the helper's order
    seen = {"first": [], "second": []}
    active = {"first": first, "second": second}
    while active:  # the workers take turns; each marks its own units done as soon as it gets them
        for name, gen in list(active.items()):
            try:
                unit, mine = next(gen)
            except StopIteration:
                del active[name]
                continue
            if mine:
                paths(unit)[0].touch()
            seen[name].append((unit, mine))
    done_by = {w: {u for u, mine in seen[w] if mine} for w in seen}
    assert done_by["first"].isdisjoint(done_by["second"])
    assert done_by["first"] | done_by["second"] == set(units)
    assert done_by["first"] and done_by["second"]  # both worked
    for w in seen:
        assert sorted(u for u, _ in seen[w]) == units  # every worker gets every unit, to read its result
    # the first worker went forward, the helper backward
    assert min(done_by["first"]) == 0 and max(done_by["second"]) == 6


def test_a_finished_unit_is_never_redone(workers, tmp_path):
    (tmp_path / "a.done").touch()
    got = list(workers.shared(["a", "b"], lambda u: (tmp_path / f"{u}.done", tmp_path / f"{u}.claim")))
    assert got == [("a", False), ("b", True)]


def test_claims(workers, tmp_path):
    claim = tmp_path / "unit.claim"
    assert workers.claim(claim)
    assert claim.read_text() == str(os.getpid())
    assert not workers.claim(claim)  # held by a live process (this one)
    claim.write_text(str(_dead_pid()))
    assert workers.claim(claim)  # a killed worker's claim is taken over
    assert claim.read_text() == str(os.getpid())


def test_a_held_unit_comes_last_once_done_or_taken_over(workers, tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "POLL_S", 0.01)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        for u in ("x", "y"):  # both held by a live worker
            (tmp_path / f"{u}.claim").write_text(str(holder.pid))
        gen = workers.shared(["x", "y", "z"], lambda u: (tmp_path / f"{u}.done", tmp_path / f"{u}.claim"))
        assert next(gen) == ("z", True)
        (tmp_path / "x.done").touch()  # the holder finishes x, then is killed while on y
        assert next(gen) == ("x", False)
        holder.kill()
        holder.wait()
        assert next(gen) == ("y", True)  # taken over
        assert (tmp_path / "y.claim").read_text() == str(os.getpid())
    finally:
        holder.kill()
