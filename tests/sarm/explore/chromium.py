"""What the browser tests share: Debian's chromium, Playwright, pages that wait on events, screenshots,
and the skip.

from chromium import CHROMIUM, MISSING, new_page, shot, skip_without_browser
skip_without_browser()          # at module level: skips unless CI=true, where the tests then fail
page = new_page(browser, viewport=...)   # console errors in page.errors; waits only a hang ends
shot(page, "table.png")         # into docs/explore/ with SARM_SCREENSHOTS=1, else a scratch folder
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.waiting import HANG_MS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[3] / "docs" / "explore"  # the committed screenshots
SCRATCH = Path(tempfile.gettempdir()) / "sarm-explore-shots"  # where a plain test run puts its own
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


def new_page(browser, **options):
    """A page whose waits (selectors, functions, clicks) end only at the hang ceiling, never on a short
    clock, with its console errors and page errors collected in `page.errors`."""
    page = browser.new_page(**options)
    page.set_default_timeout(HANG_MS)
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def shot(page, name: str, **options) -> Path:
    """Screenshots `page` as `name`: into docs/explore/ (the committed pictures) only when
    SARM_SCREENSHOTS=1 is set, else into a scratch folder, so a test run never rewrites the docs."""
    folder = SHOTS if os.environ.get("SARM_SCREENSHOTS") == "1" else SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), **options)
    return folder / name
