"""Files rabc writes get the user's umask, and a killed write leaves nothing the next write keeps."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rabc import RABCWeights, read_progress, write_progress
from rabc.cli import main
from tests.conftest import progress_table
from tests.waiting import read_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask():
    """Set a umask for the test and restore the previous one after it."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _progress(path):
    pq.write_table(progress_table([np.linspace(0, 1, 40), np.linspace(0, 1, 30)]), path)
    return path


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_every_file_rabc_writes_follows_the_umask(tmp_path, umask, mask, capsys):
    pytest.importorskip("matplotlib")
    progress = _progress(tmp_path / "p.parquet")
    umask(mask)
    expected = 0o666 & ~mask
    w = RABCWeights.from_progress(progress, chunk_size=5)
    assert _mode(w.save(tmp_path / "w.parquet")) == expected
    assert _mode(write_progress(tmp_path / "copy.parquet", read_progress(progress))) == expected
    assert main(["weights", str(progress), "--chunk-size", "5", "-o", str(tmp_path / "cli.parquet")]) == 0
    plot, report = tmp_path / "d.png", tmp_path / "d.json"
    assert (
        main(["diagnose", str(progress), "--chunk-size", "5", "--plot", str(plot), "--json", str(report)])
        == 0
    )
    for path in (tmp_path / "cli.parquet", plot, report):
        assert _mode(path) == expected, path
    assert json.loads(report.read_text())["verdict"]


def test_a_killed_write_leaves_an_orphan_that_the_next_write_removes(tmp_path):
    out = tmp_path / "w.parquet"
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        import pyarrow.parquet as pq
        from rabc import RABCWeights
        from tests.conftest import progress_table

        def stall(table, where, **kwargs):
            open(where, "wb").write(b"PAR1 partial")
            print("writing", flush=True)
            time.sleep(600)

        w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 30)]), chunk_size=5)
        pq.write_table = stall
        w.save({str(out)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert read_line(child, "`writing` line") == b"writing\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    orphans = [p for p in tmp_path.iterdir() if p.name != "w.parquet"]
    assert len(orphans) == 1 and orphans[0].name.startswith(".w.parquet.") and not out.exists()
    legacy = tmp_path / ".w.parquet.k2x_9abc.tmp"  # what tempfile.mkstemp left before
    legacy.write_bytes(b"PAR1 partial")
    unrelated = tmp_path / ".w.parquet.notes"
    unrelated.write_text("keep me")
    w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 30)]), chunk_size=5)
    w.save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".w.parquet.notes", "w.parquet"]
    np.testing.assert_array_equal(RABCWeights.load(out).weights, w.weights)


def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    def broken(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 partial")
        raise RuntimeError("writer crashed")

    monkeypatch.setattr(pq, "write_table", broken)
    w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 30)]), chunk_size=5)
    with pytest.raises(RuntimeError, match="writer crashed"):
        w.save(tmp_path / "w.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    """Another process that is still writing the same path keeps its temporary file."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        from rabc.files import TMP_TAG, _host

        live = tmp_path / f".w.parquet{TMP_TAG}{_host()}.{sleeper.pid}.abcd1234"
        live.write_bytes(b"in progress")
        RABCWeights.from_progress(progress_table([np.linspace(0, 1, 30)]), chunk_size=5).save(
            tmp_path / "w.parquet"
        )
        assert live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
