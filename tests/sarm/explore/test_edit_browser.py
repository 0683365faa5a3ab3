"""Editing labels in `sarm explore` in a real headless Chromium (Debian's package, Playwright): an edited
span saves and the parquet changes as expected, an invalid edit shows sarm.labels' message and writes
nothing, a change on disk after the page loaded is detected and nothing is overwritten, `[` `]` and
dragging move a span, spans are renamed, added and deleted, the spans JSON downloads, no console errors.
Every step waits on a DOM condition, never on a clock; screenshots go to docs/explore/ with
SARM_SCREENSHOTS=1 (chromium.shot). Skipped without chromium, except in CI (the `chromium` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chromium import new_page, shot

from sarm.data.edit import write_episode_columns

EPISODES = "meta/episodes/chunk-000/file-000.parquet"


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium)
        yield b
        b.close()


@pytest.fixture
def page(browser, edit_server):
    """Episode 0 of a fresh copy of the dataset, loaded, with its console errors collected."""
    pg = new_page(browser, viewport={"width": 1100, "height": 1250})
    pg.goto(f"{edit_server.url}#episode/0")
    pg.wait_for_selector("#span-list tr.item")
    yield pg
    pg.close()


def _row(root, episode):
    table = pq.read_table(root / EPISODES)
    i = table.column("episode_index").to_pylist().index(episode)
    return {c: table.column(c)[i].as_py() for c in table.column_names}


def _field(kind, i, field):
    return f"#span-list tr.item[data-kind={kind}][data-i='{i}'] [data-field={field}]"


def _settled(page):
    """Wait until the last edit was validated by the server (the error box and buttons follow it)."""
    page.wait_for_function("document.documentElement.dataset.validation === 'done'")


def test_edited_span_saves_and_parquet_changes(page, edit_dataset):
    before = _row(edit_dataset, 1)
    page.fill(_field("span", 0, "end"), "5")
    page.fill(_field("span", 1, "start"), "6")
    page.click("button[data-add=mistake]")  # at the cursor (frame 0): frames 0..10
    page.fill(_field("mistake", 0, "kind"), "pause")
    page.fill(_field("mistake", 0, "start"), "3")
    page.fill(_field("mistake", 0, "end"), "4")
    page.select_option("#outcome", "failure")
    _settled(page)
    assert page.is_hidden("#edit-error") and page.is_enabled("#save")
    page.click("#save")
    page.wait_for_function("document.getElementById('edit-status').textContent.startsWith('saved')")
    row = _row(edit_dataset, 0)
    assert row["sparse_subtask_names"] == ["reach", "grasp"]
    assert row["sparse_subtask_start_frames"] == [0, 6] and row["sparse_subtask_end_frames"] == [5, 19]
    assert row["sparse_subtask_start_times"] == pytest.approx([0.0, 0.6])
    assert row["sparse_subtask_end_times"] == pytest.approx([0.5, 1.9])
    assert (row["mistake_names"], row["mistake_start_frames"], row["mistake_end_frames"]) == (
        ["pause"],
        [3],
        [4],
    )
    assert row["outcome"] == "failure"
    after = _row(edit_dataset, 1)
    assert {c: after[c] for c in before} == before
    assert any((edit_dataset / "meta" / "backups").iterdir())
    page.click("#span-list tr.item[data-kind=mistake] .swatch")  # select the mistake: outlined in the plot
    page.wait_for_selector("#span-list tr.item.selected[data-kind=mistake]")
    shot(page, "edit.png", full_page=True)
    assert page.errors == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("span", 0, "start"), "15", "is reversed (start 15 > end 9)"),
        (("span", 0, "end"), "12", "overlap by 3 frames"),
    ],
    ids=["reversed", "overlapping"],
)
def test_invalid_edit_shows_the_error_and_writes_nothing(page, edit_dataset, field, value, message):
    before = (edit_dataset / EPISODES).read_bytes()
    page.fill(_field(*field), value)
    page.wait_for_selector("#edit-error:not([hidden])")
    assert message in page.text_content("#edit-error")
    assert page.is_disabled("#save") and page.is_disabled("#export")
    # a save forced past the disabled button is refused by the server too
    status = page.evaluate(
        """async () => { const ep = await (await fetch(`api/episode/0${location.search}`)).json();
        const spans = {sparse: [{name: 'reach', start: 15, end: 9}]};
        const r = await fetch(`api/episode/0/save${location.search}`, {method: 'POST',
          body: JSON.stringify({spans, token: ep.token})}); return r.status; }"""
    )
    assert status == 400
    assert (edit_dataset / EPISODES).read_bytes() == before
    assert not (edit_dataset / "meta" / "backups").exists()
    if message.startswith("overlap"):
        shot(page, "edit-error.png", full_page=True)
    assert [e for e in page.errors if "400 (Bad Request)" not in e] == []


def test_change_on_disk_is_detected_and_nothing_is_overwritten(page, edit_dataset):
    write_episode_columns(edit_dataset, {"outcome": {1: "success"}}, backup=False)  # after the page loaded
    theirs = (edit_dataset / EPISODES).read_bytes()
    page.fill(_field("span", 0, "end"), "5")
    page.fill(_field("span", 1, "start"), "6")
    _settled(page)
    page.click("#save")
    page.wait_for_selector("#edit-status #reload")
    status = page.text_content("#edit-status")
    assert status.startswith("not saved:") and "since the dataset was read; nothing was written" in status
    assert (edit_dataset / EPISODES).read_bytes() == theirs
    assert _row(edit_dataset, 1)["outcome"] == "success"
    page.click("#reload")  # read again, redo the edit, save: now it goes through, and keeps theirs
    page.wait_for_function("document.getElementById('edit-status').textContent === ''")
    assert page.input_value(_field("span", 0, "end")) == "9"
    page.fill(_field("span", 0, "end"), "5")
    page.fill(_field("span", 1, "start"), "6")
    _settled(page)
    page.click("#save")
    page.wait_for_function("document.getElementById('edit-status').textContent.startsWith('saved')")
    assert _row(edit_dataset, 0)["sparse_subtask_end_frames"] == [5, 19]
    assert _row(edit_dataset, 1)["outcome"] == "success"
    assert [e for e in page.errors if "409 (Conflict)" not in e] == []
    assert len(page.errors) == 1  # the refused save's response, logged by the browser


def _plot_point(page, frame, y):
    box = page.locator("#plot").bounding_box()
    return box["x"] + 1 + 30 + (960 - 60) * frame / 19, box["y"] + 1 + y


def test_bracket_keys_and_dragging_move_the_span(page):
    page.click("#span-list tr.item[data-kind=span][data-i='0'] .swatch")  # select reach (0..9)
    page.mouse.click(*_plot_point(page, 4, 100))  # the cursor to frame 4 (a click in the progress panel)
    assert page.get_attribute("#plot", "data-cursor") == "4"
    page.keyboard.press("]")
    assert page.input_value(_field("span", 0, "end")) == "4"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.getElementById('plot').dataset.cursor === '2'")
    page.keyboard.press("[")
    assert page.input_value(_field("span", 0, "start")) == "2"
    # the grasp span's lane block (10..19): its start edge sits half a frame left of frame 10
    lane_y = 20 + 170 + 4 + 12 + 9  # legend, progress panel, gap, lane title; the block's middle
    x, y = _plot_point(page, 9.5, lane_y)
    page.mouse.move(x + 2, y)
    page.mouse.down()
    page.mouse.move(*_plot_point(page, 7, lane_y), steps=5)
    page.mouse.up()
    assert page.input_value(_field("span", 1, "start")) == "7"
    assert page.input_value(_field("span", 1, "end")) == "19"
    _settled(page)
    assert page.is_hidden("#edit-error")  # reach 2..4, grasp 7..19: valid
    assert page.errors == []


def test_rename_add_and_delete_spans(page, edit_dataset):
    options = page.eval_on_selector_all(f"{_field('span', 1, 'name')} option", "os => os.map(o => o.text)")
    assert options == ["reach", "grasp", "new name…"]  # the task's stage names, then a new one
    page.select_option(_field("span", 1, "name"), "")
    page.fill(_field("span", 1, "name"), "lift")  # the select became a text input
    page.click("#span-list tr.item[data-kind=span][data-i='0'] button[data-del]")  # delete reach
    page.click("button[data-add=span]")  # at the cursor (frame 0): frames 0..10, the first unused name
    _settled(page)
    assert page.is_hidden("#edit-error")  # sharing the boundary frame 10 is allowed
    page.fill(_field("span", 1, "end"), "9")
    _settled(page)
    page.click("#save")
    page.wait_for_function("document.getElementById('edit-status').textContent.startsWith('saved')")
    row = _row(edit_dataset, 0)
    assert row["sparse_subtask_names"] == ["reach", "lift"]
    assert row["sparse_subtask_start_frames"] == [0, 10] and row["sparse_subtask_end_frames"] == [9, 19]
    assert page.errors == []


def test_a_dense_head_can_be_started(page, edit_dataset):
    page.click("button[data-add-head=dense]")
    page.click("button[data-add=span][data-head=dense]")  # frames 0..10 at the cursor, named "stage"
    page.select_option("#span-list tr.item[data-head=dense] [data-field=name]", "")  # "new name…"
    page.fill("#span-list tr.item[data-head=dense] [data-field=name]", "open")
    _settled(page)
    assert page.is_hidden("#edit-error")
    page.click("#save")
    page.wait_for_function("document.getElementById('edit-status').textContent.startsWith('saved')")
    row = _row(edit_dataset, 0)
    assert (
        row["dense_subtask_names"],
        row["dense_subtask_start_frames"],
        row["dense_subtask_end_frames"],
    ) == (
        ["open"],
        [0],
        [10],
    )
    assert row["sparse_subtask_end_frames"] == [9, 19]  # the sparse head as it was
    assert page.errors == []


def test_spans_json_downloads(page, edit_dataset):
    page.fill(_field("span", 0, "end"), "5")
    page.fill(_field("span", 1, "start"), "6")
    _settled(page)
    with page.expect_download() as info:
        page.click("#export")
    download = info.value
    assert download.suggested_filename == "spans.json"
    got = json.loads(Path(download.path()).read_text())
    assert got == json.loads((edit_dataset / "meta" / "explore" / "spans.json").read_text())
    assert got["0"]["spans"] == [["reach", 0, 5], ["grasp", 6, 19]]
    assert page.errors == []
