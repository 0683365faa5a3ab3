"""sarm.training.rewind: frame/label alignment of rewind slots, per-sample texts and coins, negatives."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sarm.labels.negatives import NEGATIVE_TEXTS
from sarm.training.rewind import RewindCollate
from sarm.training.windows import WindowDataset

LENGTHS = [400, 100, 250, 37]
TASKS = ["fold the shirt", "stack the cups", "fold the shirt", "pour water"]
N_OBS, GAP, MAX_REWIND = 8, 30, 4
T = 1 + N_OBS + MAX_REWIND


def make_dataset(mode: str = "centered", **kwargs) -> WindowDataset:
    n = sum(LENGTHS)
    f = np.arange(n, dtype=np.float64)
    video = np.broadcast_to((10 * f[:, None, None] + np.arange(2)[None, :, None]), (n, 2, 4))
    args = dict(
        episode_lengths=LENGTHS,
        # every row encodes its own frame: feature 10 f + camera, state -f, targets f / 1000 and f / 500
        targets={"sparse": f / 1000, "dense": f / 500},
        tasks=TASKS,
        state=np.stack([-f, f + 0.5, f * 0], axis=1),
        mode=mode,
        n_obs_steps=N_OBS,
        frame_gap=GAP,
        max_rewind_steps=MAX_REWIND,
    )
    args.update(kwargs)
    return WindowDataset(video.astype(np.float32), **args)


def task_features(names=("fold the shirt", "stack the cups", "pour water"), width: int = 6) -> dict:
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(width, generator=g) for name in names}


def negative_pool(width: int = 6) -> torch.Tensor:
    return torch.randn(len(NEGATIVE_TEXTS), width, generator=torch.Generator().manual_seed(1))


def collate_all(ds: WindowDataset, collate: RewindCollate, batch_size: int = 64) -> dict:
    batches = [
        collate([ds[i] for i in range(lo, min(lo + batch_size, len(ds)))])
        for lo in range(0, len(ds), batch_size)
    ]
    out = {}
    for key in batches[0]:
        if key == "targets":
            out[key] = {h: torch.cat([b[key][h] for b in batches]) for h in batches[0][key]}
        elif key == "tasks":
            out[key] = [t for b in batches for t in b[key]]
        else:
            out[key] = torch.cat([b[key] for b in batches])
    return out


# -- NEGATIVE_TEXTS -------------------------------------------------------------------------------


def test_negative_texts_are_a_fixed_pool_of_unique_instructions():
    assert isinstance(NEGATIVE_TEXTS, tuple) and len(NEGATIVE_TEXTS) == 64
    assert len(set(NEGATIVE_TEXTS)) == 64
    assert all(t == t.strip().lower() and len(t.split()) >= 2 for t in NEGATIVE_TEXTS)
    assert not set(NEGATIVE_TEXTS) & set(TASKS)


# -- rewind: features and labels of the same frames -----------------------------------------------


@pytest.mark.parametrize("mode", ["centered", "past"])
def test_every_valid_slot_shows_and_labels_the_same_frame(mode):
    ds = make_dataset(mode)
    batch = collate_all(
        ds, RewindCollate(task_features(), rewind_probability=1.0, language_negative_probability=0.0, seed=3)
    )
    video, state, lengths = batch["video_features"], batch["state_features"], batch["lengths"]
    assert video.shape == (len(ds), T, 2, 4) and state.shape == (len(ds), T, 3)
    assert batch["targets"]["sparse"].shape == (len(ds), T) and lengths.dtype == torch.int64
    shown = video[:, :, 0, 0] / 10  # frame index each slot shows
    valid = torch.arange(T)[None, :] < lengths[:, None]
    assert torch.equal(shown[valid], torch.round(batch["targets"]["sparse"] * 1000)[valid])
    assert torch.equal(shown[valid], torch.round(batch["targets"]["dense"] * 500)[valid])
    assert torch.equal(shown[valid], -state[:, :, 0][valid])
    assert torch.equal(video[:, :, 1, 0][valid], (10 * shown + 1)[valid])  # second camera, same frame
    for tensor in (video, state, batch["targets"]["sparse"], batch["targets"]["dense"]):
        assert (tensor[~valid] == 0).all()  # slots past `lengths` are exactly zero
    # rewind slots step backwards from the anchor frame t: t - g, t - 2g, ...
    steps = batch["rewind_steps"]
    assert torch.equal(lengths, N_OBS + 1 + steps)
    frame = batch["frame"].to(torch.float32)
    for b in range(len(ds)):
        r = int(steps[b])
        expected = frame[b] - GAP * torch.arange(1, r + 1, dtype=torch.float32)
        assert torch.equal(shown[b, N_OBS + 1 : N_OBS + 1 + r], expected)


def test_rewind_length_is_uniform_over_available_steps():
    ds = make_dataset()
    batch = collate_all(
        ds, RewindCollate(task_features(), rewind_probability=1.0, language_negative_probability=0.0)
    )
    available = torch.tensor([ds[i]["rewind_available"] for i in range(len(ds))])
    steps = batch["rewind_steps"]
    assert torch.equal(steps == 0, available == 0)  # rewound whenever possible, never when impossible
    assert (steps <= available).all()
    full = steps[available == 4]
    counts = torch.bincount(full, minlength=5)[1:].to(torch.float64)
    expected = len(full) / 4
    assert counts.min() > 0 and float(((counts - expected) ** 2 / expected).sum()) < 3 + 5 * 6**0.5


def test_rewind_probability_is_per_sample():
    ds = make_dataset()
    batch = collate_all(
        ds,
        RewindCollate(task_features(), rewind_probability=0.8, language_negative_probability=0.0, seed=11),
        batch_size=32,
    )
    available = torch.tensor([ds[i]["rewind_available"] for i in range(len(ds))])
    rewound = (batch["rewind_steps"] > 0)[available > 0].to(torch.float64)
    p, n = rewound.mean().item(), rewound.numel()
    assert abs(p - 0.8) < 5 * (0.8 * 0.2 / n) ** 0.5, p
    per_batch = rewound[: (n // 32) * 32].view(-1, 32).mean(1)
    assert ((per_batch > 0) & (per_batch < 1)).any()  # not one coin per batch (LeRobot)


def test_eval_collate_shows_the_plain_window_without_negatives_source():
    ds = make_dataset()
    collate = RewindCollate(
        task_features(["fold the shirt", "stack the cups", "pour water"]),
        rewind_probability=0.0,
        language_negative_probability=0.0,
    )
    batch = collate([ds[i] for i in range(200, 240)])
    assert (batch["lengths"] == N_OBS + 1).all() and (batch["rewind_steps"] == 0).all()
    assert not batch["negative"].any()
    assert (batch["video_features"][:, N_OBS + 1 :] == 0).all()
    assert (batch["targets"]["sparse"][:, : N_OBS + 1] > 0).all()
    single = RewindCollate({"fold the shirt": torch.ones(6)}, language_negative_probability=0.0)
    assert single([ds[0]])["tasks"] == ["fold the shirt"]


# -- task text and language negatives ------------------------------------------------------------


def test_each_sample_keeps_its_own_task_text():
    ds = make_dataset()
    feats = task_features()
    collate = RewindCollate(feats, language_negative_probability=0.0)
    items = [ds[0], ds[410], ds[5], ds[760]]  # episodes 0, 1, 0, 3
    batch = collate(items)
    assert batch["tasks"] == ["fold the shirt", "stack the cups", "fold the shirt", "pour water"]
    for b, name in enumerate(batch["tasks"]):
        assert torch.equal(batch["text_features"][b], feats[name])
    assert batch["text_features"].shape == (4, 6) and batch["text_features"].dtype == torch.float32


def test_language_negatives_from_other_tasks_zero_every_target():
    ds = make_dataset()
    feats = task_features()
    batch = collate_all(ds, RewindCollate(feats, rewind_probability=1.0, language_negative_probability=1.0))
    assert batch["negative"].all()
    own = [ds[i]["task"] for i in range(len(ds))]
    assert all(t != o and t in feats for t, o in zip(batch["tasks"], own, strict=True))
    for b, name in enumerate(batch["tasks"]):
        assert torch.equal(batch["text_features"][b], feats[name])
    assert {t for t, o in zip(batch["tasks"], own, strict=True) if o == "fold the shirt"} == {
        "stack the cups",
        "pour water",
    }
    for y in batch["targets"].values():
        assert (y == 0).all()
    assert (batch["rewind_steps"] > 0).any()  # rewind still applies to features and lengths
    assert torch.equal(batch["lengths"], N_OBS + 1 + batch["rewind_steps"])


def test_language_negatives_from_the_pool_for_a_single_task_dataset():
    ds = make_dataset(tasks=["fold"] * 4)
    pool = negative_pool()
    collate = RewindCollate(
        {"fold": torch.zeros(6)},
        negative_text_features=pool,
        negative_texts=NEGATIVE_TEXTS,
        language_negative_probability=0.2,
        seed=5,
    )
    batch = collate_all(ds, collate)
    negative = batch["negative"]
    assert abs(negative.double().mean().item() - 0.2) < 5 * (0.16 / len(ds)) ** 0.5
    for b in torch.nonzero(negative).flatten().tolist():
        j = NEGATIVE_TEXTS.index(batch["tasks"][b])
        assert torch.equal(batch["text_features"][b], pool[j])
        assert (batch["targets"]["sparse"][b] == 0).all() and (batch["targets"]["dense"][b] == 0).all()
    positive = ~negative
    assert all(t == "fold" for t, p in zip(batch["tasks"], positive.tolist(), strict=True) if p)
    assert (batch["text_features"][positive] == 0).all()
    assert (batch["targets"]["sparse"][positive][:, N_OBS] > 0).any()
    unnamed = RewindCollate(
        {"fold": torch.zeros(6)}, negative_text_features=pool, language_negative_probability=1.0
    )
    assert unnamed([ds[3]])["tasks"][0].startswith("<negative ")


def test_language_negatives_choose_between_both_sources():
    ds = make_dataset()
    feats = task_features()
    collate = RewindCollate(
        feats,
        negative_text_features=negative_pool(),
        negative_texts=NEGATIVE_TEXTS,
        language_negative_probability=1.0,
    )
    batch = collate_all(ds, collate)
    from_pool = np.array([t in NEGATIVE_TEXTS for t in batch["tasks"]])
    assert all(t in feats for t, p in zip(batch["tasks"], from_pool, strict=True) if not p)
    assert abs(from_pool.mean() - 0.5) < 5 * (0.25 / len(ds)) ** 0.5


# -- determinism ----------------------------------------------------------------------------------


def _by_key(batches) -> dict[int, tuple]:
    out = {}
    for batch in batches:
        for b, key in enumerate(batch["key"].tolist()):
            out[key] = (
                batch["tasks"][b],
                bool(batch["negative"][b]),
                int(batch["lengths"][b]),
                batch["video_features"][b].clone(),
                batch["state_features"][b].clone(),
                batch["targets"]["sparse"][b].clone(),
                batch["text_features"][b].clone(),
            )
    return out


def _same(a: dict, b: dict) -> bool:
    def equal(x, y) -> bool:
        return torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y

    return a.keys() == b.keys() and all(all(map(equal, a[k], b[k])) for k in a)


def test_outputs_depend_on_seed_epoch_key_only_not_on_workers_or_batches():
    ds = make_dataset(anchor_stride=3)
    collate = RewindCollate(task_features(), negative_text_features=negative_pool(), seed=7)
    collate.set_epoch(2)
    runs = []
    for workers, batch_size, order_seed in [(0, 16, 0), (2, 5, 1), (2, 64, 2)]:
        g = torch.Generator().manual_seed(order_seed)
        loader = DataLoader(
            ds, batch_size=batch_size, shuffle=True, generator=g, num_workers=workers, collate_fn=collate
        )
        runs.append(_by_key(loader))
    assert len(runs[0]) == len(ds)
    assert _same(runs[0], runs[1]) and _same(runs[0], runs[2])
    negatives = sum(v[1] for v in runs[0].values())
    assert 0 < negatives < len(ds)  # the run exercised both branches

    collate.set_epoch(3)
    other_epoch = _by_key(DataLoader(ds, batch_size=16, collate_fn=collate))
    assert not _same(runs[0], other_epoch)
    assert [v[2] for v in other_epoch.values()] != [runs[0][k][2] for k in other_epoch]


def test_global_rngs_are_never_used():
    ds = make_dataset()
    items = [ds[i] for i in range(0, len(ds), 7)]
    collate = RewindCollate(task_features(), negative_text_features=negative_pool(), seed=1)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)  # noqa: NPY002 (the global RNGs under test)
    first = _by_key([collate(items)])
    torch.manual_seed(99), np.random.seed(99), random.seed(99)  # noqa: NPY002
    torch.rand(100), np.random.rand(100), random.random()  # noqa: NPY002
    state = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())  # noqa: NPY002
    assert _same(first, _by_key([collate(items)]))
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002
    assert torch.equal(state[0], torch.get_rng_state())
    assert state[2] == random.getstate()
    assert not _same(
        first,
        _by_key([RewindCollate(task_features(), negative_text_features=negative_pool(), seed=2)(items)]),
    )


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rewind_probability", "language_negative_probability"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_probabilities_outside_unit_interval_raise(name, value):
    with pytest.raises(ValueError, match=f"{name} should be a probability in \\[0, 1\\]"):
        RewindCollate(task_features(), **{name: value})


def test_negatives_without_a_source_raise():
    message = "pass negative_text_features .* or set language_negative_probability=0"
    with pytest.raises(ValueError, match=message):
        RewindCollate({"fold": torch.zeros(6)})


def test_unknown_task_lists_known_tasks():
    ds = make_dataset()
    collate = RewindCollate(task_features(["fold the shirt", "stack the cups"]))
    message = r"'pour water' has no entry.*\['fold the shirt', 'stack the cups'\]"
    with pytest.raises(ValueError, match=message):
        collate([ds[0], ds[760]])


def test_shape_errors():
    with pytest.raises(ValueError, match="one width"):
        RewindCollate({"a": torch.zeros(6), "b": torch.zeros(5)})
    with pytest.raises(ValueError, match=r"\(M, E\) with M >= 1 and E = 6"):
        RewindCollate({"a": torch.zeros(6)}, negative_text_features=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="negative_texts should name each row"):
        RewindCollate({"a": torch.zeros(6)}, negative_text_features=torch.zeros(3, 6), negative_texts=["x"])
    with pytest.raises(ValueError, match="epoch should be a non-negative integer"):
        RewindCollate({"a": torch.zeros(6)}, language_negative_probability=0).set_epoch(-1)
