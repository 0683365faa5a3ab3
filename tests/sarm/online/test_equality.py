"""The stream equals offline `sarm progress`: a briefly trained SARM, a feature cache, every frame from
the first, several environments with staggered and partial resets; from features and from raw frames."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from sarm.data import open_dataset
from sarm.features import extract_features
from sarm.features.encoders import PixelEncoder
from sarm.inference.progress import compute_progress
from sarm.labels.schema import Span
from sarm.online import ProgressStream
from sarm.training.from_cache import train_from_cache
from sarm.training.loop import TrainConfig
from tests.sarm.data.test_dataset import CAM, LENGTHS, make_v21

pytest.importorskip("av")

# k * g = 24 frames of history: episode 0 (20 frames) never has a full window, episodes 1 and 2 (25, 30)
# switch from the evenly spaced rule to the regular one at frame 24
SIZES = {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "n_obs_steps": 4, "frame_gap": 6}
SPANS = {
    0: [Span("reach", 0, 7), Span("grasp", 8, 19)],  # "pick the cube"
    1: [Span("reach", 0, 9), Span("grasp", 10, 24)],  # "place the cube"
    2: [Span("reach", 0, 14), Span("grasp", 15, 29)],  # "pick the cube"
}
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """make_v21 (3 episodes, 2 tasks, robot state), its pixel-feature caches (float16 as `sarm features`
    writes by default, and float32), and a SARM trained on it for a few steps (state statistics saved)."""
    tmp = tmp_path_factory.mktemp("online")
    ds = open_dataset(make_v21(tmp / "ds"))
    encoder = PixelEncoder(32)
    cache = extract_features(ds, encoder, tmp / "cache16", progress=False)
    cache32 = extract_features(ds, encoder, tmp / "cache32", dtype="float32", progress=False)
    settings = TrainConfig(steps=40, batch_size=8, lr=1e-3, min_lr=1e-4, warmup_steps=2, checkpoint_every=40)
    model, result, _ = train_from_cache(
        cache, tmp / "run", annotations={"sparse": SPANS}, config=settings, model_overrides=SIZES,
        device="cpu", progress=False,
    )  # fmt: skip
    assert result.step == 40 and model.config.state_mean is not None and model.config.window == "past"
    return ds, encoder, cache, cache32, model.eval(), tmp


def offline(model, cache, path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Episode -> (progress (T,), stage probabilities (T, K)) from `compute_progress`."""
    table = pq.read_table(compute_progress(model, cache, path, stage_probs=True, progress=False))
    episode = table.column("episode_index").to_numpy()
    progress = table.column("progress_sparse").to_numpy()
    probs = np.array(table.column("stage_probs_sparse").to_pylist(), dtype=np.float32)
    return {e: (progress[episode == e], probs[episode == e]) for e in range(len(LENGTHS))}


def play(stream, queues, starts, frame_of, step):
    """Each environment i plays the episodes in `queues[i]` back to back from global step `starts[i]`;
    a step scores only the environments that are playing (`env_ids`), and an environment whose episode
    ended is reset alone before its next frame. Returns [(episode, progress (T,), probs (T, K))]."""
    queues = [list(q) for q in queues]
    current = [None] * len(queues)  # (episode, next frame, progress list, probs list)
    done, clock = [], 0
    while any(queues) or any(c is not None for c in current):
        for i, c in enumerate(current):
            if c is not None and c[1] == LENGTHS[c[0]]:
                done.append((c[0], np.array(c[2]), np.array(c[3])))
                current[i] = None
            if current[i] is None and queues[i] and clock >= starts[i]:
                episode = queues[i].pop(0)
                stream.reset(TASK_OF[episode], env_ids=[i])
                current[i] = [episode, 0, [], []]
        active = [i for i, c in enumerate(current) if c is not None]
        if active:
            frames, states = zip(*(frame_of(current[i][0], current[i][1]) for i in active), strict=True)
            progress = step(np.stack(frames), np.stack(states), active)
            assert stream.last.frame_index.tolist() == [current[i][1] for i in active]
            for row, i in enumerate(active):
                current[i][1] += 1
                current[i][2].append(progress[row])
                current[i][3].append(stream.last.stage_probs[row])
        clock += 1
    return done


TASK_OF = {0: "pick the cube", 1: "place the cube", 2: "pick the cube"}
QUEUES = [[0, 2], [1, 0], [2, 1, 1]]  # three environments, every episode at least twice
STARTS = [0, 3, 11]


def check(played, expected) -> float:
    worst = 0.0
    assert sorted(e for e, _, _ in played) == sorted(e for q in QUEUES for e in q)
    for episode, progress, probs in played:
        want_progress, want_probs = expected[episode]
        assert progress.shape == want_progress.shape
        worst = max(worst, float(np.abs(progress - want_progress).max()))
        np.testing.assert_allclose(progress, want_progress, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(probs, want_probs, rtol=0, atol=TOLERANCE)
    return worst


def test_step_features_equals_offline_progress_from_the_first_frame(trained):
    _, _, cache, _, model, tmp = trained
    expected = offline(model, cache, tmp / "features.parquet")
    assert not np.allclose(expected[2][0], expected[2][0][0])  # trained: progress moves over the episode
    stream = ProgressStream(model, num_envs=3, text_features=cache)

    def frame_of(episode, t):  # one frame of the cache, raw state (the stream normalises it)
        return cache.episode_images(episode)[t], cache.episode_state(episode)[t]

    played = play(stream, QUEUES, STARTS, frame_of, lambda v, s, ids: stream.step_features(v, s, env_ids=ids))
    worst = check(played, expected)
    print(f"max abs diff, stream (step_features) vs compute_progress: {worst:.2e}")


def test_step_on_raw_frames_equals_offline_with_the_same_encoder(trained):
    ds, encoder, _, cache32, model, tmp = trained
    expected = offline(model, cache32, tmp / "raw.parquet")
    stream = ProgressStream(model, encoder, num_envs=3)  # text features from the encoder, as the cache's
    pixels = {e: np.concatenate([im for _, im in ds.decode(CAM, e)]) for e in range(len(LENGTHS))}
    state = {e: ds.state(episodes=[e]) for e in range(len(LENGTHS))}
    played = play(
        stream, QUEUES, STARTS, lambda e, t: (pixels[e][t], state[e][t]),
        lambda frames, s, ids: stream.step(frames, s, env_ids=ids),
    )  # fmt: skip
    worst = check(played, expected)
    print(f"max abs diff, stream (step on raw frames) vs compute_progress (float32 cache): {worst:.2e}")


def test_memory_is_bounded_by_the_window():
    from sarm import SARM, SARMConfig

    model = SARM(SARMConfig(image_dim=8, text_dim=8, hidden_dim=16, num_layers=1, num_heads=2))
    stream = ProgressStream(model, num_envs=2, text_features={"t": np.zeros(8)})
    c = model.config
    assert stream.ring_size == c.n_obs_steps * c.frame_gap + 1  # 241 frames for the paper's 8 x 30
    assert tuple(stream._ring.shape) == (2, stream.ring_size, 1, 8)
