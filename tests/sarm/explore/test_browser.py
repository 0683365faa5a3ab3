"""`sarm explore` in a real headless Chromium (Debian's package, driven by Playwright): the table loads
and sorts, an episode's video plays and the plot cursor follows, clicking the plot seeks, no console
errors. Every step waits on a DOM condition, never on a clock. Screenshots go to docs/explore/ with
SARM_SCREENSHOTS=1 (chromium.shot). Skipped without chromium, except in CI (CI=true), where it fails
(the `chromium` fixture of conftest.py)."""

from __future__ import annotations

import pytest
from chromium import new_page, shot


@pytest.fixture(scope="module")
def page(server, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--autoplay-policy=no-user-gesture-required"]
        )
        pg = new_page(browser, viewport={"width": 1100, "height": 800})
        pg.goto(server.url)
        yield pg
        browser.close()


def _column(page, index):
    return page.eval_on_selector_all(
        f"#episodes tbody tr td:nth-child({index})", "tds => tds.map(t => t.textContent)"
    )


def test_table_loads_and_sorts(page):
    page.wait_for_selector("#episodes tbody tr.row")
    assert _column(page, 1) == ["0", "1", "2"]
    heads = page.eval_on_selector_all("#episodes th", "ths => ths.map(t => t.dataset.key)")
    length = heads.index("length") + 1
    page.click("th[data-key=length]")
    assert _column(page, length) == ["20", "25", "30"]
    page.click("th[data-key=length]")
    assert _column(page, length) == ["30", "25", "20"]
    page.select_option("#task-filter", "fold the towel")
    assert _column(page, 1) == ["1"]
    page.select_option("#task-filter", "")
    shot(page, "table.png")
    assert page.errors == []


VIDEO = "document.querySelector('#videos video')"
CURSOR = "Number(document.getElementById('plot').dataset.cursor)"


def _cursor_reaches(page, frame):
    """Waits for the plot cursor to be `frame` (a wrong frame fails at the hang ceiling, not by a clock)."""
    page.wait_for_function(f"{CURSOR} === {frame}")


def test_video_plays_cursor_follows_and_click_seeks(page):
    page.click("#episodes tbody tr[data-episode='1']")
    page.wait_for_function(f"{VIDEO}?.readyState >= 2")
    start = page.evaluate(f"{VIDEO}.currentTime")
    assert start == pytest.approx(2.0, abs=0.11)  # episode 1 starts 2 s into the shared file
    page.keyboard.press("Space")
    page.wait_for_function(f"{CURSOR} >= 5")  # it plays, and the cursor moves with it
    page.keyboard.press("Space")
    # paused: the cursor settles on the video's frame (episode 1 starts 2 s in, 10 fps)
    page.wait_for_function(
        f"{VIDEO}.paused && Math.abs({CURSOR} - Math.floor(({VIDEO}.currentTime - 2) * 10)) <= 1"
    )
    shot(page, "episode.png")
    box = page.locator("#plot").bounding_box()
    page.mouse.click(box["x"] + 30 + (box["width"] - 60) * 20 / 29, box["y"] + box["height"] / 2)
    _cursor_reaches(page, 20)
    page.wait_for_function(f"!{VIDEO}.seeking")
    time = page.evaluate(f"{VIDEO}.currentTime")
    assert time == pytest.approx(2.0 + 20.5 / 10, abs=0.06)
    page.keyboard.press("ArrowRight")
    _cursor_reaches(page, 21)
    page.keyboard.press("Shift+ArrowLeft")
    _cursor_reaches(page, 11)
    assert page.errors == []
