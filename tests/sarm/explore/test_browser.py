"""`sarm explore` in a real headless Chromium (Debian's package, driven by Playwright): the table loads
and sorts, an episode's video plays and the plot cursor follows, clicking the plot seeks, no console
errors. Screenshots go to docs/explore/. Skipped without chromium, except in CI (CI=true), where it fails
(the `chromium` fixture of conftest.py)."""

from __future__ import annotations

import pytest
from chromium import SHOTS


@pytest.fixture(scope="module")
def page(server, chromium):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--autoplay-policy=no-user-gesture-required"]
        )
        pg = browser.new_page(viewport={"width": 1100, "height": 800})
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server.url)
        pg.errors = errors
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
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "table.png"))
    assert page.errors == []


def test_video_plays_cursor_follows_and_click_seeks(page):
    page.click("#episodes tbody tr[data-episode='1']")
    page.wait_for_function("document.querySelector('#videos video')?.readyState >= 2", timeout=15000)
    start = page.evaluate("document.querySelector('#videos video').currentTime")
    assert start == pytest.approx(2.0, abs=0.11)  # episode 1 starts 2 s into the shared file
    page.keyboard.press("Space")
    page.wait_for_function("Number(document.getElementById('plot').dataset.cursor) >= 5", timeout=10000)
    page.keyboard.press("Space")
    page.wait_for_timeout(200)
    cursor = int(page.get_attribute("#plot", "data-cursor"))
    time = page.evaluate("document.querySelector('#videos video').currentTime")
    assert abs(cursor - int((time - 2.0) * 10)) <= 1  # the cursor is the video's frame
    page.screenshot(path=str(SHOTS / "episode.png"))
    box = page.locator("#plot").bounding_box()
    page.mouse.click(box["x"] + 30 + (box["width"] - 60) * 20 / 29, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    assert int(page.get_attribute("#plot", "data-cursor")) == 20
    time = page.evaluate("document.querySelector('#videos video').currentTime")
    assert time == pytest.approx(2.0 + 20.5 / 10, abs=0.06)
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)
    assert int(page.get_attribute("#plot", "data-cursor")) == 21
    page.keyboard.press("Shift+ArrowLeft")
    page.wait_for_timeout(200)
    assert int(page.get_attribute("#plot", "data-cursor")) == 11
    assert page.errors == []
