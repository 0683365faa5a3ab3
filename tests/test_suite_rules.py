"""The suite's own rules, read from its code: tests wait on events with `tests.waiting`'s hang ceiling,
never on a short clock (a busy machine made such waits fail a newcomer's first run), and a test marked
`slow` says why."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

from tests.conftest import slow_marker_problems
from tests.waiting import HANG_S

TESTS = Path(__file__).resolve().parent
FLOOR_S = 120  # the shortest ceiling a test may name as a number (seconds)


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            yield node, name


def _number(node) -> float | None:
    value = node.value if isinstance(node, ast.Constant) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def clock_waits(path: Path) -> list[str]:
    """Every wait in `path` that a busy machine could lose: a sleep, a Playwright pause, a short timeout."""
    bad = []
    for call, name in _calls(path):
        shown = path.relative_to(TESTS.parent) if path.is_relative_to(TESTS.parent) else path.name
        where = f"{shown}:{call.lineno}"
        if name == "wait_for_timeout":
            bad.append(f"{where}: page.wait_for_timeout (wait for a DOM condition instead)")
        elif name == "sleep":
            bad.append(f"{where}: sleep (wait for the event with tests.waiting.wait_until)")
        for kw in call.keywords:
            if kw.arg in {"timeout", "timeout_s"} and name.startswith("wait_for"):
                bad.append(f"{where}: {name}(timeout=...) (the page's default is the hang ceiling)")
            elif kw.arg in {"timeout", "timeout_s"} and (_number(kw.value) or FLOOR_S) < FLOOR_S:
                bad.append(f"{where}: {kw.arg}={_number(kw.value)} (use tests.waiting.HANG_S)")
        if name in {"join", "wait"} and call.args and (n := _number(call.args[0]) or FLOOR_S) < FLOOR_S:
            bad.append(f"{where}: {name}({n}) (use tests.waiting.HANG_S)")
    return bad


def test_no_test_waits_on_a_short_clock():
    files = [p for p in TESTS.rglob("*.py") if p.name != "waiting.py"]
    bad = [b for p in files for b in clock_waits(p)]
    assert not bad, "tests that wait on a clock:\n" + "\n".join(bad)


def test_the_rule_sees_what_it_forbids(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\n"
        "time.sleep(0.4)\n"
        "page.wait_for_timeout(200)\n"
        "page.wait_for_function('x', timeout=10_000)\n"
        "proc.communicate(timeout=10)\n"
        "thread.join(10)\n"
        "proc.communicate(timeout=600)\n"  # a ceiling: allowed
        "', '.join(['a'])\n"
    )
    bad = clock_waits(sample)
    assert [b.split(": ", 1)[1].split(" ")[0] for b in bad] == [
        "sleep",
        "page.wait_for_timeout",
        "wait_for_function(timeout=...)",
        "timeout=10",
        "join(10)",
    ]


def test_the_ceiling_is_one_that_only_a_hang_reaches():
    assert HANG_S >= FLOOR_S


def _item(name, marker):
    return SimpleNamespace(nodeid=name, get_closest_marker=lambda m: marker if m == "slow" else None)


def test_a_slow_test_must_say_why():
    items = [
        _item("t.py::plain", None),
        _item("t.py::why", SimpleNamespace(args=(), kwargs={"reason": "trains a policy (3 min)"})),
        _item("t.py::silent", SimpleNamespace(args=(), kwargs={})),
    ]
    assert slow_marker_problems(items) == [
        't.py::silent: @pytest.mark.slow needs reason="..." (why it takes more than 60 s)'
    ]

