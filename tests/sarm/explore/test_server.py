"""`sarm explore`'s server: the JSON API, range requests, the token, path traversal, Host/Origin checks."""

from __future__ import annotations

import http.client
import json
import os

import pytest

from sarm.explore import safe_path
from tests.waiting import HANG_S


def _get(server, path, headers=None, method="GET"):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=HANG_S)
    conn.request(method, path, headers=headers or {})
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    return reply.status, dict(reply.getheaders()), body


def _t(server, path):
    return f"{path}{'&' if '?' in path else '?'}token={server.token}"


def test_episode_list(server):
    status, _, body = _get(server, _t(server, "/api/episodes"))
    assert status == 200
    rows = json.loads(body)["episodes"]
    assert [r["episode_index"] for r in rows] == [0, 1, 2]
    assert [r["length"] for r in rows] == [20, 30, 25]
    assert [r["task"] for r in rows] == ["pick the cube", "fold the towel", "pick the cube"]
    assert [r["annotations"] for r in rows] == [["sparse"], ["sparse"], []]
    assert rows[1]["final_sparse"] == pytest.approx(1.0)
    assert rows[1]["mean_sparse"] == pytest.approx(0.5)  # mean of linspace(0, 1)
    assert rows[0]["mean_sparse"] == pytest.approx(sum(i / 19 for i in range(1, 20)) / 19)  # NaN left out
    assert [r["mean_weight"] for r in rows] == pytest.approx([0.5, 1.0, 0.5])


def test_episode_detail_has_offsets_in_the_shared_file(server):
    status, _, body = _get(server, _t(server, "/api/episode/1"))
    assert status == 200
    ep = json.loads(body)
    assert ep["length"] == 30 and ep["fps"] == 10
    (video,) = ep["videos"]
    assert video["file"].startswith("videos/observation.images.top/")
    assert video["from_timestamp"] == pytest.approx(2.0)  # after episode 0's 20 frames at 10 fps
    assert video["to_timestamp"] == pytest.approx(5.0)
    assert ep["progress"]["sparse"][0] == 0.0 and len(ep["progress"]["sparse"]) == 30
    assert ep["weights"] == [1.0] * 30
    assert ep["spans"]["sparse"] == [
        {"name": "reach", "start": 0, "end": 14},
        {"name": "grasp", "start": 15, "end": 29},
    ]
    first = json.loads(_get(server, _t(server, "/api/episode/0"))[2])
    assert first["progress"]["sparse"][0] is None  # NaN is sent as null


def test_unknown_episode_is_404(server):
    assert _get(server, _t(server, "/api/episode/7"))[0] == 404


def test_video_range_requests(server, dataset):
    ep = json.loads(_get(server, _t(server, "/api/episode/0"))[2])
    rel = ep["videos"][0]["file"]
    data = (dataset / rel).read_bytes()
    status, headers, body = _get(server, _t(server, f"/files/{rel}"))
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    status, headers, body = _get(server, _t(server, f"/files/{rel}"), {"Range": "bytes=10-109"})
    assert status == 206 and body == data[10:110]
    assert headers["Content-Range"] == f"bytes 10-109/{len(data)}"
    status, headers, body = _get(server, _t(server, f"/files/{rel}"), {"Range": "bytes=-16"})
    assert status == 206 and body == data[-16:]
    status, headers, _ = _get(server, _t(server, f"/files/{rel}"), {"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_progress_and_weights_files_are_served(server, dataset):
    for name, file in (("@progress", "progress.parquet"), ("@weights", "weights.parquet")):
        status, _, body = _get(server, _t(server, f"/files/{name}"))
        assert status == 200 and body == (dataset.parent / file).read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/api/episodes", "/api/episode/0", "/files/meta/info.json", "/files/@progress", "/files/@weights"],
)
def test_every_data_route_needs_the_token(server, path):
    assert _get(server, path)[0] == 403
    assert _get(server, f"{path}?token=wrong")[0] == 403
    assert _get(server, path, {"X-Sarm-Token": server.token})[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/files/../progress.parquet",
        "/files/%2e%2e/progress.parquet",
        "/files/%2E%2E%2Fprogress.parquet",
        "/files/meta/..%2f..%2fprogress.parquet",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/files/meta\\..\\..\\progress.parquet",
        "/static/../catalog.py",
        "/static/%2e%2e/catalog.py",
    ],
)
def test_path_traversal_is_refused(server, path):
    status, _, body = _get(server, _t(server, path))
    assert status in (403, 404), path
    assert b"RABC" not in body and b"root:" not in body


def test_symlink_out_of_the_root_is_refused(server, dataset, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    link = dataset / "meta" / "link.txt"
    os.symlink(secret, link)
    try:
        assert _get(server, _t(server, "/files/meta/link.txt"))[0] == 404
        assert safe_path(dataset, "meta/link.txt") is None
        assert safe_path(dataset, "meta/info.json") == (dataset / "meta/info.json").resolve()
    finally:
        link.unlink()


def test_writes_check_token_host_and_origin(server):
    port = server.server_address[1]
    own = f"127.0.0.1:{port}"
    path = _t(server, "/api/save")
    # all checks pass: the route does not exist yet (404), but it was not refused (403)
    assert _get(server, path, {"Host": own, "Origin": f"http://{own}"}, "POST")[0] == 404
    assert _get(server, "/api/save", {"Host": own}, "POST")[0] == 403  # no token
    assert _get(server, path, {"Host": f"evil.example:{port}"}, "POST")[0] == 403  # DNS rebinding
    assert _get(server, path, {"Host": own, "Origin": "http://evil.example"}, "POST")[0] == 403  # cross-site
    assert _get(server, path, {"Host": own, "Origin": "null"}, "PUT")[0] == 403


def test_page_and_assets_hold_no_data_and_need_no_token(server):
    status, headers, body = _get(server, "/")
    assert status == 200 and b"<html" in body and headers["Content-Type"].startswith("text/html")
    status, headers, _ = _get(server, "/static/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")


def test_url_has_the_token(server):
    assert server.url == f"http://127.0.0.1:{server.server_address[1]}/?token={server.token}"
    assert len(server.token) >= 24
