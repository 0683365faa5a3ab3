"""Formula 2 of SARM (arXiv 2509.25358): targets y = k + tau <-> normalised progress, given breakpoints.

The breakpoints P = [0, a_1, a_1 + a_2, ..., 1] come from the temporal proportions a_k of the K stages
(`breakpoints`; renormalised as LeRobot does when they do not sum to 1), and

    progress(y) = P[k] + (y - k) * (P[k+1] - P[k]),   k = floor(y);   y < 0 -> 0;   y >= K -> 1.

`sarm.labels.schema.StageSchema.progress` and `.targets_from_progress` call these with its breakpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["breakpoints", "progress", "targets_from_progress"]


def breakpoints(proportions: Sequence[float]) -> np.ndarray:
    """float64 (K+1,) read-only: P = [0, cumulative proportions], renormalised, <= 1, P[-1] == 1.0 exactly.

    `proportions` must be finite, >= 0 and have a positive sum (`StageSchema` checks them)."""
    props = list(proportions)
    total = sum(props)
    if abs(total - 1.0) > 1e-6:  # LeRobot: renormalise, sequential Python sum
        props_n = [p / total for p in props]
    else:
        props_n = list(props)
    bp = np.concatenate([[0.0], np.cumsum(props_n, dtype=np.float64)])
    np.minimum(bp, 1.0, out=bp)  # a rounded sum can pass 1 before trailing zero proportions
    bp[-1] = 1.0
    bp.flags.writeable = False
    return bp


def progress(bp: np.ndarray, y):
    """Formula-2 progress in [0, 1] of targets y under breakpoints `bp`; returns the input's type (array,
    float, tensor).

    Mirrors LeRobot's `normalize_stage_tau` operation by operation, so float64 input reproduces
    its values bit for bit (a float32 tensor computes in float32, as LeRobot's tensor path does).
    NaN stays NaN. Tensors keep their device and gradient with respect to y.
    """
    k_all = len(bp) - 1
    if isinstance(y, torch.Tensor):
        x = y if y.is_floating_point() else y.to(torch.get_default_dtype())
        p_t = torch.tensor(bp[:-1].tolist(), dtype=x.dtype, device=x.device)
        width = torch.tensor(np.diff(bp).tolist(), dtype=x.dtype, device=x.device)
        inside = (x >= 0) & (x < k_all)
        k = torch.where(inside, x, torch.zeros_like(x)).detach().floor().long()
        out = p_t[k] + (x - k) * width[k]
        out = torch.where(x >= k_all, torch.ones_like(out), out)
        out = torch.where(x < 0, torch.zeros_like(out), out)
        return out.clamp(0.0, 1.0)
    x = np.asarray(y, dtype=np.float64)
    inside = (x >= 0) & (x < k_all)
    k = np.zeros(x.shape, np.int64)
    k[inside] = x[inside]  # truncation == floor for x >= 0
    out = bp[k] + (x - k) * (bp[k + 1] - bp[k])
    out = np.where(x >= k_all, 1.0, np.where(x < 0, 0.0, out))
    out = np.clip(out, 0.0, 1.0)
    return float(out) if np.ndim(y) == 0 and not isinstance(y, np.ndarray) else out


def targets_from_progress(bp: np.ndarray, p):
    """The inverse of `progress` under breakpoints `bp`: y with `progress(bp, y) == p` (to ~1e-15), same
    type as p.

    Finds k with P[k] <= p < P[k+1] (zero-width stages are skipped) and returns
    y = k + (p - P[k]) / (P[k+1] - P[k]). p == 1 maps to y = K, the end of the last stage, which
    `StageSchema.targets` never produces (it caps at K - 1 + 0.999) but which `progress` maps back to
    exactly 1. NaN stays NaN; p outside [0, 1] is an error.
    """
    if isinstance(p, torch.Tensor):
        y = targets_from_progress(bp, p.detach().cpu().double().numpy())
        return torch.as_tensor(y, device=p.device).to(p.dtype if p.is_floating_point() else torch.float64)
    k_all = len(bp) - 1
    x = np.asarray(p, dtype=np.float64)
    if np.any((x < 0) | (x > 1)):
        bad = x[(x < 0) | (x > 1)].reshape(-1)[0]
        raise ValueError(f"progress must lie in [0, 1], but got {bad}; clip it first")
    k = np.minimum(np.searchsorted(bp, np.nan_to_num(x), side="right") - 1, k_all - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = k + (x - bp[k]) / (bp[k + 1] - bp[k])
    y = np.where(x >= 1.0, float(k_all), y)
    return float(y) if np.ndim(p) == 0 and not isinstance(p, np.ndarray) else y
