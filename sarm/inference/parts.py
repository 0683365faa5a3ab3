"""The per-episode parts of `sarm progress` and their merge into the output files.

Each scored episode is one `<out>.parts/episode_<e>.npz` (progress and stage probabilities per head),
beside `settings.json` (heads, model, cache) and `provenance.json`. `merge_progress` streams the parts in
global index order into LeRobot's `sarm_progress.parquet` and/or the typed scores file
(`rabc.score_files`), episode by episode, so memory stays flat as the dataset grows; episodes the cache
does not hold get NaN rows.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rabc import score_files
from sarm.features.cache import FeatureCache
from sarm.inference.scores import check_scores_output, created_now, scores_path

__all__ = ["FORMATS", "PARTS_VERSION", "check_formats", "merge_progress", "part_path"]

_ROW_GROUP = 1 << 18  # rows per row group: bounds the merge's memory
FORMATS = ("lerobot", "scores")
PARTS_VERSION = 2  # parts hold stage probabilities


def part_path(parts: Path, episode: int) -> Path:
    return parts / f"episode_{episode:06d}.npz"


def check_formats(formats) -> tuple[str, ...]:
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"formats should be some of {list(FORMATS)}, but got formats={formats!r}")
    return formats


def merge_progress(
    cache: FeatureCache | str | Path,
    out_path: str | Path,
    *,
    keep_parts: bool = False,
    formats: Sequence[str] | str = ("lerobot",),
    scores_out: str | Path | None = None,
    score_name: str = "sarm",
    option_names: dict[str, str] | None = None,
) -> Path:
    """Stream every episode's part into `out_path` (sorted by global index), atomically; planned
    episodes without features get NaN rows. With "scores" in `formats`, also (or only) LeRobot's typed
    scores file at `scores_out` (default `<dataset root>/scores/<score_name>.parquet`), stamped with the
    run's provenance and the time of this merge. Removes `<out_path>.parts/` unless `keep_parts`.
    Returns `out_path` (the scores file when it is the only format)."""
    cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    formats = check_formats(formats)
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ValueError(f"the output `{out_path}` is a directory; name the progress file to write")
    parts = out_path.with_name(out_path.name + ".parts")
    if not (parts / "settings.json").is_file():
        raise FileNotFoundError(
            f"no progress parts in `{parts}` to merge; run `sarm progress` (compute_progress) for every "
            "shard with this output first"
        )
    settings = json.loads((parts / "settings.json").read_text())
    if settings.get("parts") != PARTS_VERSION:
        raise ValueError(
            f"`{parts}` holds parts of an older sarm (without stage probabilities); delete it and rerun "
            "`sarm progress`"
        )
    missing_parts = [int(e) for e in cache.episodes if not part_path(parts, int(e)).is_file()]
    if missing_parts:
        raise FileNotFoundError(
            f"{len(missing_parts)} episode(s) have no progress part in `{parts}` yet (first: "
            f"{missing_parts[:8]}); run every shard of `sarm progress` before merging"
        )
    scores = scores_path(cache, scores_out, score_name) if "scores" in formats else None
    if scores is not None:
        check_scores_output(scores, out_path, cache, (option_names or {}).get("scores_out", "scores_out"))
    heads = settings["heads"]
    skipped = cache.missing
    if skipped.size:
        warnings.warn(
            f"{skipped.size} episode(s) have no cached features and get NaN progress (RA-BC's fallback "
            f"weight): {skipped[:20].tolist()}",
            stacklevel=2,
        )
    if "lerobot" in formats:
        _write_lerobot(cache, parts, out_path, settings)
    if scores is not None:
        provenance = {**json.loads((parts / "provenance.json").read_text()), "created": created_now()}
        score_files.write_scores(
            scores,
            _episodes(cache, parts, heads),
            model="sarm",
            num_stages={h: _num_stages(settings, h) for h in heads},
            provenance=provenance,
        )
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    return out_path if "lerobot" in formats else scores


def _num_stages(settings: dict, head: str) -> int:
    """Stage classes of a head: the largest stage count over its tasks (as `SARMConfig.num_stages`)."""
    return max(len(s["names"]) for s in settings["model"]["schemas"][head].values())


def _episodes(cache: FeatureCache, parts: Path, heads):
    """Each planned episode's columns in global index order, from its part or NaN (no features)."""
    done = set(cache.episodes.tolist())
    last = -1
    for episode in sorted(cache.planned.tolist(), key=cache.first_index):
        length = cache.length(episode)
        first = cache.first_index(episode)
        if first <= last:
            raise ValueError(f"episode {episode} overlaps the global index range of an earlier episode")
        last = first + length - 1
        frame = np.arange(length, dtype=np.int64)
        columns = {
            "index": first + frame,
            "episode_index": np.full(length, episode, np.int64),
            "frame_index": frame,
        }
        if episode in done:
            with np.load(part_path(parts, episode)) as part:
                columns |= {name: part[name] for name in part.files}
        for h in heads:
            columns.setdefault(f"progress_{h}", np.full(length, np.nan, np.float32))
        yield columns


def _write_lerobot(cache: FeatureCache, parts: Path, out_path: Path, settings: dict) -> None:
    heads, with_probs = settings["heads"], settings["stage_probs"]
    fields = [pa.field(n, pa.int64()) for n in ("index", "episode_index", "frame_index")]
    fields += [pa.field(f"progress_{h}", pa.float32()) for h in heads]
    if with_probs:
        fields += [pa.field(f"stage_probs_{h}", pa.list_(pa.float32())) for h in heads]
    schema = pa.schema(fields, metadata={"reward_model_path": settings["reward_model_path"]})
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    pending, rows = [], 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for columns in _episodes(cache, parts, heads):
            length = len(columns["index"])
            arrays = [pa.array(columns[f.name]) for f in fields if not f.name.startswith("stage_probs_")]
            if with_probs:
                for h in heads:
                    p = columns.get(f"stage_probs_{h}")
                    if p is None:
                        arrays.append(pa.nulls(length, pa.list_(pa.float32())))
                    else:
                        arrays.append(
                            pa.ListArray.from_arrays(
                                pa.array(np.arange(0, p.size + 1, p.shape[1], dtype=np.int32)),
                                pa.array(p.reshape(-1)),
                            )
                        )
            pending.append(pa.Table.from_arrays(arrays, schema=schema))
            rows += length
            if rows >= _ROW_GROUP:  # bounded memory, few row groups
                writer.write_table(pa.concat_tables(pending))
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending))
    os.replace(tmp, out_path)
