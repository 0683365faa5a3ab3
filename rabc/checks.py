"""Validation of the RA-BC parameters and arrays that every `RABCWeights` path shares."""

from __future__ import annotations

import numpy as np

__all__ = ["check_arrays", "check_fallback", "check_kappa"]


def check_fallback(fallback_weight) -> None:
    """`fallback_weight` is None (refuse unknown progress) or a finite number in [0, 1]."""
    if fallback_weight is not None and not _number_in(fallback_weight, 0.0, 1.0):
        raise ValueError(
            "fallback_weight should be a number in [0, 1] (RA-BC weights lie in [0, 1]; LeRobot uses 1.0) "
            f"or None to refuse unknown progress, but got fallback_weight={fallback_weight!r}"
        )


def check_kappa(kappa) -> None:
    if not _number_in(kappa, 0.0, np.inf):
        raise ValueError(f'kappa should be a finite float >= 0 or "auto", but got kappa={kappa!r}')


def check_arrays(source, **arrays) -> None:
    """Every array 1-D with as many rows as `index`; `weights` (when given) finite and in [0, 1]."""
    n = len(arrays["index"])
    for name, values in arrays.items():
        if values is not None and np.shape(values) != (n,):
            raise ValueError(f"`{name}` has shape {np.shape(values)} but `index` has {n} rows ({source})")
    weights = arrays.get("weights")
    if weights is not None and n:
        bad = np.flatnonzero(~((weights >= 0) & (weights <= 1)))  # NaN fails both comparisons
        if bad.size:
            raise ValueError(
                f"{bad.size} weight(s) are NaN or outside [0, 1] (first: {weights[bad[0]]} at index "
                f"{arrays['index'][bad[0]]}) in `{source}`; RA-BC weights lie in [0, 1]"
            )


def _number_in(value, low: float, high: float) -> bool:
    """A real, finite scalar (not a bool or a string) in [low, high]."""
    return (
        not isinstance(value, bool | str)
        and np.isscalar(value)
        and np.isreal(value)
        and bool(np.isfinite(value))
        and low <= value <= high
    )
