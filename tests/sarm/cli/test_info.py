"""`sarm info`: missing and undecodable videos reported with their paths; damaged metadata as one line."""

import os
import shutil

import pytest

from sarm.cli import main
from sarm.data import open_dataset
from tests.sarm.data.test_dataset import CAM, make_v21

pytest.importorskip("av")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("info") / "ds")


def test_info_reports_undecodable_video_files(dataset, tmp_path, capsys):
    root = shutil.copytree(dataset, tmp_path / "ds")
    bad = open_dataset(root).video_path(CAM, 1)
    bad.write_bytes(bad.read_bytes()[:100])  # cut: its header survives, not the rest
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{CAM}: 1 video file(s) cannot be decoded [1]" in out and str(bad) in out
    assert main(["info", str(root), "--no-probe"]) == 0
    assert "cannot be decoded" not in capsys.readouterr().out


def test_info_shows_where_it_looked_and_a_folder_with_videos(dataset, tmp_path, capsys):
    root = shutil.copytree(dataset, tmp_path / "ds")
    os.rename(root / "videos", root / "video")
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 episode(s) without video" in out and str(root / "videos" / "chunk-000") in out
    assert f"`{root / 'video'}` holds 3 .mp4 file(s)" in out and "--videos-dir" in out
    assert main(["info", str(root), "--videos-dir", str(root / "video")]) == 0
    assert "0 episode(s) without video" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda r: (r / "meta" / "info.json").write_text("[]"), "info.json` holds a JSON list"),
        (lambda r: (r / "meta" / "info.json").write_text("{"), "info.json` is not valid JSON"),
        (
            lambda r: (r / "data" / "chunk-000" / "episode_000002.parquet").write_bytes(b"PAR1 garbage"),
            "episode_000002.parquet` is not a readable parquet file",
        ),
    ],
)
def test_damaged_metadata_is_one_line(dataset, tmp_path, capsys, damage, words):
    root = shutil.copytree(dataset, tmp_path / "ds")
    damage(root)
    assert main(["info", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sarm info: error: ") and words in err[0]
