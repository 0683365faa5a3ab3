"""Weights from progress at BEHAVIOR scale: read + deltas + statistics + Eq. 8-9 (+ save, diagnose).

    python benchmarks/bench_weights.py --frames 130_000_000 --out docs/benchmarks/weights.md

Generates a synthetic progress file once (10,000 episodes by default, cached under --cache), then
times `RABCWeights.from_progress` end to end in a fresh subprocess (so the peak RSS is its own),
and a LeRobot-style per-row dictionary build on a small slice for comparison (extrapolated per row).
Target: under 60 s for 1.3 x 10^8 frames on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_progress(path: Path, frames: int, episodes: int, seed: int = 0) -> None:
    """Write a progress file of `frames` rows in row groups, without holding it all in memory."""
    rng = np.random.default_rng(seed)
    lengths = np.full(episodes, frames // episodes, np.int64)
    lengths[: frames % episodes] += 1
    schema = pa.schema(
        [
            ("index", pa.int64()),
            ("episode_index", pa.int64()),
            ("frame_index", pa.int64()),
            ("progress_sparse", pa.float32()),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    start = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for first in range(0, episodes, 200):
            ls = lengths[first : first + 200]
            frame = np.concatenate([np.arange(n) for n in ls])
            total = np.repeat(ls, ls)
            progress = frame / np.maximum(total - 1, 1) + rng.normal(0, 0.01, len(frame))
            writer.write_table(
                pa.table(
                    {
                        "index": np.arange(start, start + len(frame), dtype=np.int64),
                        "episode_index": np.repeat(np.arange(first, first + len(ls), dtype=np.int64), ls),
                        "frame_index": frame.astype(np.int64),
                        "progress_sparse": np.clip(progress, 0, 1).astype(np.float32),
                    },
                    schema=schema,
                )
            )
            start += len(frame)
    tmp.rename(path)


def run_once(path: str) -> dict:
    """Time the phases of one end-to-end build (runs in its own process)."""
    from rabc.diagnostics import diagnose
    from rabc.progress_io import read_progress
    from rabc.weights import RABCWeights

    t0 = time.perf_counter()
    table = read_progress(path, heads=["sparse"])
    t1 = time.perf_counter()
    w = RABCWeights.from_progress(table, chunk_size=50, kappa=0.01)
    t2 = time.perf_counter()
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = Path(path).with_name("weights_bench.parquet")
    w.save(out)
    t3 = time.perf_counter()
    diagnose(w)
    t4 = time.perf_counter()
    out.unlink()
    return {
        "read": t1 - t0,
        "weights": t2 - t1,
        "total": t2 - t0,
        "save": t3 - t2,
        "diagnose": t4 - t3,
        "peak_rss_gib_build": rss_build,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "frames": len(w),
        "mean_weight": w.mean_weight,
    }


def lerobot_style_rate(path: Path, rows: int = 200_000) -> float:
    """Rows per second of LeRobot 0.6.1's `iterrows` dictionary build, on the first `rows` rows."""
    df = pq.ParquetFile(path).read_row_group(0).slice(0, rows).to_pandas()
    t0 = time.perf_counter()
    lookup, episode = {}, {}
    for _, row in df.iterrows():
        if not np.isnan(row["progress_sparse"]):
            lookup[int(row["index"])] = float(row["progress_sparse"])
        episode[int(row["index"])] = int(row["episode_index"])
    return len(df) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--frames", type=int, default=130_000_000)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default="/tmp/rabc_bench")
    parser.add_argument("--out", default=None, help="write a markdown report here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.child)))
        return

    path = Path(args.cache) / f"progress_{args.frames}.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        make_progress(path, args.frames, args.episodes)
        print(f"generated {path} in {time.perf_counter() - t0:.0f} s")
    runs = []
    for _ in range(args.repeats):
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(runs[-1])
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], float)}
    rate = lerobot_style_rate(path)
    lerobot_est = args.frames / rate
    rows = [
        ("frames", f"{args.frames:,} ({args.episodes:,} episodes)"),
        ("read progress parquet", f"{med['read']:.1f} s"),
        ("deltas + statistics + Eq. 8-9", f"{med['weights']:.1f} s"),
        ("total from_progress (target < 60 s)", f"{med['total']:.1f} s"),
        ("save weights parquet", f"{med['save']:.1f} s"),
        ("diagnose (quantiles, kappa solve)", f"{med['diagnose']:.1f} s"),
        (
            "peak RSS (build / with save + diagnose)",
            f"{med['peak_rss_gib_build']:.1f} / {med['peak_rss_gib']:.1f} GiB",
        ),
        (
            "LeRobot-style iterrows dict build",
            f"{rate:,.0f} rows/s -> ~{lerobot_est / 60:.0f} min for these frames "
            f"(dicts only, before any delta; ratio ~{lerobot_est / med['total']:.0f}x)",
        ),
    ]
    text = "\n".join(f"| {a} | {b} |" for a, b in rows)
    report = (
        f"## Weights from progress\n\nMedian of {args.repeats} runs, each in a fresh process, 2-core CPU.\n"
        f"Command: `python benchmarks/bench_weights.py --frames {args.frames}`\n\n"
        "| what | measured |\n|---|---|\n"
        f"{text}\n"
    )
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
