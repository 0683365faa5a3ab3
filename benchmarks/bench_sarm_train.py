"""Benchmark one SARM training step at the paper's size (768 wide, 8 layers, 12 heads), batch 32, 13 slots.

Side by side in one run, on the same module and inputs:
  ours           one `SARM.forward` for every head: the stage trunk runs once and serves both heads,
                 the tau trunk runs once over the heads stacked along the batch;
  lerobot-style  LeRobot's `_train_step` procedure: one stage pass and one tau pass per head.
Both then take the same masked CE + MSE loss, backward, gradient clipping and an AdamW step. Also
reported: parameter counts next to LeRobot 0.6.1's (measured by instantiating its model), and
inference windows/s of `SARM.predict` at batch 64.

    python benchmarks/bench_sarm_train.py                  # full run, writes docs/benchmarks/sarm_train.md
    python benchmarks/bench_sarm_train.py --quick --out -  # small model, markdown to stdout only
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sarm import SARM, SARMConfig

ROOT = Path(__file__).resolve().parents[1]
LEROBOT_PARAMS = {"single-stage": 119_178_244, "dual (3 sparse / 5 dense)": 119_182_858}
SCHEMAS = {
    "single-stage": {"sparse": {"*": {"names": ["task"], "proportions": [1.0]}}},
    "dual (3 sparse / 5 dense)": {
        "sparse": {"*": {"names": list("abc"), "proportions": [0.2, 0.3, 0.5]}},
        "dense": {"*": {"names": list("vwxyz"), "proportions": [0.2] * 5}},
    },
}


def _batch(config: SARMConfig, batch: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = config.num_slots
    targets = {h: torch.rand(batch, t, generator=g) * (config.num_stages(h) - 0.01) for h in config.heads}
    return {
        "text": torch.randn(batch, config.text_dim, generator=g),
        "video": torch.randn(batch, t, config.image_dim, generator=g),
        "state": torch.randn(batch, t, 7, generator=g),
        "lengths": torch.randint(9, t + 1, (batch,), generator=g),
        "targets": targets,
    }


def _loss(outputs: dict, batch: dict) -> torch.Tensor:
    t = batch["video"].shape[1]
    valid = (torch.arange(t)[None, :] < batch["lengths"][:, None]).float()
    total = 0.0
    for head, out in outputs.items():
        y = batch["targets"][head]
        ce = F.cross_entropy(out.stage_logits.flatten(0, 1), y.floor().long().flatten(), reduction="none")
        mse = (out.tau - (y - y.floor())) ** 2
        total = total + ((ce.view_as(valid) + mse) * valid).sum() / valid.sum()
    return total


def _step_fn(model: SARM, batch: dict, mode: str):
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=1e-3)
    prior = {h: y.floor().long() for h, y in batch["targets"].items()}
    args = (batch["text"], batch["video"], batch["state"], batch["lengths"])

    def step() -> None:
        if mode == "ours":
            outputs = model(*args, stage_prior=prior)
        else:  # one stage pass and one tau pass per head, as LeRobot's _train_step
            outputs = {}
            for head in model.config.heads:
                outputs.update(model(*args, heads=[head], stage_prior={head: prior[head]}))
        loss = _loss(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def _median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def run(quick: bool, repeats: int) -> str:
    size = dict(hidden_dim=64, num_layers=2, num_heads=4) if quick else {}
    rows, infer_rows = [], []
    for name, schemas in SCHEMAS.items():
        torch.manual_seed(0)
        config = SARMConfig(attention="lerobot", window="centered", schemas=schemas, **size)
        model = SARM(config).train()
        batch = _batch(config, 32, seed=0)
        times = {}
        modes = ["ours", "lerobot-style"] if len(config.heads) > 1 else ["ours"]
        for mode in modes:  # interleave-free but same process, same module, same inputs
            times[mode] = _median_time(_step_fn(model, batch, mode), repeats)
        params = model.num_parameters()
        lerobot = LEROBOT_PARAMS[name]
        ratio = times["lerobot-style"][0] / times["ours"][0] if "lerobot-style" in times else None
        rows.append((name, params, lerobot, times, ratio))
        big = _batch(config, 64, seed=1)
        median, _ = _median_time(
            lambda m=model, b=big: m.predict(b["text"], b["video"], b["state"], b["lengths"]), repeats
        )
        infer_rows.append((name, median, 64 / median))
    lines = [
        "# SARM training step (paper-sized model)"
        if not quick
        else "# SARM training step (quick, small model)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {sys.version.split()[0]}. "
        f"Medians of {repeats} steps after one warmup step; batch 32, {SARMConfig().num_slots} slots, "
        "AdamW + clipping included.",
        "",
        "| model | parameters (ours) | LeRobot 0.6.1 | step, ours (s) | step, LeRobot-style (s) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for name, params, lerobot, times, ratio in rows:
        lerobot_step = f"{times['lerobot-style'][0]:.2f}" if "lerobot-style" in times else "same as ours"
        lines.append(
            f"| {name} | {params:,} | {lerobot:,} | {times['ours'][0]:.2f} | {lerobot_step} | "
            f"{f'{ratio:.2f}x' if ratio else '-'} |"
        )
    lines += [
        "",
        "LeRobot always builds a dense head as well (in single-stage mode with 1 class: 2 x 769 parameters); "
        "ours builds only the heads in use, so the single-stage counts differ by exactly 1,538.",
        "",
        "Raw step times (s): "
        + "; ".join(
            f"{name} {mode}: " + ", ".join(f"{t:.2f}" for t in times[mode][1])
            for name, _, _, times, _ in rows
            for mode in times
        ),
        "",
        "| model | predict, batch 64 (s) | windows/s |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {median:.2f} | {rate:.1f} |" for name, median, rate in infer_rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small model, for a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration")
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "benchmarks" / "sarm_train.md"),
        help="markdown file to write, or - for stdout only",
    )
    args = parser.parse_args()
    text = run(args.quick, args.repeats)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
