"""Two `extract_features` runs on one cache directory: each episode is encoded by one of them only."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from tests.sarm.data.test_dataset import LENGTHS, make_v21
from tests.sarm.features.test_cache import CountingEncoder, files
from tests.waiting import HANG_S, HOLD_UNTIL, wait_until

pytest.importorskip("av")

_HELD = """
import sys
sys.path.insert(0, {root!r})
from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
{hold}
class Held(PixelEncoder):
    batches = 0

    def _encode_images(self, images):
        self.batches += 1
        if self.batches == 1:  # episode 0's lock is held until the test lets go
            hold_until({release!r})
        return super()._encode_images(images)

extract_features(open_dataset({ds!r}), Held(32, batch_size=4), {out!r}, shard={shard!r}, progress=False)
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("locks") / "ds")


def start_held_run(dataset, out, shard):
    """A run in another process that holds episode 0's lock until `release(out)` (then runs to the end)."""
    root = str(Path(__file__).resolve().parents[3])
    code = _HELD.format(
        root=root, ds=str(dataset), out=str(out), shard=shard, hold=HOLD_UNTIL, release=str(_gate(out))
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    lock = out / "episodes" / "episode_000000.lock"
    try:
        wait_until(lambda: lock.is_file() and f"pid {proc.pid}" in lock.read_text(), "episode 0's lock", proc)
    except AssertionError as e:
        proc.kill()
        raise AssertionError(f"{e}: {proc.communicate()[1].decode()[-2000:]}") from None
    return proc


def _gate(out):
    return out.parent / f"{out.name}.release"


def release(out):
    _gate(out).touch()


def test_a_second_run_leaves_episodes_another_run_holds_to_it(dataset, tmp_path):
    extract_features(open_dataset(dataset), PixelEncoder(32, batch_size=4), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    proc = start_held_run(dataset, out, "0/1")
    encoder = CountingEncoder(32, batch_size=4)
    try:
        with pytest.warns(UserWarning, match=rf"left 1 episode\(s\) \[0\] to another run .*pid {proc.pid}"):
            cache = extract_features(open_dataset(dataset), encoder, out, progress=False)
        assert encoder.images == LENGTHS[1] + LENGTHS[2]  # episode 0 is the other run's
        assert list(cache.held) == [0] and f"pid {proc.pid}" in cache.held[0]
        assert cache.missing.tolist() == [0]
    finally:
        release(out)
        _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert files(out) == files(tmp_path / "ref")  # the other run skipped 1 and 2, finished by us


def test_shards_run_at_the_same_time_into_one_directory(dataset, tmp_path):
    extract_features(open_dataset(dataset), PixelEncoder(32, batch_size=4), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    proc = start_held_run(dataset, out, "0/2")  # episodes 0 and 2
    encoder = CountingEncoder(32, batch_size=4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing held, nothing skipped
            cache = extract_features(open_dataset(dataset), encoder, out, shard="1/2", progress=False)
        assert encoder.images == LENGTHS[1] and cache.held == {}
    finally:
        release(out)
        _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert files(out) == files(tmp_path / "ref")
