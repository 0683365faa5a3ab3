"""The house rules, read from the code: `sarm`'s subpackages import only downward along the data flow,
`rabc` never imports `sarm`, and neither imports a trainer. Lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# sarm's rooms, lowest first: each may import its own room and the rooms before it, never a later one.
LAYERS = [
    *("labels", "data", "features", "model", "training", "inference", "eval", "viz"),
    *("annotate", "explore", "demo", "cli"),
]
TRAINERS = ("lerobot", "openpi", "accelerate", "jax")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import, lazy ones included; `if TYPE_CHECKING:` blocks run never."""
    tree = ast.parse(path.read_text(), filename=str(path))
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


def test_no_import_circles_between_sarm_modules():
    files = {_module_name(p): p for p in _files("sarm")}
    graph = {
        name: {m for _, m in _imports(path) if m in files and m != name and not name.startswith(m + ".")}
        for name, path in files.items()
    }
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [*path, nxt]
            if state.get(nxt) is None and (circle := visit(nxt, [*path, nxt])):
                return circle
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None and (circle := visit(start, [start])):
            pytest.fail(f"import circle (lazy imports count): {' -> '.join(circle)}")
