"""`sarm progress`: a model directory that is missing or whose config.json is not JSON, an output that is a
directory or an input, another encoder's cache: one line each, in the CLI's terms, before any compute."""

from __future__ import annotations

import shutil

import pytest

from rabc import read_progress
from sarm import SARM
from sarm.cli import main
from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from tests.conftest import FIXTURES
from tests.sarm.data.test_dataset import make_v21
from tests.sarm.inference.test_progress import tiny
from tests.sarm.inference.test_progress_checks import edited_copy

pytest.importorskip("av")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = make_v21(tmp_path_factory.mktemp("cli_progress") / "ds")
    return extract_features(open_dataset(root), PixelEncoder(32), root.parent / "cache", progress=False)


@pytest.fixture
def model_dir(tmp_path):
    tiny().save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def progress(model, cache, output, *extra):
    return main(["progress", "--model", str(model), "--cache", str(cache), "--output", str(output), *extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("sarm progress: error:") and "\n" not in err, err
    return err


@pytest.fixture
def no_compute(monkeypatch):
    calls = []
    monkeypatch.setattr(SARM, "predict", lambda *a, **k: calls.append(1))
    return calls


@pytest.mark.parametrize("lerobot", [False, True])
def test_a_config_json_that_is_not_json_is_one_line(cache, model_dir, tmp_path, capsys, lerobot):
    root = shutil.copytree(FIXTURES / "sarm_checkpoint", tmp_path / "lr") if lerobot else model_dir
    (root / "config.json").write_text('{"type": "sarm", ')
    assert progress(root, cache.root, tmp_path / "p.parquet") == 2
    err = error_line(capsys)
    assert f"`{root / 'config.json'}` is not valid JSON" in err and "re-save" in err


@pytest.mark.parametrize("missing", ["runs/model", "/no/such/dir/model"])
def test_a_model_directory_that_does_not_exist_is_one_line(cache, tmp_path, capsys, monkeypatch, missing):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert progress(missing, cache.root, tmp_path / "p.parquet") == 2
    err = error_line(capsys)
    assert f"`{missing}`" in err and "config.json" in err


def test_an_output_directory_is_refused_before_any_compute(cache, model_dir, tmp_path, capsys, no_compute):
    (tmp_path / "out").mkdir()
    assert progress(model_dir, cache.root, tmp_path / "out") == 2
    assert "is a directory" in error_line(capsys) and no_compute == []
    assert progress(model_dir, cache.root, cache.root / "p.parquet") == 2
    assert "would overwrite the feature cache" in error_line(capsys)
    assert progress(model_dir, cache.root, model_dir / "config.json") == 2
    assert "would overwrite the model" in error_line(capsys)
    assert progress(model_dir, cache.root, "/proc/p.parquet") == 2
    assert "cannot write the output" in error_line(capsys) and no_compute == []


def test_another_encoders_cache_names_the_flag_that_overrides(cache, tmp_path, capsys):
    model_dir = tiny(encoder=dict(cache.manifest["encoder"])).save_pretrained(tmp_path / "m")
    other = edited_copy(cache, tmp_path / "c", encoder={**cache.manifest["encoder"], "spec": "clip:x"})
    assert progress(model_dir, other.root, tmp_path / "p.parquet") == 2
    err = error_line(capsys)
    assert "`pixels:32`" in err and "`clip:x`" in err and "--allow-other-encoder" in err
    assert "allow_other_encoder=True" not in err
    assert progress(model_dir, other.root, tmp_path / "p.parquet", "--allow-other-encoder") == 0


def test_the_file_records_the_model_the_user_gave(cache, model_dir, tmp_path):
    assert progress(model_dir, cache.root, tmp_path / "p.parquet") == 0
    assert read_progress(tmp_path / "p.parquet").metadata["reward_model_path"] == str(model_dir)


@pytest.mark.parametrize("flag", ["--stride", "--batch-size"])
def test_bad_values_are_named_as_flags(cache, model_dir, tmp_path, capsys, flag, no_compute):
    assert progress(model_dir, cache.root, tmp_path / "p.parquet", flag, "0") == 2
    err = error_line(capsys)
    assert f"{flag} should be a positive integer, but got 0" in err and "stride=" not in err
    assert not (tmp_path / "p.parquet.parts").exists()


def test_merge_without_parts_says_what_to_run(cache, tmp_path, capsys):
    args = ["progress", "--cache", str(cache.root), "--output", str(tmp_path / "p.parquet"), "--merge"]
    assert main(args) == 2
    err = error_line(capsys)
    assert "no progress parts" in err and "p.parquet.parts" in err and "run `sarm progress`" in err
