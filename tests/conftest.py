"""Shared test helpers: paths to ../shared and small progress tables built by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch._dynamo  # noqa: F401  (see below)

# torch's optimizers import torch._dynamo, which loads triton and its LLVM. Loaded after Mesa's llvmpipe
# (the Meta-World tests render headless in this process), triton's LLVM segfaults on import; loaded
# first, both coexist. The demo itself renders in a spawned process and is not affected.

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures" / "lerobot_sarm_v0.6.1"


def progress_table(episodes, head: str = "sparse", start_index: int = 0) -> pa.Table:
    """A progress table in LeRobot's schema: one list of progress values per episode, in order."""
    lengths = [len(e) for e in episodes]
    index = np.arange(start_index, start_index + sum(lengths), dtype=np.int64)
    episode = np.repeat(np.arange(len(episodes), dtype=np.int64), lengths)
    frame = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    values = np.concatenate([np.asarray(e, dtype=np.float32) for e in episodes])
    return pa.table(
        {"index": index, "episode_index": episode, "frame_index": frame, f"progress_{head}": values}
    )


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(
            f"LeRobot fixtures not found at {FIXTURES}: the tests need ../shared beside the repository"
        )
    return FIXTURES


def slow_marker_problems(items) -> list[str]:
    """A test may take more than 60 s alone on an idle machine only when marked
    `@pytest.mark.slow(reason="...")`: the reason says what it does that takes the time."""
    bad = []
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker is not None and not str(marker.kwargs.get("reason", "")).strip():
            bad.append(f'{item.nodeid}: @pytest.mark.slow needs reason="..." (why it takes more than 60 s)')
    return bad


def pytest_collection_modifyitems(config, items):
    """Refuse `slow` markers without a reason; run the tests that import JAX last (JAX starts threads, and
    later DataLoader workers are forked)."""
    if bad := slow_marker_problems(items):
        raise pytest.UsageError("\n".join(bad))
    items.sort(key=lambda item: item.path.name == "test_openpi.py")  # stable: the rest keep their order
