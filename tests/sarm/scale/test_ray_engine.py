"""sarm.scale on a real local Ray (2 CPUs, 2 workers): the same files as the local engine, retried
workers, an undecodable mp4 listed, a killed driver rerun to the same result.

One Ray is started for the module (`ray_session` joins an initialised Ray), so Ray's start-up is paid
once; the killed-driver test runs `sarm features` as a child process joined to that Ray by address.
"""

import os
import signal
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sarm import SARM, SARMConfig
from sarm.cli import main
from sarm.data import open_dataset
from sarm.data.writer import LeRobotWriter
from sarm.features import FeatureCache, extract_features
from sarm.features.encoders import PixelEncoder
from sarm.inference.progress import compute_progress
from sarm.scale.engine import FAULT_ENV, RayOptions
from sarm.scale.features import extract_features_ray
from sarm.scale.progress import compute_progress_ray
from tests.conftest import SHARED
from tests.waiting import HANG_S, wait_until

ray = pytest.importorskip("ray")
pytest.importorskip("av")

G1 = SHARED / "datasets" / "g1_pick_bottle_v21_first20"
SO101 = SHARED / "datasets" / "so101_record_test_v30"
CAM = "observation.images.top"
# 40 episodes of 9..130 frames: several share one mp4 (v3.0), the longest span 3 tasks of 64 frames
LENGTHS = [9 + (37 * e) % 122 for e in range(40)]
OPTIONS = RayOptions(num_workers=2, frames_per_task=64)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def make_dataset(root: Path, lengths=LENGTHS) -> Path:
    """A v3.0 dataset whose frames differ (a moving ramp plus noise, so the mp4s fill up and several
    files of a few episodes each are written)."""
    rng = np.random.default_rng(0)
    with LeRobotWriter(
        root, fps=30, state_dim=3, action_dim=3, cameras={CAM: (32, 32)}, video_file_mb=0.2
    ) as w:
        for e, n in enumerate(lengths):
            ramp = (np.arange(32)[None, :] * 8 + np.arange(n)[:, None] * (3 + e % 5)) % 256
            noise = rng.integers(0, 64, size=(n, 32, 32, 3))
            images = ((ramp[:, None, :, None] + noise) % 256).astype(np.uint8)
            state = rng.normal(size=(n, 3)).astype(np.float32)
            w.add_episode(state=state, action=-state, task=("pick", "place")[e % 2], images={CAM: images})
    return root


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("gen") / "ds")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_files(ours: Path, theirs: Path) -> None:
    a, b = files(ours), files(theirs)
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"files differ between the engines: {different}"


def tiny_model(image_dim: int, state_dim: int, num_cameras: int = 1) -> SARM:
    torch.manual_seed(0)
    config = SARMConfig(
        image_dim=image_dim,
        num_cameras=num_cameras,
        text_dim=image_dim,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        n_obs_steps=4,
        frame_gap=3,
        max_state_dim=max(state_dim, 4),
        window="past",
        attention="causal",
    )
    return SARM(config)


def arrays(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


CASES = {
    "g1_v21": (G1, {"episodes": [0, 1, 2], "missing_videos": "skip"}),  # episode 0's video is missing
    "so101_v30_state_only": (SO101, {"state_only": True}),  # its videos are all missing
    "generated_v30_40_episodes": (None, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ray_writes_the_local_engines_cache_and_progress_file(case, generated, tmp_path):
    root, plan = CASES[case]
    ds = open_dataset(root or generated)
    skips = plan.get("missing_videos") == "skip"
    expect = lambda: pytest.warns(UserWarning, match="skipping 1 episode") if skips else nullcontext()  # noqa: E731
    with expect():
        local = extract_features(ds, PixelEncoder(16), tmp_path / "local", progress=False, **plan)
    with expect():
        cache, outcome = extract_features_ray(
            ds, "pixels:16", tmp_path / "ray", options=OPTIONS, progress=False, **plan
        )
    assert not outcome.failed and outcome.retries == 0
    assert cache.episodes.tolist() == local.episodes.tolist() and len(cache.episodes) > 0
    assert_same_files(tmp_path / "ray", tmp_path / "local")

    model = tiny_model(16, ds.state_dim, len(local.cameras))
    mine = compute_progress(model, local, tmp_path / "local.parquet", stage_probs=True, progress=False)
    path, outcome = compute_progress_ray(
        model, cache, tmp_path / "ray.parquet", options=OPTIONS, stage_probs=True, progress=False
    )
    assert path == tmp_path / "ray.parquet" and not outcome.failed
    a, b = arrays(path), arrays(mine)
    assert list(a) == list(b) and len(a["index"]) == sum(local.length(e) for e in local.episodes)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert pq.read_metadata(path).metadata == pq.read_metadata(mine).metadata


@pytest.fixture(scope="module")
def local_cache(generated, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "cache"
    extract_features(open_dataset(generated), PixelEncoder(16), out, progress=False)
    return out


@pytest.mark.parametrize("fault", ["decode:3", "work:5"])
def test_a_worker_killed_mid_task_is_retried_and_the_cache_is_the_same(
    fault, generated, local_cache, tmp_path, monkeypatch
):
    monkeypatch.setenv(FAULT_ENV, fault)
    _, outcome = extract_features_ray(
        open_dataset(generated), "pixels:16", tmp_path / "ray", options=OPTIONS, progress=False
    )
    assert outcome.retries >= 1 and not outcome.failed
    assert_same_files(tmp_path / "ray", local_cache)


def test_a_scorer_killed_mid_episode_is_retried_and_the_progress_is_the_same(
    local_cache, tmp_path, monkeypatch
):
    cache = FeatureCache(local_cache)
    model = tiny_model(16, 3)
    mine = compute_progress(model, cache, tmp_path / "local.parquet", progress=False)
    monkeypatch.setenv(FAULT_ENV, "work:4")
    path, outcome = compute_progress_ray(
        model, cache, tmp_path / "ray.parquet", options=OPTIONS, progress=False
    )
    assert outcome.retries >= 1 and not outcome.failed
    a, b = arrays(path), arrays(mine)
    for name in b:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_workers_that_keep_dying_fail_the_episode_after_max_retries(generated, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "work:1")
    options = RayOptions(num_workers=2, frames_per_task=64, max_retries=0)
    cache, outcome = extract_features_ray(
        open_dataset(generated), "pixels:16", tmp_path / "ray", options=options, progress=False
    )
    assert len(outcome.failed) >= 1 and outcome.retries == 0
    assert all("worker lost 1 time(s)" in reason for reason in outcome.failed.values())
    assert set(cache.episodes.tolist()) | set(outcome.failed) == set(range(len(LENGTHS)))


def test_an_undecodable_mp4_is_listed_by_episode_and_file_and_not_retried(generated, tmp_path, capsys):
    import shutil

    root = shutil.copytree(generated, tmp_path / "ds")
    ds = open_dataset(root)
    bad = ds.video_path(CAM, 20)
    bad.write_bytes(b"not an mp4" * 100)
    hit = [e for e in ds.episodes.tolist() if ds.video_path(CAM, e) == bad]
    assert 0 < len(hit) < len(LENGTHS)
    args = ["features", str(root), "--encoder", "pixels:16", "--out", str(tmp_path / "c")]
    args += ["--engine", "ray", "--num-workers", "2", "--max-retries", "2"]
    assert main(args) == 3
    out, err = capsys.readouterr()
    assert f"{len(hit)} episode(s) failed" in err
    for e in hit:
        line = next(x for x in err.splitlines() if x.startswith(f"  episode {e}:"))
        assert str(bad) in line
    assert "ray: 0 unit(s) retried" in out
    cache = FeatureCache(tmp_path / "c")
    assert sorted(cache.missing) == hit and len(cache.episodes) == len(LENGTHS) - len(hit)


def test_a_killed_driver_is_rerun_and_keeps_its_finished_episodes(generated, local_cache, tmp_path):
    address = ray.get_runtime_context().gcs_address
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "sarm.cli", "features", str(generated), "--encoder", "pixels:16"]
    command += ["--out", str(out), "--engine", "ray", "--ray-address", address, "--num-workers", "2"]
    command += ["--frames-per-task", "64"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    episodes = out / "episodes"
    finished = lambda: len(list(episodes.glob("*.images.npy"))) if episodes.is_dir() else 0  # noqa: E731
    wait_until(lambda: finished() >= 3, "three finished episodes", child)
    child.send_signal(signal.SIGKILL)
    child.wait(HANG_S)
    done = [p.name.split(".")[0] for p in episodes.glob("*.images.npy")]
    assert 3 <= len(done) < len(LENGTHS), "the driver should die before the end"
    kept = {p.name: p.stat().st_mtime_ns for name in done for p in episodes.glob(f"{name}.*.npy")}

    _, outcome = extract_features_ray(
        open_dataset(generated), "pixels:16", out, options=OPTIONS, progress=False
    )
    assert not outcome.failed
    assert_same_files(out, local_cache)
    assert all((episodes / name).stat().st_mtime_ns == t for name, t in kept.items()), (
        "finished parts rewritten"
    )


def test_sarm_progress_engine_ray_writes_the_local_file(local_cache, tmp_path, capsys):
    tiny_model(16, 3).save_pretrained(tmp_path / "m")
    base = ["progress", "--model", str(tmp_path / "m"), "--cache", str(local_cache)]
    assert main([*base, "--output", str(tmp_path / "local.parquet")]) == 0
    ray_run = [*base, "--output", str(tmp_path / "ray.parquet"), "--engine", "ray", "--num-workers", "2"]
    assert main(ray_run) == 0
    assert "ray: 0 unit(s) retried, 0 episode(s) failed" in capsys.readouterr().out
    a, b = arrays(tmp_path / "ray.parquet"), arrays(tmp_path / "local.parquet")
    assert list(a) == list(b)
    for name in b:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_video_shorter_than_its_episode_fails_that_episode_only(tmp_path):
    from tests.sarm.data.test_dataset import CAM as V21_CAM
    from tests.sarm.data.test_dataset import make_v21
    from tests.sarm.data.test_video import gray, write_video

    root = make_v21(tmp_path / "ds")  # episodes of 20, 25, 30 frames
    write_video(root / "videos" / "chunk-000" / V21_CAM / "episode_000002.mp4", gray(np.arange(25)))
    cache, outcome = extract_features_ray(
        open_dataset(root), "pixels:16", tmp_path / "c", options=OPTIONS, progress=False
    )
    assert list(outcome.failed) == [2] and outcome.retries == 0
    assert (
        "episode 2: frame 25 should be shown" in outcome.failed[2]
        and "episode_000002.mp4" in outcome.failed[2]
    )
    assert cache.episodes.tolist() == [0, 1]
