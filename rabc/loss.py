"""RA-BC weighted behaviour-cloning loss: a function that carries the logic and a thin module.

Reference: SARM, arXiv 2509.25358. Every training sample i gets a weight w_i in [0, 1] from the
progress its action chunk makes (Eq. 8-9, computed by :class:`rabc.weights.RABCWeights`), and the
policy minimises the weighted behaviour-cloning loss L = Σ w_i l_i / (Σ w_i + ε).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["RABCLoss", "rabc_weighted_loss"]

_NORMALIZE = ("batch", "global", "none")


def _masked_per_sample(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average every non-batch dimension of ``losses`` over its valid elements: one l_i per sample, (B,)."""
    if mask.dim() == 0 or tuple(mask.shape) != tuple(losses.shape[: mask.dim()]):
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, but losses have shape {tuple(losses.shape)}; the mask must "
            f"match the leading dimensions of the losses: (B,), (B, H) or the full shape."
        )
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.is_complex():
            raise TypeError(
                f"mask must be a bool or integer 0/1 tensor (True = valid element), got dtype {mask.dtype}; "
                f"convert it with `mask.bool()`."
            )
        mask = mask != 0
    if mask.device != losses.device:
        raise ValueError(f"mask is on {mask.device} but losses are on {losses.device}; move it with .to().")
    b = losses.shape[0]
    per_slot = losses[0].numel() // max(mask[0].numel(), 1)  # trailing elements each mask entry covers
    # torch.where, not losses * mask: a NaN in a padded slot must not leak into the sum.
    valid = mask.reshape(*mask.shape, *([1] * (losses.dim() - mask.dim())))  # broadcasts, no copy
    total = torch.where(valid, losses, 0.0).reshape(b, -1).sum(dim=1)
    count = mask.reshape(b, -1).sum(dim=1).to(losses.dtype) * per_slot
    return total / count.clamp_min(1.0)  # a sample with no valid element gives 0 / 1 = 0


def _check_weights(weights: torch.Tensor, batch_size: int, losses: torch.Tensor) -> None:
    if not isinstance(weights, torch.Tensor):
        raise TypeError(
            f"weights must be a torch.Tensor of shape ({batch_size},), got {type(weights).__name__}; "
            f"wrap it with torch.as_tensor(weights, device=losses.device)."
        )
    if tuple(weights.shape) != (batch_size,):
        raise ValueError(
            f"weights have shape {tuple(weights.shape)}, but losses have batch size {batch_size}; pass one "
            f"weight per sample, shape ({batch_size},)."
        )
    if weights.device != losses.device:
        raise ValueError(
            f"weights are on {weights.device} but losses are on {losses.device}; "
            f"move them with weights.to(losses.device)."
        )
    with torch.no_grad():
        lo, hi = torch.stack(torch.aminmax(weights.detach())).tolist()  # one device sync; NaN propagates
        if not (lo >= 0 and hi <= 1):  # the diagnosis below runs only on failure; NaN fails both
            bad = (~((weights >= 0) & (weights <= 1))).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"weights must be finite and in [0, 1], got {weights[bad].tolist()} at batch positions "
                f"{bad}; RA-BC weights lie in [0, 1] (check the weights file or map NaN to a fallback)."
            )


def rabc_weighted_loss(
    losses: torch.Tensor,
    weights: torch.Tensor,
    normalize: str = "batch",
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
    mean_weight: float | None = None,
) -> torch.Tensor:
    r"""Reward-aligned behaviour-cloning loss: the RA-BC weighted mean of per-sample losses.

    Each sample's loss is first averaged over its non-batch dimensions (over the valid elements when a
    ``mask`` is given) to :math:`l_i`; then, with RA-BC weights :math:`w_i` (SARM Eq. 8-9):

    .. math::

        \text{batch:}\;  L = \frac{\sum_i w_i l_i}{\max(\sum_i w_i, \varepsilon)} \qquad
        \text{global:}\; L = \frac{\sum_i w_i l_i}{B\,\bar w} \qquad
        \text{none:}\;   L = \frac{\sum_i w_i l_i}{B}

    ``"batch"`` is the paper's and LeRobot's rule, :math:`\sum w_i l_i / (\sum w_i + \varepsilon)`, in the
    clamp form so that uniform weights give exactly the base loss's mean (bit for bit when no mask is given:
    the weighted sum is one reduction over all elements, like ``.mean()``); the two differ by at most
    :math:`\varepsilon / \sum w_i` relative. An all-zero-weight batch gives 0 with zero gradient.

    ``"global"`` divides by the batch size times :math:`\bar w`, the mean weight over the whole dataset.
    Under uniform sampling it is an unbiased estimate of the dataset's weighted mean loss
    :math:`E[w l] / E[w]`, and a sample's effective share :math:`w_i / (B \bar w)` never exceeds
    :math:`1 / (B \bar w)`, whereas ``"batch"`` gives a low-weight sample full weight when it is the only
    one kept in its batch. ``"none"`` is the plain weighted mean over the batch.

    Args:
        losses: unreduced losses of shape :math:`(B,)`, :math:`(B, H)` or :math:`(B, H, D)` (any trailing
            dimensions), e.g. from ``torch.nn.MSELoss(reduction="none")``.
        weights: per-sample weights in [0, 1] (RA-BC, Eq. 8-9) of shape :math:`(B,)`, on the device of
            ``losses``.
        normalize: ``"batch"``, ``"global"`` or ``"none"``.
        mask: optional validity mask, bool or 0/1, True = valid element, of shape :math:`(B,)`,
            :math:`(B, H)` or the shape of ``losses``; broadcast over the trailing dimensions. LeRobot's
            ``action_is_pad`` is True on *padding*, so invert it: ``mask=~batch["action_is_pad"]``.
            A sample with no valid element contributes :math:`l_i = 0`.
        eps: lower bound of the denominator for ``normalize="batch"``.
        mean_weight: dataset-wide mean weight :math:`\bar w > 0`, required by ``normalize="global"``
            (``RABCWeights.weights.mean()``).

    Returns:
        A scalar tensor; gradients flow to ``losses`` and to ``weights`` if they require grad.

    Example:
        >>> losses = torch.tensor([[1.0, 3.0], [4.0, 6.0], [10.0, 10.0]])  # (B=3, H=2)
        >>> weights = torch.tensor([1.0, 0.5, 0.0])
        >>> rabc_weighted_loss(losses, weights)  # (1 * 2 + 0.5 * 5) / 1.5
        tensor(3.)
        >>> rabc_weighted_loss(losses, weights, normalize="global", mean_weight=0.75)  # 4.5 / (3 * 0.75)
        tensor(2.)
        >>> mask = torch.tensor([[True, False], [True, True], [False, False]])
        >>> rabc_weighted_loss(losses, weights, mask=mask)  # (1 * 1 + 0.5 * 5) / 1.5
        tensor(2.3333)
    """
    if not isinstance(losses, torch.Tensor):
        raise TypeError(f"losses must be a torch.Tensor of per-sample losses, got {type(losses).__name__}.")
    if losses.dim() == 0:
        raise ValueError(
            "losses is a scalar, but RA-BC weighting needs per-sample losses of shape (B, ...); "
            'build the base loss with reduction="none", e.g. torch.nn.MSELoss(reduction="none").'
        )
    if not losses.is_floating_point():
        raise TypeError(f"losses must be a floating-point tensor, got dtype {losses.dtype}.")
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got normalize={normalize!r}.")
    if not eps > 0:
        raise ValueError(f"eps must be a positive number, got eps={eps}.")
    if normalize == "global":
        if mean_weight is None:
            raise ValueError(
                'normalize="global" needs the dataset-wide mean weight; pass '
                "mean_weight=float(rabc_weights.weights.mean())."
            )
        if not (np.isfinite(mean_weight) and mean_weight > 0):
            raise ValueError(
                f"mean_weight must be a finite positive number, got mean_weight={mean_weight}; a dataset "
                f"whose weights are all zero has nothing to learn from."
            )
    elif mean_weight is not None:
        raise ValueError(
            f'mean_weight is used only by normalize="global", but normalize={normalize!r}; drop mean_weight '
            f'or set normalize="global".'
        )
    batch_size = losses.shape[0]
    if batch_size == 0:
        raise ValueError(f"losses have an empty batch, shape {tuple(losses.shape)}; skip empty batches.")
    _check_weights(weights, batch_size, losses)

    weights = weights.to(losses.dtype)
    if mask is None:
        # Σ_i w_i l_i with l_i = mean_j l_ij as one reduction over all elements divided by n once, so that
        # uniform weights reproduce losses.mean() bit for bit (a mean of per-sample means would not).
        n = losses[0].numel()
        weighted_sum = (losses * weights.reshape(-1, *([1] * (losses.dim() - 1)))).sum()
    else:
        n = 1
        weighted_sum = (_masked_per_sample(losses, mask) * weights).sum()
    if normalize == "batch":
        return weighted_sum / (weights.sum().clamp_min(eps) * n)
    if normalize == "global":
        return weighted_sum / (batch_size * n * float(mean_weight))
    return weighted_sum / (batch_size * n)


class RABCLoss(nn.Module):
    r"""Wrap any unreduced base loss into the RA-BC weighted loss; see :func:`rabc_weighted_loss`.

    The module calls ``base_loss(*args, **kwargs)`` for per-element losses, finds each sample's weight
    and returns :func:`rabc_weighted_loss`. Weights come either directly (``weights=``) or from the source
    given at construction, looked up by global frame index (``index=`` or ``batch[index_key]``). The
    source is a :class:`rabc.weights.RABCWeights` (anything with ``.for_indices(index)`` and
    ``.weights``) or a 1-D tensor / array indexed by position.

    Args:
        base_loss: callable returning unreduced losses of shape (B, ...), e.g.
            ``torch.nn.MSELoss(reduction="none")``.
        weights: optional weight source (see above).
        index_key: key of the global frame index in ``batch`` (LeRobot: ``"index"``).
        normalize: ``"batch"`` (LeRobot's rule), ``"global"`` or ``"none"``.
        mask_key: optional key of a validity mask in ``batch`` (True = valid); a leading ``"~"`` inverts
            it, so LeRobot batches use ``mask_key="~action_is_pad"``.
        eps: denominator floor for ``normalize="batch"``.
        mean_weight: dataset mean weight for ``normalize="global"``; defaults to the source's mean.

    After each call, ``last_stats`` holds ``mean_weight``, ``zero_weight_fraction``,
    ``full_weight_fraction`` and ``batch_size`` of that batch's raw weights as plain floats, for any
    logger (computed when read, so an unlogged step pays no device sync for it).

    Example:
        >>> loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=torch.tensor([1.0, 0.0, 0.5, 1.0]))
        >>> pred, target = torch.zeros(2, 3), torch.ones(2, 3)
        >>> loss_fn(pred, target, index=torch.tensor([0, 2]))  # (1 * 1 + 0.5 * 1) / 1.5
        tensor(1.)
        >>> loss_fn.last_stats
        {'mean_weight': 0.75, 'zero_weight_fraction': 0.0, 'full_weight_fraction': 0.5, 'batch_size': 2.0}
    """

    def __init__(
        self,
        base_loss: Any,
        weights: Any = None,
        index_key: str = "index",
        normalize: str = "batch",
        mask_key: str | None = None,
        eps: float = 1e-6,
        mean_weight: float | None = None,
    ) -> None:
        super().__init__()
        if not callable(base_loss):
            raise TypeError(f"base_loss must be callable, got {type(base_loss).__name__}.")
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got normalize={normalize!r}.")
        if mask_key is not None and not mask_key.startswith("~") and mask_key.endswith("is_pad"):
            raise ValueError(
                f"mask_key={mask_key!r} marks padding, but the mask must be True on valid elements; "
                f"invert it with mask_key={'~' + mask_key!r}."
            )
        self.base_loss = base_loss
        self.index_key, self.mask_key, self.normalize, self.eps = index_key, mask_key, normalize, eps
        if mean_weight is not None and normalize != "global":
            raise ValueError(f'mean_weight is used only by normalize="global", got normalize={normalize!r}.')
        self.source: Any = None
        table: torch.Tensor | None = None
        if weights is not None and hasattr(weights, "for_indices"):
            self.source = weights  # RABCWeights (duck-typed): .for_indices(index) and .weights
            if normalize == "global" and mean_weight is None:
                mean_weight = float(np.mean(np.asarray(weights.weights), dtype=np.float64))
        elif weights is not None:
            if not isinstance(weights, (torch.Tensor, np.ndarray)) or weights.ndim != 1:
                raise TypeError(
                    "weights must be a RABCWeights (anything with .for_indices) or a 1-D tensor/array of "
                    f"per-frame weights, got {type(weights).__name__} {getattr(weights, 'shape', '')}."
                )
            table = torch.as_tensor(weights).detach().float()
            if table.numel() == 0:
                raise ValueError("weights has no frames; build it from a non-empty progress file.")
            _check_weights(table, table.shape[0], table)
            if normalize == "global" and mean_weight is None:
                mean_weight = float(table.double().mean())
        if normalize == "global" and mean_weight is None:
            raise ValueError(
                'normalize="global" needs the dataset mean weight: pass mean_weight=..., or a weight source '
                "(RABCWeights or a per-frame array) whose mean is used."
            )
        self.mean_weight = mean_weight
        # Non-persistent: the table moves with .to(device) but stays out of the policy's state_dict.
        self.register_buffer("_table", table, persistent=False)
        self._last_weights: torch.Tensor | None = None

    def _lookup(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.source is not None:
            return torch.as_tensor(self.source.for_indices(index)).to(device)
        if self._table is None:
            raise ValueError(
                "RABCLoss got index= but has no weight source; build it with RABCLoss(base_loss, weights=w) "
                "or pass weights= directly."
            )
        index = torch.as_tensor(index)
        if index.dtype == torch.bool or index.is_floating_point() or index.dim() != 1:
            raise ValueError(
                f"index must be a 1-D integer tensor of global frame indices, got dtype {index.dtype}, "
                f"shape {tuple(index.shape)}."
            )
        index = index.to(self._table.device)
        n = self._table.shape[0]
        lo, hi = torch.stack(torch.aminmax(index)).tolist() if index.numel() else (0, 0)
        if lo < 0 or hi >= n:
            raise IndexError(
                f"frame indices must lie in [0, {n}) for a weight table of {n} frames, got range "
                f"[{lo}, {hi}]; were the weights built for another dataset?"
            )
        return self._table[index].to(device)

    def forward(
        self,
        *args: Any,
        index: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        batch: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        losses = self.base_loss(*args, **kwargs)
        if isinstance(losses, torch.Tensor) and losses.dim() == 0:
            raise ValueError(
                f"base_loss {type(self.base_loss).__name__} returned a scalar, but RA-BC needs per-sample "
                f'losses; build it with reduction="none", e.g. torch.nn.MSELoss(reduction="none").'
            )
        if weights is not None and index is not None:
            raise ValueError("pass either weights= or index=, not both.")
        if weights is None:
            if index is None and batch is not None:
                if self.index_key not in batch:
                    raise KeyError(
                        f"batch has no key {self.index_key!r} (available: {sorted(batch)}); set "
                        f"RABCLoss(index_key=...) to the key of the global frame index."
                    )
                index = batch[self.index_key]
            if index is None:
                raise ValueError(
                    "RABCLoss needs per-sample weights: pass weights=..., index=batch['index'] or batch=..."
                )
            weights = self._lookup(index, losses.device)
        if mask is None and self.mask_key is not None and batch is not None:
            key = self.mask_key.lstrip("~")
            if key not in batch:
                raise KeyError(f"batch has no mask key {key!r} (available: {sorted(batch)}); check mask_key.")
            mask = ~batch[key].bool() if self.mask_key.startswith("~") else batch[key]
        loss = rabc_weighted_loss(losses, weights, self.normalize, mask, self.eps, self.mean_weight)
        self._last_weights = weights.detach()
        return loss

    @property
    def last_stats(self) -> dict[str, float]:
        """Raw (pre-normalisation) weight statistics of the last batch, computed when read; {} before any."""
        if self._last_weights is None:
            return {}
        w = self._last_weights.float()
        stats = torch.stack([w.mean(), (w == 0).float().mean(), (w == 1).float().mean()]).tolist()
        return {
            "mean_weight": stats[0],
            "zero_weight_fraction": stats[1],
            "full_weight_fraction": stats[2],
            "batch_size": float(w.shape[0]),
        }
