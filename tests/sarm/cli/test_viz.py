"""`sarm viz`: an unknown --camera, and a progress file of another dataset, say so in one line."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sarm.cli import main
from tests.conftest import progress_table
from tests.sarm.data.test_dataset import CAM, LENGTHS, make_v21

pytest.importorskip("av")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("cli_viz") / "ds")


def write(path, lengths, start_index=0):
    pq.write_table(progress_table([[0.5] * n for n in lengths], start_index=start_index), path)
    return path


def viz(path, dataset, out, *extra):
    return main(["viz", str(path), "--dataset", str(dataset), "--out", str(out), *extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("sarm viz: error:") and "\n" not in err, err
    return err


def test_an_unknown_camera_is_an_error(dataset, tmp_path, capsys):
    path = write(tmp_path / "p.parquet", LENGTHS)
    assert viz(path, dataset, tmp_path / "v", "--episodes", "0", "--camera", "wrist") == 2
    err = error_line(capsys)
    assert "camera 'wrist'" in err and CAM in err
    assert not (tmp_path / "v").exists()
    assert viz(path, dataset, tmp_path / "v", "--episodes", "0", "--camera", CAM) == 0


@pytest.mark.parametrize(
    "lengths, start, extra, named",
    [
        ((10, 25, 30), 0, ["--episodes", "0"], "episode 0 has 10 frames in the progress file but 20"),
        (
            (20, 25, 30),
            100,
            ["--episodes", "1"],
            "episode 1 starts at global index 120 in the progress file but at 20",
        ),
        ((20, 25, 30, 5, 5), 0, ["--num-episodes", "5"], "holds 5 episodes, 2 of them not in the dataset"),
    ],
)
def test_progress_of_another_dataset_is_an_error(dataset, tmp_path, capsys, lengths, start, extra, named):
    path = write(tmp_path / "p.parquet", lengths, start)
    assert viz(path, dataset, tmp_path / "v", *extra) == 2
    err = error_line(capsys)
    assert named in err and "does not match the dataset" in err
