"""`rabc` outputs: never over an input, checked before any compute, one-line errors in the CLI's terms."""

import errno
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import rabc.cli.episodes
import rabc.cli.options
from rabc import RABCWeightedSampler, RABCWeights
from rabc.cli import main
from tests.conftest import progress_table


@pytest.fixture
def progress(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(progress_table([np.linspace(0, 1, 40), np.linspace(0, 1, 30)]), path)
    return path


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if the command reads the progress file (the checks must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("computed before checking the outputs")

    for module in (rabc.cli.options, rabc.cli.episodes):
        monkeypatch.setattr(module, "read_progress", refuse)
    monkeypatch.setattr(rabc.cli.options.RABCWeights, "load", refuse)


def _error(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err  # may hold a progress bar before the error
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"rabc {argv[0]}: error: "), err  # one line
    return errors[0]


def test_output_over_the_input_is_refused(tmp_path, progress, capsys, no_compute):
    before = progress.read_bytes()
    link = tmp_path / "link.parquet"
    link.symlink_to(progress)
    hard = tmp_path / "hard.parquet"
    os.link(progress, hard)
    relative = os.path.relpath(progress)
    for out in (progress, link, hard, relative):
        err = _error(capsys, ["weights", progress, "--chunk-size", "5", "-o", out])
        assert "-o/--output" in err and "PROGRESS" in err and "same file" in err
    err = _error(capsys, ["diagnose", link, "--chunk-size", "5", "--plot", progress])
    assert "--plot" in err and "PROGRESS" in err
    err = _error(capsys, ["diagnose", progress, "--chunk-size", "5", "--json", hard])
    assert "--json" in err and "PROGRESS" in err
    err = _error(
        capsys,
        ["diagnose", progress, "--chunk-size", "5", "--plot", tmp_path / "x", "--json", tmp_path / "x"],
    )
    assert "--json" in err and "--plot" in err
    assert progress.read_bytes() == before


def test_weights_file_as_input_and_output_is_refused(tmp_path, progress, capsys):
    w = tmp_path / "w.parquet"
    assert main(["weights", str(progress), "--chunk-size", "5", "-o", str(w)]) == 0
    before = w.read_bytes()
    err = _error(capsys, ["weights", w, "--kappa", "auto", "-o", w])
    assert "same file" in err and w.read_bytes() == before


def test_directory_for_a_file_and_file_for_a_directory(tmp_path, progress, capsys, no_compute):
    err = _error(capsys, ["weights", progress, "--chunk-size", "5", "-o", tmp_path])
    assert f"-o/--output `{tmp_path}` is a directory, but a file is expected" in err
    err = _error(capsys, ["diagnose", progress, "--chunk-size", "5", "--plot", tmp_path])
    assert "--plot" in err and "is a directory" in err
    err = _error(capsys, ["demo", "--out", progress])
    assert f"--out `{progress}` is a file, but a directory is expected" in err
    err = _error(capsys, ["weights", progress, "--chunk-size", "5", "-o", progress / "w.parquet"])
    assert "-o/--output" in err and "is a file, not a directory" in err


def test_unwritable_place_is_refused_before_compute(tmp_path, progress, capsys, no_compute, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not _same_path(p, locked) and real(p, mode))
    err = _error(capsys, ["weights", progress, "--chunk-size", "5", "-o", locked / "sub" / "w.parquet"])
    assert f"directory `{locked}` is not writable" in err and "-o/--output" in err
    err = _error(capsys, ["demo", "--out", locked / "demo"])
    assert "--out" in err and "not writable" in err


def _same_path(p, other) -> bool:
    return os.path.abspath(p) == os.path.abspath(other)


def test_corrupt_progress_file_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 100 + b"garbage")
    err = _error(capsys, ["weights", bad, "--chunk-size", "5", "-o", tmp_path / "w.parquet"])
    assert f"progress file `{bad}` is not a readable parquet file" in err and "sarm progress" in err


def test_corrupt_data_page_behind_an_intact_footer_is_named(tmp_path, progress, capsys):
    pq.write_table(progress_table([np.linspace(0, 1, 4000)]), progress, compression="snappy")
    data = bytearray(progress.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[8 : len(data) - footer - 8] = os.urandom(len(data) - footer - 16)  # the pages, not the footer
    progress.write_bytes(bytes(data))
    assert pq.ParquetFile(progress).metadata.num_rows == 4000  # the footer still reads
    err = _error(capsys, ["diagnose", progress, "--chunk-size", "5"])
    assert f"`{progress}`" in err and ("not a readable parquet file" in err or "progress_sparse" in err)


def test_disk_full_says_so_and_leaves_no_partial_file(tmp_path, progress, capsys, monkeypatch):
    out = tmp_path / "w.parquet"
    out.write_bytes(b"previous weights")

    def full(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("[errno 28] No space left on device")  # pyarrow's wording, without errno

    monkeypatch.setattr(pq, "write_table", full)
    err = _error(capsys, ["weights", progress, "--chunk-size", "5", "-o", out])
    assert "disk full" in err and str(out) in err
    assert out.read_bytes() == b"previous weights"  # untouched, and no temporary file beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet", "w.parquet"]

    monkeypatch.setattr(
        pq, "write_table", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))
    )
    with pytest.raises(OSError, match=r"disk full while writing `.*new\.parquet`") as info:
        RABCWeights.from_progress(progress, chunk_size=5).save(tmp_path / "new.parquet")
    assert info.value.errno == errno.ENOSPC
    assert not (tmp_path / "new.parquet").exists()


def test_hints_name_the_cli_flags(tmp_path, capsys):
    p = np.linspace(0, 1, 40)
    p[5] = np.nan
    nan_file = tmp_path / "nan.parquet"
    pq.write_table(progress_table([p]), nan_file)
    err = _error(
        capsys, ["weights", nan_file, "--chunk-size", "5", "--fallback-weight", "none", "-o", tmp_path / "w"]
    )
    assert "--fallback-weight none" in err and "--fallback-weight 1.0" in err and "fallback_weight" not in err
    err = _error(capsys, ["weights", nan_file, "--chunk-size", "0", "-o", tmp_path / "w"])
    assert "--chunk-size 0" in err and "chunk_size" not in err
    err = _error(capsys, ["weights", nan_file, "--chunk-size", "5", "--kappa", "-1", "-o", tmp_path / "w"])
    assert "--kappa -1" in err and "kappa=" not in err
    err = _error(
        capsys,
        [
            "weights",
            nan_file,
            "--chunk-size",
            "5",
            "--kappa",
            "auto",
            "--target-mean-weight",
            "2",
            "-o",
            tmp_path / "w",
        ],
    )
    assert "--target-mean-weight 2" in err and "target=" not in err
    unsorted = tmp_path / "unsorted.parquet"
    pq.write_table(progress_table([np.linspace(0, 1, 10)]).take([1, 0, *range(2, 10)]), unsorted)
    err = _error(capsys, ["diagnose", unsorted, "--chunk-size", "5"])
    assert "pass --sort" in err and "sort=True" not in err


@pytest.mark.parametrize("state", [None, [1, 2], "state.pt", 3])
def test_load_state_dict_refuses_a_non_dict(state):
    sampler = RABCWeightedSampler(np.ones(10), seed=0)
    with pytest.raises(TypeError, match=r"state should be a dict from RABCWeightedSampler\.state_dict\(\)"):
        sampler.load_state_dict(state)


@pytest.mark.parametrize(("key", "value"), [("seed", "0"), ("epoch", -1), ("epoch", 1.5), ("seed", None)])
def test_load_state_dict_refuses_wrong_field_types(key, value):
    sampler = RABCWeightedSampler(np.ones(10), seed=0)
    with pytest.raises(ValueError, match=rf"{key} should be a non-negative integer, but got {key}="):
        sampler.load_state_dict({**sampler.state_dict(), key: value})


def test_api_save_to_a_directory_or_under_a_file_is_a_clear_error(tmp_path, progress):
    w = RABCWeights.from_progress(progress, chunk_size=5)
    with pytest.raises(ValueError, match=rf"output path `{tmp_path}` is a directory, but a file is expected"):
        w.save(tmp_path)
    with pytest.raises(ValueError, match=r"`.*p\.parquet` is a file, not a directory"):
        w.save(progress / "w.parquet")
