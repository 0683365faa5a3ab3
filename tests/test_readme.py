"""The README works as written: every code block runs or says why not, every path and module it names exists.

A ```python or ```bash block runs unless the line just before it is `<!-- not run: <reason> -->`. Each
runnable block runs in a subprocess, in a fresh temporary directory holding `sarm_progress.parquet` (a
copy of `rabc`'s packaged example), with this checkout on PYTHONPATH; bash blocks find `python`,
`python3`, `rabc` and `sarm` on PATH as this interpreter and this checkout's commands.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = (README, ROOT / "benchmarks" / "metaworld" / "README.md")  # checked for stale paths
EXAMPLE_PROGRESS = ROOT / "rabc" / "data" / "example_progress.parquet"
NOT_RUN = re.compile(r"<!-- not run: (?P<reason>\S.*\S) -->")
FENCE = re.compile(r"```(?P<lang>\S*)\s*")
OUTPUT_FLAG = re.compile(r"(?:^|\s)(?:-o|--output|--out|--plot)\s+(?P<path>[^\s`]+)")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    skip: str | None  # the reason given in `<!-- not run: ... -->`, or None: the block runs

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def code_blocks(text: str) -> list[Block]:
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.fullmatch(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.fullmatch(before)
        blocks.append(
            Block(opening["lang"], "\n".join(lines[i + 1 : end]) + "\n", i + 1, marker and marker["reason"])
        )
        i = end + 1
    return blocks


BLOCKS = code_blocks(README.read_text())
RUN = [b for b in BLOCKS if b.skip is None]


def test_every_block_is_python_or_bash_and_runs_unless_marked():
    assert [b for b in BLOCKS if b.lang not in ("python", "bash")] == []
    assert len([b for b in RUN if b.lang == "python"]) >= 2  # the quick start and SARM on features
    assert len([b for b in RUN if b.lang == "bash"]) >= 2  # the quick start's commands
    assert [str(b) for b in BLOCKS if b.skip is not None and len(b.skip) < 10] == []  # a real reason


def test_parser_tells_marked_blocks_from_runnable_ones():
    text = "intro\n\n<!-- not run: needs a dataset -->\n```bash\nsarm train\n```\n\n```python\nx = 1\n```\n"
    marked, runnable = code_blocks(text)
    assert (marked.lang, marked.skip, marked.code) == ("bash", "needs a dataset", "sarm train\n")
    assert (runnable.lang, runnable.skip, runnable.line) == ("python", None, 8)


@pytest.fixture
def workdir(tmp_path):
    """A fresh directory holding `sarm_progress.parquet`, and an environment with this checkout's commands."""
    shutil.copy(EXAMPLE_PROGRESS, tmp_path / "sarm_progress.parquet")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    shims = {"python": "", "python3": "", "rabc": "-m rabc.cli ", "sarm": "-m sarm.cli "}
    for name, args in shims.items():
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {args}"$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return tmp_path, env


@pytest.mark.parametrize("block", RUN, ids=str)
def test_block_runs_as_written(block, workdir):
    cwd, env = workdir
    script = cwd / ("readme_block.py" if block.lang == "python" else "readme_block.sh")
    script.write_text(block.code)
    command = (
        [sys.executable, str(script)] if block.lang == "python" else ["bash", "-eo", "pipefail", str(script)]
    )
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{block} failed:\n{block.code}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    written = [m["path"] for m in OUTPUT_FLAG.finditer(block.code)]
    assert [p for p in written if not (cwd / p).exists()] == [], f"{block} did not write its outputs"


def _inline_code(path: Path) -> list[str]:
    """The `inline code` spans of a markdown file, outside fenced blocks."""
    text, spans, fenced = path.read_text(), [], False
    for line in text.splitlines():
        if FENCE.fullmatch(line) or line.strip() == "```":
            fenced = not fenced
        elif not fenced:
            spans += re.findall(r"`([^`\n]+)`", line)
    return spans


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_in_backticks_exist(doc):
    bases = (ROOT, doc.parent)
    tops = {p.name for base in bases for p in base.iterdir()}
    named = [
        s for s in _inline_code(doc) if re.fullmatch(r"[\w.\-/]+", s) and "/" in s and not s.startswith("/")
    ]
    checked = [s for s in named if s.split("/")[0] in tops or s.startswith("../")]
    if not (ROOT.parent / "shared").is_dir():
        checked = [s for s in checked if not s.startswith("../shared")]
    missing = [s for s in checked if not any((base / s).exists() for base in bases)]
    assert missing == [], f"{doc.name} names paths that do not exist: {missing}"
    assert checked  # the extraction found paths to check


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_names_in_backticks_resolve(doc):
    names = [s for s in _inline_code(doc) if re.fullmatch(r"(sarm|rabc|integrations)(\.\w+)+", s)]
    assert [s for s in names if not _resolves(s)] == []
    assert _resolves("sarm.training.loop.train") and not _resolves("sarm.cli.no_such_name")


def test_the_two_commands_use_their_own_environments_and_the_test_command_is_ci_s():
    two = README.read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [b.code for b in code_blocks(two)]
    venvs = [m for code in commands for m in re.findall(r"python3 -m venv (\S+)", code)]
    assert len(venvs) == len(commands) == 2 and len(set(venvs)) == 2, venvs  # no command reuses another's
    assert all(fnmatch.fnmatch(f"{v}/", ".venv*/") for v in venvs)  # ignored by .gitignore's `.venv*/`
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r'pip install -q (torch==\S+ torchvision==\S+ -e "\.\[dev\]")', ci)
    assert install and f"pip install {install[1]}" in commands[1]
    assert "python -m pytest -q" in ci and commands[1].rstrip().endswith("&& python -m pytest -q")


def test_demo_output_folders_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("sarm_demo/summary.json", "rabc_demo/rabc_weights.parquet", ".venv-demo/x", ".venv-test/x"):
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True)
        assert check.returncode == 0, f"{path} is not ignored by .gitignore"
