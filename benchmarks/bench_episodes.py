"""Time `rabc episodes` scoring beside `RABCWeights.from_progress` on one synthetic progress file.

    python benchmarks/bench_episodes.py --frames 130000000 --episodes 10000 --repeats 2

The file is generated streaming (one row group per block of episodes) and cached in the temp dir,
so a rerun times the same file without rewriting it. Report: docs/benchmarks/episodes.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rabc.episodes import score_episodes
from rabc.progress_io import read_progress
from rabc.weights import RABCWeights


def make_file(frames: int, episodes: int, seed: int = 0) -> Path:
    path = Path(tempfile.gettempdir()) / f"rabc_bench_episodes_{frames}_{episodes}_{seed}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    length = frames // episodes
    schema = pa.schema(
        [
            ("index", pa.int64()),
            ("episode_index", pa.int64()),
            ("frame_index", pa.int64()),
            ("progress_sparse", pa.float32()),
        ]
    )
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        block = max(1, (1 << 22) // length)
        for first in range(0, episodes, block):
            n = min(block, episodes - first)
            ep = np.repeat(np.arange(first, first + n), length)
            fr = np.tile(np.arange(length), n)
            p = np.clip(fr / length + rng.normal(0, 0.02, fr.size), 0, 1).astype(np.float32)
            writer.write_table(
                pa.table(
                    {"index": ep * length + fr, "episode_index": ep, "frame_index": fr, "progress_sparse": p},
                    schema=schema,
                )
            )
    tmp.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=13_000_000)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    t0 = time.perf_counter()
    path = make_file(args.frames, args.episodes)
    print(f"file {path} ready in {time.perf_counter() - t0:.1f} s")
    times = {"read": [], "weights": [], "scores": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        table = read_progress(path)
        times["read"].append(time.perf_counter() - t)
        t = time.perf_counter()
        w = RABCWeights.from_progress(table, args.chunk_size)
        times["weights"].append(time.perf_counter() - t)
        t = time.perf_counter()
        score_episodes(table, args.chunk_size, weights=w)
        times["scores"].append(time.perf_counter() - t)
        del table, w
    for k, v in times.items():
        print(f"{k:8s} median {statistics.median(v):6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in v)})")


if __name__ == "__main__":
    main()
