"""Latency of SARM as an online reward: ms per environment step, streaming vs recomputing the window.

  stream  `sarm.online.ProgressStream.step`: encode the new frame of each environment once, gather the
          window from the ring of past features, one batched SARM forward for all environments;
  naive   what a loop without a feature history does: every step, encode all k + 1 frames of each
          environment's window again (the raw frames are kept), then the same batched forward.
Both score the same frames (their progress is compared: the same numbers), for 1 and 16 environments,
with the offline pixel encoder and with CLIP ViT-B-32. CLIP has random weights (open_clip,
pretrained=None: nothing to download here); latency does not depend on the weights. The SARM is the
paper's size (768 wide, 8 + 8 layers, 9 observed slots spaced by 30 frames), random weights. Frames are
224 x 224 RGB; the stream is past its first k * g frames, so every window is a regular one.

    python benchmarks/bench_online.py                 # the table in docs/online.md (a few minutes on 2 cores)
    python benchmarks/bench_online.py --quick         # tiny CLIP + tiny SARM, 1 and 2 envs: seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sarm import SARM, SARMConfig
from sarm.features.encoders import load_encoder
from sarm.online import ProgressStream
from sarm.training.windows import window_frames

TASK = "fold the towel"
SIZE = 224
POOL = 16  # distinct frames per environment, cycled (memory stays small at 16 environments)


def _model(quick: bool) -> SARM:
    small = {"hidden_dim": 64, "num_layers": 2, "num_heads": 4, "n_obs_steps": 4, "frame_gap": 3}
    torch.manual_seed(0)
    return SARM(SARMConfig(max_state_dim=8, **(small if quick else {}))).eval()


def measure(model: SARM, encoder, num_envs: int, repeats: int) -> dict[str, float]:
    """Median ms of a stream step and of a naive step, interleaved (a busy machine slows both alike)."""
    c = model.config
    history = c.n_obs_steps * c.frame_gap + 1  # frames before the measured ones: every window is regular
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (POOL, num_envs, SIZE, SIZE, 3), dtype=np.uint8)  # frame t is pool[t % POOL]
    state = rng.standard_normal((POOL, num_envs, 6)).astype(np.float32)
    features = encoder.encode_images(pool.reshape(-1, SIZE, SIZE, 3)).reshape(POOL, num_envs, 1, -1)
    stream = ProgressStream(model, encoder, num_envs=num_envs)
    stream.reset(TASK)
    for t in range(history):  # the history from features (the same ones `step` would have made): fast
        stream.step_features(features[t % POOL], state[t % POOL])
    text = encoder.encode_texts([TASK]).expand(num_envs, -1)

    def naive_step(t: int) -> np.ndarray:
        window = window_frames(t, 0, t + 1, mode="past", n_obs_steps=c.n_obs_steps, frame_gap=c.frame_gap)[0]
        images = pool[window % POOL].transpose(1, 0, 2, 3, 4)  # (n, w, H, W, 3): every window frame again
        video = encoder.encode_images(images.reshape(-1, SIZE, SIZE, 3)).reshape(num_envs, len(window), 1, -1)
        states = torch.from_numpy(state[window % POOL].transpose(1, 0, 2).copy())
        pred = model.predict(text, video, states, tasks=[TASK] * num_envs)
        return pred.progress[:, c.current_slot].numpy()

    times: dict[str, list[float]] = {"stream": [], "naive": []}
    diff = 0.0
    for t in range(history, history + repeats):
        tic = time.perf_counter()
        stream.step(pool[t % POOL], state[t % POOL])
        times["stream"].append((time.perf_counter() - tic) * 1000)
        tic = time.perf_counter()
        naive = naive_step(t)  # the same frame t, its window encoded again
        times["naive"].append((time.perf_counter() - tic) * 1000)
        diff = max(diff, float(np.abs(naive - stream.last.progress).max()))
    return {key: float(np.median(value)) for key, value in times.items()} | {"diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny CLIP and SARM, 1 and 2 envs, few repeats")
    parser.add_argument("--out", default="-", help="markdown file to write the table to ('-': stdout only)")
    args = parser.parse_args()
    model = _model(args.quick)
    encoders = ["pixels"] + (["clip:sarm-tiny"] if args.quick else ["clip:ViT-B-32"])
    envs = (1, 2) if args.quick else (1, 16)
    rows = []
    for spec in encoders:
        encoder = load_encoder(spec, device="cpu")
        for n in envs:
            clip_big = spec == "clip:ViT-B-32" and n > 1
            result = measure(model, encoder, n, 2 if args.quick else (5 if clip_big else 11))
            rows.append((spec, n, result))
            print(
                f"{spec} x {n}: stream {result['stream']:.1f} ms, naive {result['naive']:.1f} ms", flush=True
            )
    c = model.config
    lines = [
        f"SARM {c.hidden_dim} wide, {c.num_layers} layers, window {c.n_obs_steps + 1} slots spaced by "
        f"{c.frame_gap}; {SIZE}x{SIZE} frames; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; median of "
        "repeats, stream and naive steps interleaved.",
        "",
        "| encoder | envs | stream ms/step | naive ms/step (re-encode the window) | naive / stream | "
        "max abs diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for spec, n, r in rows:
        name = f"{spec} (random weights)" if spec.startswith("clip") else spec
        lines.append(
            f"| {name} | {n} | {r['stream']:.1f} | {r['naive']:.1f} | {r['naive'] / r['stream']:.1f}x | "
            f"{r['diff']:.1e} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out != "-":
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
