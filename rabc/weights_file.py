"""The weights parquet that `RABCWeights.save` writes and `RABCWeights.load` reads (`rabc weights -o`).

    index  int64   episode_index  int64   delta  float64   weight  float32   [group  int codes]

Its `rabc` schema metadata holds the JSON parameters (`format: rabc-weights/1`, chunk_size, kappa,
head, epsilon, fallback_weight, stats, delta statistics, group statistics, source, drop list), so a
loaded file is the same object as the one saved. Reading validates everything and names the fix.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rabc.checks import check_kappa
from rabc.progress_columns import unreadable_parquet
from rabc.progress_io import atomic_write_parquet

__all__ = ["FORMAT", "load_weights", "save_weights"]

FORMAT = "rabc-weights/1"
_ARRAYS = ("index", "episode_index", "deltas", "weights", "group_of_row", "group_stats")


def _parameters(cls) -> tuple[str, ...]:
    """The scalar parameters `save` writes to the metadata: every constructor argument but the arrays."""
    return tuple(p for p in inspect.signature(cls).parameters if p not in _ARRAYS)


def save_weights(w, path) -> Path:
    """Write `w` (RABCWeights) as a weights parquet, its parameters in the metadata; returns the path."""
    meta = {"format": FORMAT, **{k: v for k, v in w._init_args().items() if k not in _ARRAYS}}
    meta["group_stats"] = [[label, m, s] for label, (m, s) in w.group_stats.items()]
    columns = {
        "index": w.index,
        "episode_index": w.episode_index,
        "delta": w.deltas,
        "weight": w.weights,
    }
    if w.group_of_row is not None:
        columns["group"] = w.group_of_row
    table = pa.table(columns).replace_schema_metadata({b"rabc": json.dumps(meta, default=str).encode()})
    return atomic_write_parquet(table, path)


def load_weights(cls, path):
    """A `cls` (RABCWeights) from a file of `save_weights`, validated (columns, weights, parameters)."""
    path, parameters = Path(path), _parameters(cls)
    if not path.is_file():
        raise FileNotFoundError(f"weights file `{path}` does not exist; write one with `rabc weights`")
    try:
        raw = (pq.read_schema(path).metadata or {}).get(b"rabc")
    except (pa.ArrowInvalid, OSError) as err:
        raise unreadable_parquet(str(path), err, "weights") from err
    if raw is None:
        raise ValueError(
            f"`{path}` has no `rabc` metadata: it is not a weights file written by `rabc weights`"
            " (a progress file? build weights with RABCWeights.from_progress)"
        )
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.pop("format", None) != FORMAT:
        raise ValueError(f"`{path}` was written in an unknown weights format; rewrite it with `rabc weights`")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise unreadable_parquet(str(path), err, "weights") from err
    missing = [c for c in ("index", "episode_index", "delta", "weight") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"weights file `{path}` lacks column(s) {missing} (it has {table.column_names}); "
            "rewrite it with `rabc weights`"
        )
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    group_stats = {label: (m, s) for label, m, s in meta.pop("group_stats", [])}
    meta.setdefault("drop_episodes", None)  # files written before drop lists existed
    unknown = sorted(set(meta) - set(parameters))
    if unknown or set(parameters) - set(meta):
        raise ValueError(
            f"weights file `{path}` has parameters {sorted(meta)} in its metadata, expected "
            f"{sorted(parameters)}; rewrite it with `rabc weights`"
        )
    try:
        w = cls(
            index=cols["index"],
            episode_index=cols["episode_index"],
            deltas=cols["delta"],
            weights=cols["weight"],
            group_of_row=cols.get("group"),
            group_stats=group_stats,
            **meta,
        )
        check_kappa(w.kappa)
    except ValueError as err:
        raise ValueError(f"weights file `{path}` is invalid: {err}; rewrite it with `rabc weights`") from None
    if (
        w.group_of_row is not None
        and len(w)
        and not 0 <= w.group_of_row.min() <= w.group_of_row.max() < len(group_stats)
    ):
        raise ValueError(
            f"weights file `{path}` has group codes outside the {len(group_stats)} groups of its "
            "metadata; rewrite it with `rabc weights`"
        )
    return w
