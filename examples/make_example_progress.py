"""Generate `rabc/data/example_progress.parquet`: a small, deterministic progress file for the demo.

It imitates what a SARM writes for 24 teleoperated episodes of a 3-stage task at 30 fps: most
episodes progress steadily (with model noise), some pause, some regress (drop and regrasp), and a
few fail and stall. It is synthetic: it shows how RA-BC treats such episodes, not a real model.

    python examples/make_example_progress.py
"""

from pathlib import Path

import numpy as np

from rabc.progress_io import ProgressTable, write_progress

OUT = Path(__file__).resolve().parents[1] / "rabc" / "data" / "example_progress.parquet"


def episode(kind: str, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(180, 360))
    ideal = np.linspace(0.0, 1.0, n)
    if kind == "pause":  # a flat stretch of 1-3 s in the middle
        start, length = int(n * rng.uniform(0.3, 0.6)), int(rng.integers(30, 90))
        ideal = np.concatenate([ideal[:start], np.full(length, ideal[start]), ideal[start:]])
    elif kind == "regress":  # drop the object: progress falls back a stage, then recovers
        start, back = int(n * rng.uniform(0.4, 0.6)), rng.uniform(0.15, 0.3)
        drop = np.linspace(ideal[start], ideal[start] - back, 25)
        redo = np.linspace(ideal[start] - back, ideal[start], 60)
        ideal = np.concatenate([ideal[:start], drop, redo, ideal[start:]])
    elif kind == "fail":  # stalls around 40-70% and drifts down
        stop = int(n * rng.uniform(0.4, 0.7))
        ideal = np.concatenate([ideal[:stop], ideal[stop] - np.linspace(0, 0.1, n - stop)])
    noise = np.convolve(rng.normal(0, 0.01, len(ideal)), np.ones(9) / 9, mode="same")
    return np.clip(ideal + noise, 0.0, 1.0).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(2509)
    kinds = ["clean"] * 14 + ["pause"] * 4 + ["regress"] * 4 + ["fail"] * 2
    rng.shuffle(kinds)
    episodes = [episode(k, rng) for k in kinds]
    lengths = [len(e) for e in episodes]
    table = ProgressTable(
        index=np.arange(sum(lengths), dtype=np.int64),
        episode_index=np.repeat(np.arange(len(episodes), dtype=np.int64), lengths),
        frame_index=np.concatenate([np.arange(n, dtype=np.int64) for n in lengths]),
        progress={"sparse": np.concatenate(episodes)},
        metadata={"reward_model_path": "synthetic (examples/make_example_progress.py)",
                  "episode_kinds": ",".join(kinds)},
    )
    write_progress(OUT, table)
    print(f"wrote {OUT} ({sum(lengths)} frames, {len(episodes)} episodes: {', '.join(kinds)})")


if __name__ == "__main__":
    main()
