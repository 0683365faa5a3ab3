"""`sarm explore`'s label editing routes without a browser: the episode payload's labels, validation by
sarm.labels' rules, save through `write_episode_columns` (token, backup, 409 when stale), the write
checks (token, Host, Origin) on the save route, and the spans JSON export `sarm train` reads."""

from __future__ import annotations

import http.client
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from sarm.data.edit import write_episode_columns
from sarm.explore import Catalog, edit
from sarm.labels.annotations import read_spans
from sarm.labels.records import read_mistakes, read_outcomes
from tests.waiting import HANG_S

EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _call(server, path, body=None, headers=None, method="POST", token=True):
    host, port = server.server_address[:2]
    own = {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"}
    conn = http.client.HTTPConnection(host, port, timeout=HANG_S)
    url = f"{path}?token={server.token}" if token else path
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, url, body=data, headers={**own, **(headers or {})})
    reply = conn.getresponse()
    out = reply.status, json.loads(reply.read() or b"null")
    conn.close()
    return out


def _episode(server, n):
    return _call(server, f"/api/episode/{n}", method="GET")[1]


def _row(root, episode):
    table = pq.read_table(root / EPISODES)
    i = table.column("episode_index").to_pylist().index(episode)
    return {c: table.column(c)[i].as_py() for c in table.column_names}


SPANS = {"sparse": [{"name": "reach", "start": 0, "end": 5}, {"name": "grasp", "start": 6, "end": 19}]}


def test_payload_has_labels_names_probs_and_token(edit_server):
    ep = _episode(edit_server, 0)
    assert ep["spans"]["sparse"] == [
        {"name": "reach", "start": 0, "end": 9},
        {"name": "grasp", "start": 10, "end": 19},
    ]
    assert ep["mistakes"] == [] and ep["outcome"] is None
    assert ep["stage_names"]["sparse"] == ["reach", "grasp"]
    # labels as `sarm train` builds them: the task "pick the cube" has one annotated episode (0), so the
    # proportions are its span shares, 10/20 and 10/20; reach 0..9 ramps to 0.5, grasp to 0.5 + 0.999 / 2
    labels = ep["labels"]["sparse"]
    assert labels[:10] == pytest.approx([0.5 * f / 9 for f in range(10)])
    assert labels[10:19] == pytest.approx([0.5 + 0.5 * (f - 10) / 9 for f in range(10, 19)])
    assert labels[19] == pytest.approx(0.5 + 0.5 * 0.999)
    probs = ep["stage_probs"]["sparse"]  # the fixture's rows: [a, 1 - a], a = linspace(1, 0) over 75 rows
    assert len(probs) == 20 and probs[0] == pytest.approx([1.0, 0.0])
    assert probs[19] == pytest.approx([1 - 19 / 74, 19 / 74])
    assert ep["read_only"] is None and isinstance(ep["token"], str)


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([{"name": "reach", "start": 9, "end": 3}], "is reversed (start 9 > end 3)"),
        (
            [{"name": "reach", "start": 0, "end": 12}, {"name": "grasp", "start": 10, "end": 19}],
            "overlap by 3 frames",
        ),
        ([{"name": "reach", "start": 0, "end": 20}], "lies outside the episode's frames 0..19"),
        ([{"name": "reach", "start": 0.5, "end": 3}], "should be an integer frame index"),
    ],
)
def test_validate_gives_sarm_labels_message(edit_server, spans, message):
    status, reply = _call(edit_server, "/api/episode/0/validate", {"spans": {"sparse": spans}})
    assert status == 200 and reply["ok"] is False and message in reply["error"]


def test_validate_out_of_stage_order_follows_order(edit_server, edit_dataset):
    # annotate episode 2 (same task as 0) reach -> grasp; then grasp -> reach in episode 0 goes back
    ep2 = _episode(edit_server, 2)
    body = {
        "spans": {
            "sparse": [{"name": "reach", "start": 0, "end": 11}, {"name": "grasp", "start": 12, "end": 24}]
        }
    }
    assert _call(edit_server, "/api/episode/2/save", {**body, "token": ep2["token"]})[0] == 200
    # mean relative starts with this edit: reach (0 + 4/20) / 2 < grasp (12/25 + 0) / 2, so reach is stage 0
    back = {"sparse": [{"name": "grasp", "start": 0, "end": 3}, {"name": "reach", "start": 4, "end": 19}]}
    _, reply = _call(edit_server, "/api/episode/0/validate", {"spans": back})
    assert reply["ok"] is False and "against the stage order" in reply["error"]
    _, reply = _call(edit_server, "/api/episode/0/validate", {"spans": back, "order": "monotone"})
    assert reply["ok"] is True and reply["error"] is None
    assert np.all(np.diff(reply["labels"]["sparse"]) >= 0)  # the running maximum never goes back


def test_save_writes_the_columns_and_keeps_a_backup(edit_server, edit_dataset):
    before = (edit_dataset / EPISODES).read_bytes()
    old = {e: _row(edit_dataset, e) for e in (1, 2)}
    ep = _episode(edit_server, 0)
    edit = {"spans": SPANS, "mistakes": [{"kind": "pause", "start": 3, "end": 4}], "outcome": "failure"}
    status, reply = _call(edit_server, "/api/episode/0/save", {**edit, "token": ep["token"]})
    assert status == 200, reply
    row = _row(edit_dataset, 0)
    assert row["sparse_subtask_names"] == ["reach", "grasp"]
    assert row["sparse_subtask_start_frames"] == [0, 6] and row["sparse_subtask_end_frames"] == [5, 19]
    assert row["sparse_subtask_start_times"] == pytest.approx([0.0, 0.6])
    assert row["sparse_subtask_end_times"] == pytest.approx([0.5, 1.9])
    assert row["mistake_names"] == ["pause"]
    assert row["mistake_start_frames"] == [3] and row["mistake_end_frames"] == [4]
    assert row["outcome"] == "failure"
    for e in (1, 2):  # the other episodes keep their values; the new columns are null for them
        new = _row(edit_dataset, e)
        assert {c: new[c] for c in old[e]} == old[e]
        assert new["mistake_names"] is None and new["outcome"] is None
    backup = edit_dataset / reply["backup"] / "chunk-000" / "file-000.parquet"
    assert backup.read_bytes() == before
    assert reply["files"] == [EPISODES]
    again = _episode(edit_server, 0)  # the page reloads what was saved
    assert again["spans"] == SPANS and again["outcome"] == "failure"
    assert again["mistakes"] == [{"kind": "pause", "start": 3, "end": 4}]
    assert edit_server.catalog.spans["sparse"][0] == SPANS["sparse"]  # the table's annotations too
    # the reply's token is the new state: a second save with it works, with the old one it is refused
    assert _call(edit_server, "/api/episode/0/save", {**edit, "token": reply["token"]})[0] == 200
    assert _call(edit_server, "/api/episode/0/save", {**edit, "token": ep["token"]})[0] == 409


def test_save_refuses_invalid_edits_and_stale_files(edit_server, edit_dataset):
    ep = _episode(edit_server, 0)
    before = (edit_dataset / EPISODES).read_bytes()
    bad = {"spans": {"sparse": [{"name": "reach", "start": 9, "end": 3}]}, "token": ep["token"]}
    status, reply = _call(edit_server, "/api/episode/0/save", bad)
    assert status == 400 and "reversed" in reply["error"]
    status, reply = _call(edit_server, "/api/episode/0/save", {"spans": SPANS})
    assert status == 400 and '"token"' in reply["error"]
    assert (edit_dataset / EPISODES).read_bytes() == before
    write_episode_columns(edit_dataset, {"outcome": {1: "success"}}, backup=False)  # another writer
    theirs = (edit_dataset / EPISODES).read_bytes()
    status, reply = _call(edit_server, "/api/episode/0/save", {"spans": SPANS, "token": ep["token"]})
    assert status == 409 and "since the dataset was read; nothing was written" in reply["error"]
    assert (edit_dataset / EPISODES).read_bytes() == theirs
    assert not (edit_dataset / "meta" / "backups").exists()


@pytest.mark.parametrize(
    ("headers", "token"),
    [({}, False), ({"Origin": "http://evil.example"}, True), ({"Host": "evil.example:80"}, True)],
    ids=["no-token", "foreign-origin", "foreign-host"],
)
def test_save_checks_token_host_and_origin(edit_server, edit_dataset, headers, token):
    ep = _episode(edit_server, 0)
    before = (edit_dataset / EPISODES).read_bytes()
    body = {"spans": SPANS, "token": ep["token"]}
    for route in ("save", "export", "validate"):
        status, _ = _call(edit_server, f"/api/episode/0/{route}", body, headers, token=token)
        assert status == 403, route
    assert (edit_dataset / EPISODES).read_bytes() == before
    assert (
        not (edit_dataset / "meta" / "backups").exists() and not (edit_dataset / "meta" / "explore").exists()
    )


def test_unknown_episode_is_404(edit_server):
    assert _call(edit_server, "/api/episode/9/validate", {"spans": SPANS})[0] == 404


def test_export_is_the_spans_json_sarm_train_reads(edit_server, edit_dataset):
    before = (edit_dataset / EPISODES).read_bytes()
    edit = {"spans": SPANS, "mistakes": [{"kind": "pause", "start": 3, "end": 4}], "outcome": "partial"}
    status, reply = _call(edit_server, "/api/episode/0/export", edit)
    assert status == 200 and reply["files"] == ["meta/explore/spans.json"]
    path = edit_dataset / "meta" / "explore" / "spans.json"
    assert json.loads(path.read_text()) == reply["contents"]["spans.json"]
    spans = read_spans(path)
    assert [tuple(s) for s in spans[0]] == [("reach", 0, 5), ("grasp", 6, 19)]
    assert [tuple(s) for s in spans[1]] == [("reach", 0, 14), ("grasp", 15, 29)]  # as in the dataset
    assert read_mistakes(path) == {0: [("pause", 3, 4)]}
    assert read_outcomes(path) == {0: "partial"}
    # a second export (another episode) keeps the first one's edit
    _call(
        edit_server,
        "/api/episode/1/export",
        {"spans": {"sparse": [{"name": "reach", "start": 0, "end": 29}]}},
    )
    spans = read_spans(path)
    assert [tuple(s) for s in spans[0]] == [("reach", 0, 5), ("grasp", 6, 19)]
    assert [tuple(s) for s in spans[1]] == [("reach", 0, 29)]
    assert read_outcomes(path) == {0: "partial"}
    assert (edit_dataset / EPISODES).read_bytes() == before  # an export leaves the dataset alone


def test_foreign_annotations_are_read_only(edit_dataset, dataset):
    catalog = Catalog(edit_dataset, annotations=dataset)  # annotations read from another dataset
    ep = catalog.episode(0)
    assert ep["token"] is None and "--annotations" in ep["read_only"]
    before = (edit_dataset / EPISODES).read_bytes()
    with pytest.raises(ValueError, match="cannot save into the dataset: the annotations were read from"):
        edit.save(catalog, 0, {"spans": SPANS, "token": "[]"})
    assert (edit_dataset / EPISODES).read_bytes() == before


def test_each_load_reads_what_is_on_disk_now(edit_server, edit_dataset):
    first = _episode(edit_server, 0)
    assert first["outcome"] is None
    assert _episode(edit_server, 0)["token"] == first["token"]  # nothing changed: the same token
    write_episode_columns(edit_dataset, {"outcome": {0: "partial"}}, backup=False)  # another writer
    again = _episode(edit_server, 0)
    assert again["outcome"] == "partial" and again["token"] != first["token"]


def test_a_dense_head_saves_and_exports_beside_the_sparse(edit_server, edit_dataset):
    dense = [{"name": "open", "start": 0, "end": 7}, {"name": "close", "start": 8, "end": 19}]
    ep = _episode(edit_server, 0)
    status, _ = _call(
        edit_server, "/api/episode/0/save", {"spans": {**SPANS, "dense": dense}, "token": ep["token"]}
    )
    assert status == 200
    row = _row(edit_dataset, 0)
    assert row["dense_subtask_names"] == ["open", "close"]
    assert row["dense_subtask_start_frames"] == [0, 8] and row["dense_subtask_end_frames"] == [7, 19]
    assert _row(edit_dataset, 1)["dense_subtask_names"] is None  # other episodes: unannotated
    again = _episode(edit_server, 0)
    assert again["spans"]["dense"] == dense and again["stage_names"]["dense"] == ["open", "close"]
    assert len(again["labels"]["dense"]) == 20
    status, reply = _call(
        edit_server, "/api/episode/0/export", {"spans": {"sparse": SPANS["sparse"], "dense": dense}}
    )
    assert status == 200 and reply["files"] == ["meta/explore/spans.json", "meta/explore/spans.dense.json"]
    spans = read_spans(edit_dataset / "meta" / "explore" / "spans.dense.json")
    assert [tuple(s) for s in spans[0]] == [("open", 0, 7), ("close", 8, 19)]
