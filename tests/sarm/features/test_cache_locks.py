"""Two `extract_features` runs on one cache directory: each episode is encoded by one of them only."""

import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from tests.sarm.data.test_dataset import LENGTHS, make_v21
from tests.sarm.features.test_cache import CountingEncoder, files

pytest.importorskip("av")

_SLOW = """
import sys, time
sys.path.insert(0, {root!r})
from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features

class Slow(PixelEncoder):
    batches = 0

    def _encode_images(self, images):
        self.batches += 1
        time.sleep(1.0 if self.batches <= 3 else 0.0)  # episode 0 held for 3 s, then full speed
        return super()._encode_images(images)

extract_features(open_dataset({ds!r}), Slow(32, batch_size=4), {out!r}, shard={shard!r}, progress=False)
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_v21(tmp_path_factory.mktemp("locks") / "ds")


def start_slow_run(dataset, out, shard):
    """A run in another process that holds episode 0's lock for about 3 s."""
    root = str(Path(__file__).resolve().parents[3])
    code = _SLOW.format(root=root, ds=str(dataset), out=str(out), shard=shard)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    lock = out / "episodes" / "episode_000000.lock"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if lock.is_file() and f"pid {proc.pid}" in lock.read_text():
            return proc
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(
        f"the other run never took episode 0's lock: {proc.communicate()[1].decode()[-2000:]}"
    )


def test_a_second_run_leaves_episodes_another_run_holds_to_it(dataset, tmp_path):
    extract_features(open_dataset(dataset), PixelEncoder(32, batch_size=4), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    proc = start_slow_run(dataset, out, "0/1")
    encoder = CountingEncoder(32, batch_size=4)
    try:
        with pytest.warns(UserWarning, match=rf"left 1 episode\(s\) \[0\] to another run .*pid {proc.pid}"):
            cache = extract_features(open_dataset(dataset), encoder, out, progress=False)
        assert encoder.images == LENGTHS[1] + LENGTHS[2]  # episode 0 is the other run's
        assert list(cache.held) == [0] and f"pid {proc.pid}" in cache.held[0]
        assert cache.missing.tolist() == [0]
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert files(out) == files(tmp_path / "ref")  # the other run skipped 1 and 2, finished by us


def test_shards_run_at_the_same_time_into_one_directory(dataset, tmp_path):
    extract_features(open_dataset(dataset), PixelEncoder(32, batch_size=4), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    proc = start_slow_run(dataset, out, "0/2")  # episodes 0 and 2
    encoder = CountingEncoder(32, batch_size=4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing held, nothing skipped
            cache = extract_features(open_dataset(dataset), encoder, out, shard="1/2", progress=False)
        assert encoder.images == LENGTHS[1] and cache.held == {}
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert files(out) == files(tmp_path / "ref")
