"""The episode table's data (outcome, `rabc episodes` scores), the curation export (same JSON as
`rabc curate`, read by `rabc weights --drop-episodes`, refused without token / with a foreign Origin or
Host, only into the export directory) and server-decoded frames for an MPEG-4 part 2 video."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from table_data import ANNOTATED, CHUNK, KNOWN, PREDICTED, write_mpeg4_dataset, write_table_dataset

from rabc.cli import main as rabc_main
from rabc.episodes import score_episodes
from sarm.explore import Catalog, ExploreServer
from tests.waiting import HANG_S


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_table_dataset(tmp_path_factory.mktemp("table"))


def _serve(catalog, **options):
    srv = ExploreServer(catalog, "127.0.0.1", 0, **options)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def server(files, tmp_path_factory):
    srv = _serve(
        Catalog(files["root"], files["progress"], files["weights"]), export_dir=tmp_path_factory.mktemp("out")
    )
    yield srv
    srv.shutdown()
    srv.server_close()


def _request(server, method, path, body=None, headers=None, token=True):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=HANG_S)
    sep = "&" if "?" in path else "?"
    conn.request(
        method, f"{path}{sep}token={server.token}" if token else path, body=body, headers=headers or {}
    )
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, reply.getheader("Content-Type"), data


def test_rows_have_known_and_predicted_outcomes(files):
    rows = {r["episode_index"]: r for r in Catalog(files["root"], files["progress"]).episodes()}
    for ep, outcome in KNOWN.items():
        assert (rows[ep]["outcome"], rows[ep]["outcome_source"]) == (outcome, "known")
    for ep, outcome in PREDICTED.items():
        assert (rows[ep]["outcome"], rows[ep]["outcome_source"]) == (outcome, "predicted")
    assert {e for e, r in rows.items() if r["annotations"]} == ANNOTATED
    assert "score" not in rows[0]  # no chunk size, no weights file: no scores


def test_rows_carry_the_scores_of_rabc_episodes(files):
    catalog = Catalog(files["root"], files["progress"], files["weights"])  # chunk size from the weights file
    assert catalog.chunk_size == CHUNK
    rows = {r["episode_index"]: r for r in catalog.episodes()}
    expected = score_episodes(files["progress"], CHUNK, tasks={e: ("pick", "place")[e % 2] for e in range(8)})
    for i, ep in enumerate(expected["episode_index"]):
        for key in (
            "score",
            "max_drop",
            "stalled_fraction",
            "final_progress",
            "percentile",
            "length_percentile",
        ):
            assert rows[int(ep)][key] == pytest.approx(float(expected[key][i]))
        assert rows[int(ep)]["rank"] == int(expected["rank"][i])
    assert rows[3]["score"] == 0.0 and rows[3]["stalled_fraction"] == 1.0  # flat: stalled throughout
    assert rows[2]["max_drop"] == pytest.approx(0.4, abs=1e-6)  # 0.8 -> 0.4
    w = pq.read_table(files["weights"]).to_pandas().groupby("episode_index")["weight"].mean()
    assert [rows[e]["mean_weight"] for e in range(8)] == pytest.approx(w.to_numpy())


def test_chunk_size_flag_wins_over_the_weights_file(files):
    assert Catalog(files["root"], files["progress"], files["weights"], chunk_size=3).chunk_size == 3


def test_export_is_rabc_curate_json_and_rabc_weights_reads_it(server, files, tmp_path, capsys):
    body = json.dumps({"drop": {"3": "picked", "6": "filter: outcome failure"}, "name": "drop.json"})
    status, _, data = _request(server, "POST", "/api/curation", body, {"Content-Type": "application/json"})
    assert status == 200, data
    reply = json.loads(data)
    written = json.loads((server.export_dir / "drop.json").read_text())
    assert reply["path"] == str(server.export_dir / "drop.json") and reply["result"] == written
    assert written["drop"] == [3, 6] and written["keep"] == [0, 1, 2, 4, 5, 7]
    assert written["rules"] == ["manual"]
    assert written["reasons"] == {"3": ["manual: picked"], "6": ["manual: filter: outcome failure"]}

    listed = tmp_path / "list.txt"
    listed.write_text("3 6")
    ref = tmp_path / "ref.json"
    argv = [
        "curate",
        str(files["progress"]),
        "--chunk-size",
        str(CHUNK),
        "--drop",
        f"list:{listed}",
        "-o",
        str(ref),
    ]
    assert rabc_main(argv) == 0
    expected = json.loads(ref.read_text())
    same = ("drop", "keep", "num_episodes", "lerobot_command", "chunk_size", "progress")
    assert {k: written[k] for k in same} == {k: expected[k] for k in same}
    assert set(written) == set(expected)

    out = tmp_path / "w.parquet"
    argv = ["weights", str(files["progress"]), "--chunk-size", str(CHUNK), "--drop-episodes"]
    assert rabc_main([*argv, str(server.export_dir / "drop.json"), "-o", str(out)]) == 0
    table = pq.read_table(out)
    weight, ep = table["weight"].to_numpy(), table["episode_index"].to_numpy()
    assert (weight[np.isin(ep, [3, 6])] == 0).all() and (weight[~np.isin(ep, [3, 6])] > 0).any()
    capsys.readouterr()


def test_download_answers_the_json_and_writes_nothing(server):
    before = sorted(p.name for p in server.export_dir.iterdir())
    status, kind, data = _request(server, "POST", "/api/curation/download", json.dumps({"drop": [1]}))
    assert status == 200 and kind == "application/json"
    assert json.loads(data)["drop"] == [1] and json.loads(data)["reasons"] == {"1": ["manual"]}
    assert sorted(p.name for p in server.export_dir.iterdir()) == before


@pytest.mark.parametrize(
    "headers, token",
    [({}, False), ({"Origin": "http://evil.example"}, True), ({"Host": "rebound.example:80"}, True)],
    ids=["no-token", "foreign-origin", "foreign-host"],
)
def test_export_refused_without_checks(server, headers, token):
    body = json.dumps({"drop": [2], "name": "refused.json"})
    status, _, _ = _request(server, "POST", "/api/curation", body, headers, token=token)
    assert status == 403
    assert not (server.export_dir / "refused.json").exists()


@pytest.mark.parametrize(
    "name", ["../out.json", "/tmp/out.json", "sub/out.json", ".hidden.json", "x.txt", "%2e%2e.json"]
)
def test_export_names_outside_the_export_dir_are_refused(server, name):
    status, _, data = _request(server, "POST", "/api/curation", json.dumps({"drop": [], "name": name}))
    assert status == 400 and "plain file name" in json.loads(data)["error"]


def test_export_through_a_symlink_is_refused(server, tmp_path):
    (server.export_dir / "link.json").symlink_to(tmp_path / "elsewhere.json")
    status, _, data = _request(server, "POST", "/api/curation", json.dumps({"drop": [], "name": "link.json"}))
    assert status == 400 and "symlink" in json.loads(data)["error"]
    assert not (tmp_path / "elsewhere.json").exists()


def test_export_of_unknown_episodes_is_refused(server):
    status, _, data = _request(server, "POST", "/api/curation", json.dumps({"drop": [99]}))
    assert status == 400 and "[99]" in json.loads(data)["error"]
    status, _, data = _request(server, "POST", "/api/curation", b"not json")
    assert status == 400


def test_export_without_progress_lists_the_datasets_episodes(files, tmp_path):
    srv = _serve(Catalog(files["root"]), export_dir=tmp_path)
    try:
        status, _, _ = _request(srv, "POST", "/api/curation", json.dumps({"drop": [0, 7]}))
    finally:
        srv.shutdown()
        srv.server_close()
    assert status == 200
    result = json.loads((tmp_path / "drop.json").read_text())
    assert result["drop"] == [0, 7] and result["keep"] == [1, 2, 3, 4, 5, 6] and result["progress"] is None


@pytest.fixture(scope="module")
def mp4v(tmp_path_factory):
    root = write_mpeg4_dataset(tmp_path_factory.mktemp("frames"))
    srv = _serve(Catalog(root))
    yield srv
    srv.shutdown()
    srv.server_close()


def test_the_fixture_video_is_mpeg4_part_2(mp4v):
    (video,) = mp4v.catalog.episode(1)["videos"]
    with av.open(str(mp4v.catalog.root / video["file"])) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"


@pytest.mark.parametrize("episode, frame", [(0, 0), (0, 11), (1, 5)])
def test_frame_route_returns_a_decodable_jpeg_of_that_frame(mp4v, episode, frame):
    path = f"/api/frame/{episode}?camera=observation.images.top&frame={frame}"
    status, kind, data = _request(mp4v, "GET", path)
    assert status == 200 and kind == "image/jpeg"
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert image.shape == (64, 64, 3)
    assert image.mean() == pytest.approx(10 + 15 * frame, abs=4)  # the grey level written into frame k


def test_frame_route_errors(mp4v):
    assert _request(mp4v, "GET", "/api/frame/0?camera=observation.images.top&frame=0", token=False)[0] == 403
    assert _request(mp4v, "GET", "/api/frame/9?camera=observation.images.top&frame=0")[0] == 404
    assert _request(mp4v, "GET", "/api/frame/0?camera=nope&frame=0")[0] == 404
    status, _, data = _request(mp4v, "GET", "/api/frame/0?camera=observation.images.top&frame=12")
    assert status == 400 and "0..11" in json.loads(data)["error"]


def test_episode_list_by_column_is_the_rows_transposed(server):
    rows = json.loads(_request(server, "GET", "/api/episodes")[2])["episodes"]
    columns = json.loads(_request(server, "GET", "/api/episodes?format=columns")[2])["columns"]
    assert list(columns) == list(rows[0])
    assert all(columns[k] == [r[k] for r in rows] for k in columns)
    assert columns["episode_index"] == list(range(8)) and columns["outcome"][1] == "failure"


def test_cli_export_dir_that_is_a_file_is_one_line(files, tmp_path):
    (tmp_path / "f").write_text("")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    cmd = [sys.executable, "-m", "sarm.cli", "explore", str(files["root"]), "--no-browser"]
    proc = subprocess.run(
        [*cmd, "--export-dir", str(tmp_path / "f")], capture_output=True, text=True, env=env, timeout=HANG_S
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"sarm explore: error: --export-dir `{tmp_path / 'f'}` is a file, but a directory is expected; "
        "give a directory path"
    ]
