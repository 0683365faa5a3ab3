"""The SARM module: shapes, masks (padding, causal, LeRobot's layout), soft stage, multi-task, sizes."""

from __future__ import annotations

import pytest
import torch

from sarm import SARM, SARMConfig

SMALL = dict(
    hidden_dim=32,
    num_layers=2,
    num_heads=4,
    image_dim=16,
    text_dim=8,
    max_state_dim=6,
    n_obs_steps=4,
    max_rewind_steps=2,
    dropout=0.0,
)
TWO_HEADS = {
    "sparse": {"*": {"names": ["a", "b"], "proportions": [0.4, 0.6]}},
    "dense": {"*": {"names": ["x", "y", "z"], "proportions": [0.2, 0.3, 0.5]}},
}


def _model(**overrides) -> SARM:
    torch.manual_seed(0)
    model = SARM(SARMConfig(**{**SMALL, "schemas": TWO_HEADS, **overrides}))
    with torch.no_grad():  # sharpen the random stage logits so argmax and soft readouts differ clearly
        for head in model.stage_model.heads.values():
            head.weight.mul_(20)
    return model


def _inputs(b=4, t=7, cameras=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    video = (
        torch.randn(b, t, 16, generator=g) if cameras is None else torch.randn(b, t, cameras, 16, generator=g)
    )
    return (
        torch.randn(b, 8, generator=g),
        video,
        torch.randn(b, t, 3, generator=g),
        torch.tensor([7, 5, 1, 6][:b]),
    )


def test_shapes_of_forward_and_predict():
    model = _model()
    text, video, state, lengths = _inputs()
    out = model(text, video, state, lengths)
    assert set(out) == {"sparse", "dense"}
    assert out["sparse"].stage_logits.shape == (4, 7, 2) and out["dense"].stage_logits.shape == (4, 7, 3)
    assert out["dense"].tau.shape == (4, 7) and bool(((out["dense"].tau > 0) & (out["dense"].tau < 1)).all())
    pred = model.predict(text, video, state, lengths, head="dense")
    assert (
        pred.progress.shape == (4, 7) and pred.stage_probs.shape == (4, 7, 3) and pred.stage.shape == (4, 7)
    )
    torch.testing.assert_close(pred.stage_probs.sum(-1), torch.ones(4, 7))
    assert bool(((pred.progress >= 0) & (pred.progress <= 1)).all())


def test_progress_is_formula_2_of_argmax_stage_and_tau():
    model = _model()
    pred = model.predict(*_inputs(), head="dense")
    points = torch.tensor([0.0, 0.2, 0.5, 1.0])
    expected = points[pred.stage] + pred.tau * (points[pred.stage + 1] - points[pred.stage])
    torch.testing.assert_close(pred.progress, expected)


def test_soft_progress_is_the_expectation_over_stages():
    model = _model().eval()
    text, video, state, lengths = _inputs()
    pred = model.predict(text, video, state, lengths, head="dense", soft=True)
    points = torch.tensor([0.0, 0.2, 0.5, 1.0])
    expected = torch.zeros(4, 7)
    for k in range(3):  # tau conditioned on each stage in turn, through the training forward
        prior = {"dense": torch.full((4, 7), k)}
        tau = model(text, video, state, lengths, heads=["dense"], stage_prior=prior)["dense"].tau
        expected += pred.stage_probs[..., k] * (points[k] + tau * (points[k + 1] - points[k]))
    torch.testing.assert_close(pred.progress, expected)
    hard = model.predict(text, video, state, lengths, head="dense")
    assert not torch.allclose(pred.progress, hard.progress)  # the two readouts differ on uncertain slots


@pytest.mark.parametrize("attention", ["lerobot", "causal"])
def test_padded_slots_have_no_influence(attention):
    model = _model(attention=attention)
    text, video, state, lengths = _inputs()
    base = model.predict(text, video, state, lengths)
    video2, state2 = video.clone(), state.clone()
    for i, n in enumerate(lengths.tolist()):
        video2[i, n:] += 100.0
        state2[i, n:] -= 50.0
    other = model.predict(text, video2, state2, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(base.progress[i, :n], other.progress[i, :n], atol=1e-6, rtol=0)


def test_causal_attention_never_looks_ahead():
    model = _model(attention="causal")
    text, video, state, _ = _inputs()
    base = model.predict(text, video, state)
    for j in range(1, 7):
        video2, state2 = video.clone(), state.clone()
        video2[:, j] += 3.0
        state2[:, j] += 3.0
        other = model.predict(text, video2, state2)
        torch.testing.assert_close(base.progress[:, :j], other.progress[:, :j], atol=1e-6, rtol=0)
        assert not torch.allclose(base.progress[:, j:], other.progress[:, j:])


def test_lerobot_attention_lets_early_slots_see_later_frames():
    """LeRobot's stream-major triangular mask: language and state tokens at slot 0 see every camera token."""
    model = _model(attention="lerobot")
    text, video, state, _ = _inputs()
    base = model.predict(text, video, state)
    video2 = video.clone()
    video2[:, 6] += 3.0
    other = model.predict(text, video2, state)
    assert (base.progress[:, 0] - other.progress[:, 0]).abs().max() > 1e-4


def test_several_cameras_and_per_slot_text():
    model = _model(num_cameras=2)
    text, video, state, lengths = _inputs(cameras=2)
    assert model.predict(text, video, state, lengths).progress.shape == (4, 7)
    per_slot = text[:, None].expand(4, 7, 8)
    torch.testing.assert_close(
        model.predict(per_slot, video, state, lengths).progress,
        model.predict(text, video, state, lengths).progress,
    )


def test_multi_task_schemas_select_stages_and_proportions():
    schemas = {
        "sparse": {
            "fold": {"names": ["grab", "flatten", "fold"], "proportions": [0.1, 0.3, 0.6]},
            "pick": {"names": ["reach", "lift"], "proportions": [0.5, 0.5]},
        }
    }
    model = _model(schemas=schemas)
    args = _inputs()
    with pytest.raises(ValueError, match="pass tasks="):
        model.predict(*args)
    with pytest.raises(ValueError, match="pick"):  # unknown task: the known ones are listed
        model.predict(*args, tasks="juggle")
    pred = model.predict(*args, tasks=["fold", "pick", "pick", "fold"])
    assert bool((pred.stage_probs[1:3, :, 2] == 0).all()) and bool((pred.stage[1:3] < 2).all())
    for i, points in [(0, [0.0, 0.1, 0.4, 1.0]), (1, [0.0, 0.5, 1.0])]:
        p = torch.tensor(points)
        k = pred.stage[i]
        torch.testing.assert_close(pred.progress[i], p[k] + pred.tau[i] * (p[k + 1] - p[k]))


def test_teacher_forcing_prior_changes_only_tau():
    model = _model()
    text, video, state, lengths = _inputs()
    free = model(text, video, state, lengths)
    prior = {"sparse": torch.full((4, 7), -1)}
    same = model(text, video, state, lengths, stage_prior=prior)
    torch.testing.assert_close(free["sparse"].tau, same["sparse"].tau)
    flipped = 1 - free["sparse"].stage_logits.argmax(-1)
    forced = model(text, video, state, lengths, stage_prior={"sparse": flipped})
    torch.testing.assert_close(forced["sparse"].stage_logits, free["sparse"].stage_logits)
    assert not torch.allclose(forced["sparse"].tau, free["sparse"].tau)


def test_one_forward_gives_every_parameter_a_gradient():
    """DDP needs one call that uses every parameter: both heads, both trunks."""
    model = _model(dropout=0.1).train()
    out = model(*_inputs())
    loss = sum(o.stage_logits.sum() + o.tau.sum() for o in out.values())
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_predict_runs_in_eval_mode_and_restores_training():
    model = _model(dropout=0.5).train()
    args = _inputs()
    first, second = model.predict(*args), model.predict(*args)
    assert torch.equal(first.progress, second.progress) and model.training


def test_input_errors_name_the_problem():
    model = _model()
    text, video, state, _lengths = _inputs()
    with pytest.raises(ValueError, match=r"video_features should be \(b, t, 16\)"):
        model.predict(text, video[..., :5])
    with pytest.raises(ValueError, match=r"max_state_dim=6"):
        model.predict(text, video, torch.zeros(4, 7, 9))
    with pytest.raises(ValueError, match=r"lengths should be \(4,\) with values in \[1, 7\]"):
        model.predict(text, video, state, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"text_features should be \(4, 8\)"):
        model.predict(text[:2], video)
    with pytest.raises(ValueError, match="heads are"):
        SARM(SARMConfig(**SMALL)).predict(text, video, head="dense")


def test_config_rejects_contradictions():
    with pytest.raises(ValueError, match="not divisible"):
        SARMConfig(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="even n_obs_steps"):
        SARMConfig(window="centered", n_obs_steps=7)
    with pytest.raises(ValueError, match="attention should be one of"):
        SARMConfig(attention="bidirectional")
    with pytest.raises(ValueError, match="unknown SARMConfig fields"):
        SARMConfig.from_dict({"hidden_size": 3})


def test_paper_sized_parameter_count_matches_lerobot():
    """LeRobot 0.6.1 (measured): 119,178,244 single-stage, 119,182,858 dual with 3 sparse / 5 dense stages.

    LeRobot always builds a dense head too (K = 1 in single-stage mode: 2 x (768 + 1) parameters);
    ours builds only the heads in use.
    """
    single = SARM(SARMConfig(attention="lerobot", window="centered")).num_parameters()
    assert single + 2 * (768 + 1) == 119_178_244
    dual = {
        "sparse": {"*": {"names": list("abc"), "proportions": [1, 1, 1]}},
        "dense": {"*": {"names": list("vwxyz"), "proportions": [1] * 5}},
    }
    assert SARM(SARMConfig(schemas=dual)).num_parameters() == 119_182_858


def test_past_window_needs_an_observation_slot():
    with pytest.raises(ValueError, match="window='past' needs n_obs_steps >= 1"):
        SARMConfig(window="past", n_obs_steps=0)
