"""The house rules, read from the code: `sarm`'s subpackages import only downward along the data flow,
`rabc` never imports `sarm`, and neither imports a trainer. Lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# sarm's rooms, lowest first: each may import its own room and the rooms before it, never a later one.
LAYERS = [
    *("labels", "data", "features", "model", "training", "inference", "scale", "online", "eval", "viz"),
    *("annotate", "explore", "demo", "cli"),
]
TRAINERS = ("lerobot", "openpi", "accelerate", "jax")


def _imports(path: Path, *, type_checking: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import, lazy ones included. `if TYPE_CHECKING:` blocks never run, so they
    are left out unless `type_checking` (a circle through them is still a circle in the design)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = set()
    if not type_checking:
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
            if node.module == "sarm":  # `from sarm import viz` names a room
                found += [(node.lineno, f"sarm.{alias.name}") for alias in node.names]
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "sarm" and len(parts) > 1 and parts[1] in LAYERS else None


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("sarm"), ids=lambda p: str(p.relative_to(ROOT)))
def test_sarm_imports_only_downward(path):
    rel = path.relative_to(ROOT / "sarm")
    here = rel.parts[0].removesuffix(".py")
    if here not in LAYERS:  # sarm/__init__.py re-exports from the rooms
        return
    bad = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if (room := _room(module)) is not None and LAYERS.index(room) > LAYERS.index(here)
    ]
    assert not bad, f"sarm/{rel} ({here}) imports a later stage of the data flow: {bad}"


@pytest.mark.parametrize("package", ["rabc", "sarm"])
def test_no_trainer_imports(package):
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in _files(package)
        for line, module in _imports(path)
        if module.split(".")[0] in TRAINERS
    ]
    assert not bad, f"{package} must not import a trainer: {bad}"


def test_rabc_never_imports_sarm():
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in _files("rabc")
        for line, module in _imports(path)
        if module.split(".")[0] == "sarm"
    ]
    assert not bad, f"rabc must stay usable with any progress file, without sarm: {bad}"


def test_every_sarm_file_belongs_to_a_room():
    loose = [p.name for p in (ROOT / "sarm").glob("*.py") if p.stem not in {"__init__", *LAYERS}]
    assert not loose, f"sarm/{loose} belongs to no room of {LAYERS}: move it into one, or add a room"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _submodules(path: Path) -> list[str]:
    """`from pkg import mod` names module `pkg.mod` too (TYPE_CHECKING imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        for alias in node.names
    ]


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """A shortest circle `a -> b -> a` for each group of modules that reach one another by imports."""

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reaches = {name: reach(name) for name in graph}
    circles, done = [], set()
    for start in sorted(graph):
        if start in done or start not in reaches[start]:
            continue
        group = {m for m in reaches[start] if start in reaches[m]}
        done |= group
        parents: dict[str, str | None] = {start: None}
        frontier, last = [start], None
        while last is None:  # breadth-first from `start` until an import leads back to it
            step = []
            for node in frontier:
                if start in graph[node]:
                    last = node
                    break
                for nxt in sorted((graph[node] & group) - set(parents)):
                    parents[nxt] = node
                    step.append(nxt)
            frontier = step
        chain = []
        while last is not None:
            chain.append(last)
            last = parents[last]
        circles.append([*reversed(chain), start])
    return circles


def test_no_import_circles_between_modules():
    """Between the modules of sarm, rabc and integrations, counting lazy and `if TYPE_CHECKING:` imports."""
    files = {_module_name(p): p for package in ("sarm", "rabc", "integrations") for p in _files(package)}
    graph = {
        name: {
            m
            for m in [module for _, module in _imports(path, type_checking=True)] + _submodules(path)
            if m in files and m != name and not name.startswith(m + ".")
        }
        for name, path in files.items()
    }
    circles = _circles(graph)
    assert not circles, "import circles (lazy and TYPE_CHECKING imports count): " + "; ".join(
        " -> ".join(c) for c in circles
    )
