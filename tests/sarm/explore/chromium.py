"""What the browser tests share: Debian's chromium, Playwright, where screenshots go, and the skip.

from chromium import CHROMIUM, MISSING, SHOTS, skip_without_browser
skip_without_browser()          # at module level: skips unless CI=true, where the tests then fail
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[3] / "docs" / "explore"
MISSING = None
try:
    import playwright.sync_api  # noqa: F401
except ImportError:
    MISSING = "playwright is not installed (pip install playwright)"
if MISSING is None and not Path(CHROMIUM).exists():
    MISSING = "chromium is not installed (apt-get install -y chromium)"


def skip_without_browser() -> None:
    """Skip the calling test module when chromium or playwright is missing, except in CI (CI=true)."""
    if MISSING and os.environ.get("CI") != "true":
        pytest.skip(f"browser tests skipped: {MISSING}", allow_module_level=True)
