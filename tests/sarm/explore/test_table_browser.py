"""The episode table in headless Chromium: outcome and score columns, sorting, the outcome / score range /
annotation filters, bulk selection, keep / drop and the export (checked against `rabc curate`), the
download, windowed rows for many episodes, and server frames for an MPEG-4 part 2 video (frames.js).
No console errors anywhere. Skipped without chromium / playwright, except in CI (CI=true)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from chromium import CHROMIUM, MISSING, new_page, shot, skip_without_browser
from table_data import ANNOTATED, CHUNK, write_mpeg4_dataset, write_table_dataset

from rabc.curation import curate
from rabc.episodes import score_episodes
from sarm.data.writer import LeRobotWriter
from sarm.explore import Catalog, ExploreServer

skip_without_browser()


def _serve(catalog, **options):
    srv = ExploreServer(catalog, "127.0.0.1", 0, **options)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_table_dataset(tmp_path_factory.mktemp("table"))


@pytest.fixture(scope="module")
def server(files, tmp_path_factory):
    catalog = Catalog(files["root"], files["progress"], files["weights"])
    srv = _serve(catalog, export_dir=tmp_path_factory.mktemp("exports"))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    assert MISSING is None, f"browser tests need chromium in CI: {MISSING}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def opener(srv, viewport=(1300, 800)):
        pg = new_page(browser, viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
        pg.goto(srv.url)
        pg.wait_for_selector("#episodes tbody tr.row")
        pages.append(pg)
        return pg

    yield opener
    for pg in pages:
        pg.close()


def _shown(page, key="episode_index"):
    heads = page.eval_on_selector_all("#episodes th", "ths => ths.map(t => t.dataset.key)")
    i = heads.index(key) + 1
    return page.eval_on_selector_all(
        f"#episodes tbody tr.row td:nth-child({i})", "tds => tds.map(t => t.textContent)"
    )


def _episodes(page):
    return [int(t) for t in _shown(page)]


def _scores(files):
    return score_episodes(files["progress"], CHUNK, tasks={e: ("pick", "place")[e % 2] for e in range(8)})


def test_columns_sort_and_outcomes(server, files, open_page):
    page = open_page(server)
    assert _episodes(page) == list(range(8))
    outcome = _shown(page, "outcome")
    assert outcome[1] == "failure" and outcome[5] == "partial"  # known
    assert outcome[0] == "success (predicted)" and outcome[3] == "failure (predicted)"
    page.click("th[data-key=score]")
    s = _scores(files)
    by_score = s["episode_index"][np.lexsort((s["episode_index"], s["score"]))].tolist()
    assert _episodes(page) == by_score  # ascending, ties by episode
    page.click("th[data-key=score]")
    assert _episodes(page) == s["episode_index"][np.lexsort((s["episode_index"], -s["score"]))].tolist()
    assert page.errors == []


def test_filters_outcome_score_range_annotations(server, files, open_page):
    page = open_page(server)
    page.select_option("#outcome-filter", "failure")
    assert _episodes(page) == [1, 3, 6]  # known failure 1, predicted failures 3 and 6
    page.select_option("#outcome-filter", "")
    page.fill("#score-min", "0.5")
    page.fill("#score-max", "0.9")
    s = _scores(files)
    inside = s["episode_index"][(s["score"] >= 0.5) & (s["score"] <= 0.9)].tolist()
    assert inside and _episodes(page) == sorted(inside)
    page.fill("#score-min", "")
    page.fill("#score-max", "")
    page.select_option("#annotated-filter", "yes")
    assert _episodes(page) == sorted(ANNOTATED)
    page.select_option("#annotated-filter", "no")
    assert _episodes(page) == sorted(set(range(8)) - ANNOTATED)
    page.select_option("#annotated-filter", "")
    page.fill("#search", "place")
    assert _episodes(page) == [1, 3, 5, 7]
    assert page.text_content("#summary") == "4 of 8 episodes"
    assert page.errors == []


def test_bulk_select_drop_and_export_match_rabc_curate(server, files, open_page, tmp_path):
    page = open_page(server)
    page.select_option("#outcome-filter", "failure")
    page.check("#select-all")
    assert page.text_content("#selected-count") == "3 selected"
    page.click("#drop-selected")
    page.select_option("#outcome-filter", "")
    page.click("#episodes tbody tr[data-episode='7'] button.mark")  # one by one
    page.click("#episodes tbody tr[data-episode='3'] button.mark")  # and back to keep
    assert page.text_content("#drop-count") == "3 of 8 marked drop"
    assert _shown(page, "_mark") == ["keep", "drop", "keep", "keep", "keep", "keep", "drop", "drop"]
    page.fill("#export-name", "picked.json")
    page.click("#curation-export")
    page.wait_for_function("document.getElementById('export-status').textContent.startsWith('wrote')")
    written = json.loads((server.export_dir / "picked.json").read_text())
    (tmp_path / "list.txt").write_text("1 6 7")
    expected = curate(_scores(files), [f"list:{tmp_path / 'list.txt'}"])
    for key in ("drop", "keep", "num_episodes", "lerobot_command"):
        assert written[key] == expected[key]
    assert written["reasons"] == {"1": ["manual: picked"], "6": ["manual: picked"], "7": ["manual: picked"]}
    assert written["chunk_size"] == CHUNK and written["progress"] == str(files["progress"].resolve())

    page.select_option("#annotated-filter", "yes")
    page.click("#drop-shown")  # by filter: the reason names it
    with page.expect_download() as download:
        page.click("#curation-download")
    saved = json.loads(Path(download.value.path()).read_text())
    assert download.value.suggested_filename == "picked.json"
    assert saved["drop"] == [0, 1, 2, 4, 6, 7]
    assert saved["reasons"]["0"] == ["manual: filter: annotated"]
    page.select_option("#annotated-filter", "")
    page.click("th[data-key=score]")
    page.check("#episodes tbody tr[data-episode='3'] input.pick")
    shot(page, "table_curation.png")
    assert page.errors == []


def test_export_error_is_shown(server, open_page):
    page = open_page(server)
    page.fill("#export-name", "../out.json")
    page.click("#curation-export")
    page.wait_for_function("document.getElementById('export-status').textContent.startsWith('export failed')")
    assert "plain file name" in page.text_content("#export-status")
    assert [e for e in page.errors if "400" not in e] == []  # the browser logs the refused POST itself


LAST_ROW_IN_VIEW = """() => {
  const box = document.getElementById("table-scroll").getBoundingClientRect();
  const row = document.querySelector("#episodes tbody tr.row:last-of-type");
  if (row?.dataset.episode !== "1199") return false;
  const r = row.getBoundingClientRect();
  return r.height > 0 && box.top <= r.top && r.bottom <= box.bottom + 1;
}"""


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many") / "ds"
    writer = LeRobotWriter(root, fps=10, state_dim=1, action_dim=1)
    for i in range(1200):
        writer.add_episode(state=np.zeros((3, 1)), action=np.zeros((3, 1)), task=f"task {i % 3}")
    writer.close()
    srv = _serve(Catalog(root))
    yield srv
    srv.shutdown()
    srv.server_close()


def test_many_rows_are_windowed(many, open_page):
    page = open_page(many)
    assert page.text_content("#summary") == "1200 of 1200 episodes"
    first = _episodes(page)
    assert first[0] == 0 and len(first) < 80  # only the rows in view (and a margin) are in the DOM
    page.eval_on_selector("#table-scroll", "b => { b.scrollTop = b.scrollHeight; }")
    # rows are redrawn on every scroll frame: wait until the last one is drawn and in view, then read
    # the rows once (a row read between two redraws may be detached)
    page.wait_for_function(LAST_ROW_IN_VIEW)
    last = _episodes(page)
    assert len(last) < 80 and last[-1] == 1199 and last == list(range(last[0], 1200))
    page.check("#select-all")  # selects all shown, not only the drawn rows
    assert page.text_content("#selected-count") == "1200 selected"
    assert page.errors == []


@pytest.fixture(scope="module")
def mp4v(tmp_path_factory):
    srv = _serve(Catalog(write_mpeg4_dataset(tmp_path_factory.mktemp("frames"))))
    yield srv
    srv.shutdown()
    srv.server_close()


def test_unplayable_video_is_replaced_by_server_frames(mp4v, open_page):
    page = open_page(mp4v)
    video = mp4v.catalog.episode(1)["videos"][0]["file"]
    view = page.evaluate(
        """async (file) => {
          const { replaceIfUnplayable } = await import("./static/frames.js");
          const { withToken } = await import("./static/api.js");
          const video = document.createElement("video");
          video.muted = true; video.src = withToken(`files/${file}`); document.body.append(video);
          const view = await replaceIfUnplayable(video, { episode: 1, camera: "observation.images.top" });
          if (!view) return null;
          const img = view.element;
          await new Promise((r) => img.complete ? r() : img.addEventListener("load", r, { once: true }));
          window.frameView = view;
          return { width: view.element.naturalWidth, frame: view.element.dataset.frame,
                   inPage: document.contains(view.element), video: document.contains(video) };
        }""",
        video,
    )
    assert view == {"width": 64, "frame": "0", "inPage": True, "video": False}
    page.evaluate("window.frameView.show(7)")
    page.wait_for_function(
        "window.frameView.element.dataset.frame === '7' && window.frameView.element.complete"
    )
    grey = page.evaluate(
        """() => { const img = window.frameView.element, c = document.createElement("canvas");
          c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext("2d");
          g.drawImage(img, 0, 0); return g.getImageData(32, 32, 1, 1).data[0]; }"""
    )
    assert abs(grey - (10 + 15 * 7)) <= 6  # frame 7's grey level
    assert page.errors == []


def test_frame_clock_advances_and_seeks(mp4v, open_page):
    page = open_page(mp4v)
    frames = page.evaluate(
        """async () => {
          const { FrameClock } = await import("./static/frames.js");
          const seen = [], clock = new FrameClock(50, 20, (f) => seen.push(f));
          clock.play();  // 20 frames at 50 fps: it ends by itself, on the page's clock
          while (!clock.paused) await new Promise((r) => requestAnimationFrame(r));
          const ended = clock.paused;
          clock.seek(3);
          return { seen, ended, frame: clock.frame };
        }"""
    )
    assert frames["ended"] and frames["seen"][-2] == 19 and frames["seen"][-1] == 3 and frames["frame"] == 3
    assert frames["seen"][:-1] == sorted(frames["seen"][:-1])
    assert page.errors == []


def test_episode_view_shows_server_frames_for_an_unplayable_video(mp4v, open_page):
    page = open_page(mp4v)
    page.evaluate("location.hash = 'episode/1'")
    page.wait_for_selector("#videos img.server-frames")
    assert page.locator("#videos video").count() == 0  # the MPEG-4 part 2 <video> was replaced
    img = "#videos img.server-frames"
    page.wait_for_function(f"document.querySelector('{img}').complete")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.querySelector('{img}').dataset.frame === '3'")
    assert page.get_attribute("#plot", "data-cursor") == "3"  # the plot cursor and the frame agree
    page.keyboard.press("Shift+ArrowRight")  # one second = 10 frames at 10 fps
    page.wait_for_function(f"document.querySelector('{img}').dataset.frame === '13'")
    page.keyboard.press("Shift+ArrowLeft")
    page.wait_for_function(f"document.querySelector('{img}').dataset.frame === '3'")
    page.keyboard.press(" ")  # plays on the page's own clock, to the last frame (16 frames at 10 fps)
    page.wait_for_function(f"document.querySelector('{img}').dataset.frame === '15'")
    assert page.get_attribute("#plot", "data-cursor") == "15"
    assert page.errors == []
