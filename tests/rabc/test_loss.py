"""Tests for rabc.loss: smoke, exceptions, shapes, gradcheck, module == function, known values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from rabc.loss import RABCLoss, rabc_weighted_loss

MODES = ("batch", "global", "none")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference(losses, weights, normalize="batch", mask=None, eps=1e-6, mean_weight=None) -> float:
    """Straight-from-the-formula reference in float64 Python loops (no code shared with rabc.loss)."""
    losses = losses.detach().double()
    b = losses.shape[0]
    per_sample = []
    for i in range(b):
        li = losses[i].reshape(-1)
        if mask is None:
            per_sample.append(float(li.mean()))
            continue
        mi = mask[i].bool()
        mi = (
            mi.reshape(tuple(mi.shape) + (1,) * (losses[i].dim() - mi.dim())).expand_as(losses[i]).reshape(-1)
        )
        count = int(mi.sum())
        per_sample.append(float(li[mi].sum()) / count if count else 0.0)
    w = [float(x) for x in weights]
    num = sum(wi * li for wi, li in zip(w, per_sample, strict=True))
    if normalize == "batch":
        return num / max(sum(w), eps)
    if normalize == "global":
        return num / (b * mean_weight)
    return num / b


class _Weights:
    """Duck-typed stand-in for rabc.weights.RABCWeights: .weights (N,) and .for_indices(index)."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = np.asarray(weights, dtype=np.float32)
        self.calls = 0

    def for_indices(self, index: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.from_numpy(self.weights[index.cpu().numpy()]).to(index.device)


# --- smoke -------------------------------------------------------------------------------------------


def test_smoke_function_and_module():
    losses = torch.rand(4, 5, 3, generator=_gen())
    out = rabc_weighted_loss(losses, torch.tensor([1.0, 0.5, 0.0, 1.0]))
    assert out.dim() == 0 and torch.isfinite(out)
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=torch.rand(10, generator=_gen(1)))
    pred = torch.randn(4, 5, 3, generator=_gen(2), requires_grad=True)
    out = loss_fn(pred, torch.zeros(4, 5, 3), index=torch.tensor([0, 3, 9, 3]))
    out.backward()
    assert out.dim() == 0 and pred.grad is not None and torch.isfinite(pred.grad).all()


# --- exceptions --------------------------------------------------------------------------------------


def test_scalar_loss_raises():
    with pytest.raises(ValueError, match=r'per-sample.*reduction="none"'):
        rabc_weighted_loss(torch.tensor(1.0), torch.ones(1))
    loss_fn = RABCLoss(nn.MSELoss(), weights=torch.ones(4))  # reduction="mean" by default
    with pytest.raises(ValueError, match=r'MSELoss returned a scalar.*reduction="none"'):
        loss_fn(torch.zeros(2, 3), torch.ones(2, 3), index=torch.tensor([0, 1]))


def test_global_needs_mean_weight():
    losses, w = torch.rand(3), torch.ones(3)
    with pytest.raises(ValueError, match=r'normalize="global" needs the dataset-wide mean weight'):
        rabc_weighted_loss(losses, w, normalize="global")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="mean_weight must be a finite positive number"):
            rabc_weighted_loss(losses, w, normalize="global", mean_weight=bad)
    with pytest.raises(ValueError, match=r'mean_weight is used only by normalize="global"'):
        rabc_weighted_loss(losses, w, normalize="batch", mean_weight=0.5)
    with pytest.raises(ValueError, match=r'normalize="global" needs the dataset mean weight'):
        RABCLoss(nn.MSELoss(reduction="none"), normalize="global")
    with pytest.raises(ValueError, match=r'mean_weight is used only by normalize="global"'):
        RABCLoss(nn.MSELoss(reduction="none"), mean_weight=0.5)


def test_bad_normalize_raises():
    with pytest.raises(ValueError, match=r"normalize must be one of .*got normalize='mean'"):
        rabc_weighted_loss(torch.rand(3), torch.ones(3), normalize="mean")
    with pytest.raises(ValueError, match=r"normalize must be one of .*got normalize='sum'"):
        RABCLoss(nn.MSELoss(reduction="none"), normalize="sum")


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (torch.ones(4), r"weights have shape \(4,\), but losses have batch size 3"),
        (torch.ones(3, 1), r"weights have shape \(3, 1\).*shape \(3,\)"),
        (
            torch.tensor([1.0, float("nan"), 0.5]),
            r"finite and in \[0, 1\], got \[nan\] at batch positions \[1\]",
        ),
        (torch.tensor([1.0, -0.5, 0.5]), r"finite and in \[0, 1\], got \[-0.5\] at batch positions \[1\]"),
        (
            torch.tensor([1.0, 0.5, float("inf")]),
            r"finite and in \[0, 1\], got \[inf\] at batch positions \[2\]",
        ),
    ],
)
def test_bad_weights_raise(weights, match):
    with pytest.raises(ValueError, match=match):
        rabc_weighted_loss(torch.rand(3, 2), weights)


def test_bad_types_and_devices_raise():
    with pytest.raises(TypeError, match=r"weights must be a torch.Tensor.*torch.as_tensor"):
        rabc_weighted_loss(torch.rand(3), [1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="losses must be a floating-point tensor"):
        rabc_weighted_loss(torch.ones(3, dtype=torch.long), torch.ones(3))
    with pytest.raises(ValueError, match=r"weights are on meta but losses are on cpu.*weights.to"):
        rabc_weighted_loss(torch.rand(3), torch.ones(3, device="meta"))
    with pytest.raises(ValueError, match="empty batch"):
        rabc_weighted_loss(torch.rand(0, 4), torch.ones(0))
    with pytest.raises(ValueError, match="eps must be a positive number"):
        rabc_weighted_loss(torch.rand(3), torch.ones(3), eps=0.0)


def test_bad_mask_raises():
    losses, w = torch.rand(3, 4, 2), torch.ones(3)
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2\).*leading dimensions"):
        rabc_weighted_loss(losses, w, mask=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask has shape \(4,\)"):
        rabc_weighted_loss(losses, w, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"bool or integer 0/1.*mask.bool\(\)"):
        rabc_weighted_loss(losses, w, mask=torch.ones(3, 4))


def test_module_lookup_errors():
    base = nn.MSELoss(reduction="none")
    pred, target = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"needs per-sample weights: pass weights="):
        RABCLoss(base, weights=torch.ones(5))(pred, target)
    with pytest.raises(ValueError, match="has no weight source"):
        RABCLoss(base)(pred, target, index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="either weights= or index="):
        RABCLoss(base, weights=torch.ones(5))(pred, target, index=torch.tensor([0, 1]), weights=torch.ones(2))
    with pytest.raises(KeyError, match=r"batch has no key 'index' \(available: \['frame'\]\).*index_key"):
        RABCLoss(base, weights=torch.ones(5))(pred, target, batch={"frame": torch.tensor([0, 1])})
    with pytest.raises(IndexError, match=r"indices must lie in \[0, 5\).*got range \[-1, 1\]"):
        RABCLoss(base, weights=torch.ones(5))(pred, target, index=torch.tensor([-1, 1]))
    with pytest.raises(IndexError, match=r"got range \[0, 5\]"):
        RABCLoss(base, weights=torch.ones(5))(pred, target, index=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="1-D integer tensor"):
        RABCLoss(base, weights=torch.ones(5))(pred, target, index=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"finite and in \[0, 1\].*\[nan\]"):
        RABCLoss(base, weights=np.array([1.0, np.nan, 0.5]))
    with pytest.raises(TypeError, match="1-D tensor/array of per-frame weights"):
        RABCLoss(base, weights=torch.ones(2, 3))
    with pytest.raises(TypeError, match="base_loss must be callable"):
        RABCLoss("mse")
    with pytest.raises(ValueError, match=r"marks padding.*mask_key='~action_is_pad'"):
        RABCLoss(base, mask_key="action_is_pad")
    with pytest.raises(KeyError, match="batch has no mask key 'action_is_pad'"):
        RABCLoss(base, weights=torch.ones(5), mask_key="~action_is_pad")(
            pred, target, batch={"index": torch.tensor([0, 1])}
        )


# --- shapes, masks and known values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "mask_rank"),
    [((6,), None), ((6,), 1), ((6, 5), None), ((6, 5), 1), ((6, 5), 2)]
    + [((6, 5, 3), r) for r in (None, 1, 2, 3)],
)
@pytest.mark.parametrize("normalize", MODES)
def test_shapes_match_reference(shape, mask_rank, normalize):
    losses = torch.rand(shape, generator=_gen(3))
    weights = torch.tensor([1.0, 0.0, 0.25, 1.0, 0.7, 1.0])
    mask = None
    if mask_rank is not None:
        mask = torch.rand(shape[:mask_rank], generator=_gen(4)) > 0.3
        mask[0] = False  # one sample with no valid element
    kw = {"mean_weight": 0.6} if normalize == "global" else {}
    out = rabc_weighted_loss(losses, weights, normalize, mask, **kw)
    assert out.shape == () and out.dtype == losses.dtype
    assert torch.isfinite(out)
    torch.testing.assert_close(
        out.double(), torch.tensor(_reference(losses, weights, normalize, mask, **kw)).double()
    )


def test_known_values_by_hand():
    losses = torch.tensor([[1.0, 3.0], [4.0, 6.0], [10.0, 20.0]])  # per-sample means 2, 5, 15
    weights = torch.tensor([1.0, 0.5, 0.0])
    # batch: (1 * 2 + 0.5 * 5 + 0 * 15) / (1 + 0.5 + 0) = 4.5 / 1.5 = 3
    assert rabc_weighted_loss(losses, weights).item() == 3.0
    # global with mean weight 0.75: 4.5 / (3 * 0.75) = 2
    assert rabc_weighted_loss(losses, weights, "global", mean_weight=0.75).item() == 2.0
    # none: 4.5 / 3 = 1.5
    assert rabc_weighted_loss(losses, weights, "none").item() == 1.5
    # mask: sample 0 keeps only 1 -> l_0 = 1; sample 1 keeps 6 -> l_1 = 6: (1 + 3) / 1.5 = 8 / 3
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    torch.testing.assert_close(rabc_weighted_loss(losses, weights, mask=mask), torch.tensor(8.0 / 3.0))
    # (B, H, D) with a (B, H) mask broadcast over D: sample 0 valid slot h=0 -> mean(1, 2) = 1.5,
    # sample 1 valid slot h=1 -> mean(7, 9) = 8: (1 * 1.5 + 1 * 8) / 2 = 4.75
    losses3 = torch.tensor([[[1.0, 2.0], [100.0, 100.0]], [[100.0, 100.0], [7.0, 9.0]]])
    mask3 = torch.tensor([[1, 0], [0, 1]])  # 0/1 integers work like bools
    assert rabc_weighted_loss(losses3, torch.ones(2), mask=mask3).item() == 4.75


@pytest.mark.parametrize("shape", [(64,), (64, 50), (64, 50, 14), (5, 7, 3)])
@pytest.mark.parametrize("normalize", MODES)
def test_uniform_weights_equal_base_mean_exactly(shape, normalize):
    pred, target = torch.randn(shape, generator=_gen(5)), torch.randn(shape, generator=_gen(6))
    expected = nn.MSELoss(reduction="mean")(pred, target)
    losses = nn.MSELoss(reduction="none")(pred, target)
    kw = {"mean_weight": 1.0} if normalize == "global" else {}
    # Bit-exact: without a mask the weighted sum is one reduction over all elements in the same order as
    # .mean(), the weights are 1 and the denominator B * n is an exact integer in float32.
    assert torch.equal(rabc_weighted_loss(losses, torch.ones(shape[0]), normalize, **kw), expected)
    if normalize == "batch":
        # A power-of-two constant scales every term exactly, so the ratio is still exact.
        assert torch.equal(rabc_weighted_loss(losses, torch.full((shape[0],), 0.5)), expected)
        # 0.3 is not exact in binary: w * l rounds per element, so only equal to a few float32 ulps.
        torch.testing.assert_close(
            rabc_weighted_loss(losses, torch.full((shape[0],), 0.3)), expected, rtol=1e-6, atol=0
        )
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=torch.ones(100), normalize=normalize)
    assert torch.equal(loss_fn(pred, target, index=torch.arange(shape[0])), expected)


def test_clamp_vs_lerobot_plus_eps():
    losses, w = (
        torch.rand(8, dtype=torch.float64, generator=_gen(7)),
        torch.rand(8, dtype=torch.float64, generator=_gen(17)) * 0.9 + 0.1,
    )
    eps = 1e-6
    ours = rabc_weighted_loss(losses, w, eps=eps)
    lerobot = (losses * w).sum() / (w.sum() + eps)
    # exactly eps / sum(w) apart, up to a few float64 roundings of a ~1e-7 difference
    assert abs(ours / lerobot - 1) <= eps / w.sum() * (1 + 1e-6)


def test_all_zero_weights_give_zero_and_zero_grad():
    for normalize in MODES:
        losses = torch.rand(4, 3, generator=_gen(8), requires_grad=True)
        kw = {"mean_weight": 0.5} if normalize == "global" else {}
        out = rabc_weighted_loss(losses, torch.zeros(4), normalize, **kw)
        out.backward()
        assert out.item() == 0.0 and torch.equal(losses.grad, torch.zeros(4, 3))


def test_mask_blocks_nan_and_empty_samples():
    losses = torch.tensor([[1.0, float("nan")], [float("nan"), float("nan")], [2.0, 4.0]], requires_grad=True)
    mask = torch.tensor([[True, False], [False, False], [True, True]])
    out = rabc_weighted_loss(losses, torch.ones(3), mask=mask)  # (1 + 0 + 3) / 3: no NaN leaks in
    out.backward()
    torch.testing.assert_close(out, torch.tensor(4.0 / 3.0))
    assert torch.isfinite(losses.grad).all()
    assert torch.equal(losses.grad[1], torch.zeros(2))  # the all-padded sample gets no gradient
    assert torch.equal(losses.grad[0, 1], torch.tensor(0.0))


# --- gradients ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", MODES)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_float64(normalize, masked):
    losses = torch.rand(4, 3, 2, dtype=torch.float64, generator=_gen(9), requires_grad=True)
    weights = (torch.rand(4, dtype=torch.float64, generator=_gen(10)) * 0.8 + 0.2).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.bool) if masked else None
    kw = {"mean_weight": 0.6} if normalize == "global" else {}
    assert torch.autograd.gradcheck(
        lambda x, w: rabc_weighted_loss(x, w, normalize, mask, **kw), (losses, weights)
    )


# --- the module --------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", MODES)
def test_module_equals_function(normalize):
    table = torch.rand(20, generator=_gen(11))
    pred, target = torch.randn(5, 4, 3, generator=_gen(12)), torch.randn(5, 4, 3, generator=_gen(13))
    index = torch.tensor([3, 0, 19, 7, 3])
    mask = torch.rand(5, 4, generator=_gen(14)) > 0.3
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=table, normalize=normalize)
    expected = rabc_weighted_loss(
        nn.MSELoss(reduction="none")(pred, target),
        table[index],
        normalize,
        mask,
        mean_weight=float(table.double().mean()) if normalize == "global" else None,
    )
    assert torch.equal(loss_fn(pred, target, index=index, mask=mask), expected)
    assert torch.equal(loss_fn(pred, target, weights=table[index], mask=mask), expected)


def test_module_duck_typed_source_and_batch_keys():
    source = _Weights(np.array([1.0, 0.0, 0.5, 1.0, 0.25]))
    loss_fn = RABCLoss(
        nn.L1Loss(reduction="none"), weights=source, index_key="frame_index", mask_key="~action_is_pad"
    )
    pred = torch.zeros(3, 2, 1, requires_grad=True)
    target = torch.tensor([[[1.0], [3.0]], [[2.0], [2.0]], [[5.0], [7.0]]])
    batch = {
        "frame_index": torch.tensor([2, 4, 3]),
        "action_is_pad": torch.tensor([[False, True], [False, False], [False, False]]),
    }
    out = loss_fn(pred, target, batch=batch)
    # l = [1 (padded 3 dropped), 2, 6], w = [0.5, 0.25, 1]: (0.5 + 0.5 + 6) / 1.75 = 4
    torch.testing.assert_close(out, torch.tensor(4.0))
    assert source.calls == 1
    out.backward()
    assert pred.grad[0, 1, 0].item() == 0.0  # padded slot
    # an explicit index= wins over batch[index_key]; the batch still supplies the mask
    torch.testing.assert_close(
        loss_fn(pred, target, index=torch.tensor([0, 0, 0]), batch=batch), torch.tensor(3.0)
    )


def test_module_global_defaults_to_source_mean():
    source = _Weights(np.array([1.0, 0.0, 0.5, 0.5]))  # mean 0.5
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=source, normalize="global")
    assert loss_fn.mean_weight == 0.5
    out = loss_fn(torch.zeros(2), torch.tensor([2.0, 4.0]), index=torch.tensor([0, 2]))
    assert out.item() == (1.0 * 4.0 + 0.5 * 16.0) / (2 * 0.5)
    array_fn = RABCLoss(
        nn.MSELoss(reduction="none"), weights=np.array([1.0, 0.0, 0.5, 0.5]), normalize="global"
    )
    assert array_fn.mean_weight == 0.5
    explicit = RABCLoss(nn.MSELoss(reduction="none"), weights=source, normalize="global", mean_weight=0.25)
    assert explicit.mean_weight == 0.25


def test_module_table_is_buffer_not_state():
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=np.ones(7, dtype=np.float64))
    assert loss_fn._table.dtype == torch.float32 and loss_fn._table.shape == (7,)
    assert "_table" not in loss_fn.state_dict()
    assert loss_fn.to(torch.float64)._table.dtype == torch.float64  # moves with .to() like any buffer


def test_last_stats():
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0]))
    assert loss_fn.last_stats == {}
    loss_fn(torch.zeros(4), torch.ones(4), index=torch.tensor([0, 1, 2, 1]))
    stats = loss_fn.last_stats
    assert stats == {
        "mean_weight": 0.375,
        "zero_weight_fraction": 0.5,
        "full_weight_fraction": 0.25,
        "batch_size": 4.0,
    }
    assert all(type(v) is float for v in stats.values())


# --- statistics of the normalisations ----------------------------------------------------------------


def _dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """RA-BC-like weights (70% 1, 15% 0, 15% uniform) and losses that are higher where the weight is low."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=n, p=[0.7, 0.15, 0.15])
    w = np.where(kind == 0, 1.0, np.where(kind == 1, 0.0, rng.uniform(0, 1, n)))
    return w, (1.0 + 2.0 * (1.0 - w)) * rng.exponential(1.0, n)


def test_global_is_exactly_unbiased_batch_is_not():
    # Every ordered batch of B=2 drawn with replacement from 4 samples, enumerated: the exact expectation.
    w = np.array([1.0, 0.0, 0.2, 1.0])
    loss = np.array([1.0, 5.0, 4.0, 2.0])
    target = (w * loss).sum() / w.sum()  # (1 + 0 + 0.8 + 2) / 2.2
    batches = list(itertools.product(range(4), repeat=2))

    def estimate(normalize, pair):
        idx = list(pair)
        kw = {"mean_weight": w.mean()} if normalize == "global" else {}
        return rabc_weighted_loss(torch.tensor(loss[idx]), torch.tensor(w[idx]), normalize, **kw).item()

    glob = np.mean([estimate("global", p) for p in batches])
    batch = np.mean([estimate("batch", p) for p in batches])
    assert glob == pytest.approx(target, rel=1e-12)
    assert abs(batch - target) > 0.05  # ratio estimator: biased at small B


def test_global_unbiased_over_random_batches():
    w, loss = _dataset(20_000, seed=0)
    target, mean_w, b, k = (w * loss).sum() / w.sum(), w.mean(), 16, 4_000
    idx = torch.randint(0, len(w), (k, b), generator=_gen(15)).numpy()
    est = np.array(
        [
            rabc_weighted_loss(torch.tensor(loss[i]), torch.tensor(w[i]), "global", mean_weight=mean_w).item()
            for i in idx
        ]
    )
    # exact standard error of the mean of k with-replacement batches: sqrt(Var(w l) / (B k)) / mean_w
    se = np.sqrt((w * loss).var() / (b * k)) / mean_w
    assert abs(est.mean() - target) < 4 * se
    assert est.std() == pytest.approx(np.sqrt((w * loss).var() / b) / mean_w, rel=0.05)


def test_variance_comparison_small_batches():
    """The measured trade-off behind docs/benchmarks/loss.md (B = 8, RA-BC-like weights).

    "batch" (a ratio estimator) has about the same spread as "global" here (within 10%) and a small
    bias; "global" has no bias and bounds any sample's effective weight by 1 / (B mean_w), whereas "batch"
    hands one kept sample the whole batch (share 1) when the others have weight 0.
    """
    w, loss = _dataset(50_000, seed=1)
    target, mean_w, b = (w * loss).sum() / w.sum(), w.mean(), 8
    idx = np.random.default_rng(2).integers(0, len(w), size=(20_000, b))
    wb, lb = torch.tensor(w[idx]), torch.tensor(loss[idx])
    batch_est = np.array([rabc_weighted_loss(lb[j], wb[j]).item() for j in range(len(idx))])
    global_est = (wb * lb).sum(1).numpy() / (b * mean_w)  # vectorised "global"; checked against the function:
    assert global_est[0] == pytest.approx(
        rabc_weighted_loss(lb[0], wb[0], "global", mean_weight=mean_w).item()
    )
    rmse_batch = np.sqrt(((batch_est - target) ** 2).mean())
    rmse_global = np.sqrt(((global_est - target) ** 2).mean())
    assert rmse_batch == pytest.approx(rmse_global, rel=0.10)
    share_batch = (wb / wb.sum(1, keepdim=True).clamp_min(1e-6)).amax(1)
    bound = 1 / (b * mean_w)  # ~0.16: the most any sample can weigh under "global"
    assert (wb / (b * mean_w)).max().item() <= bound + 1e-12
    assert share_batch.max().item() > 0.5 > 3 * bound  # under "batch" some sample outweighs the rest


def test_batch_mode_blows_up_a_lone_low_weight_sample():
    # One sample of weight 0.01 among zero-weight ones: "batch" gives it the whole batch, "global" keeps
    # it at 0.01 / (B mean_w) of the batch.
    losses = torch.tensor([8.0, 1.0, 1.0, 1.0])
    weights = torch.tensor([0.01, 0.0, 0.0, 0.0])
    torch.testing.assert_close(rabc_weighted_loss(losses, weights), torch.tensor(8.0))
    torch.testing.assert_close(
        rabc_weighted_loss(losses, weights, "global", mean_weight=0.8), torch.tensor(0.01 * 8.0 / (4 * 0.8))
    )
