"""The spread of `sarm demo`'s headline number: its policy stage (BC vs RA-BC) over several seeds.

`sarm demo` trains one BC and one RA-BC policy with one seed and prints their success over 50
rollouts. Those two numbers move by several points with the seed, the torch version and the thread
count, so one run is no reference. This runs the demo once (or reuses a finished demo directory),
then repeats its stage 6 (`sarm.demo.run.compare_policies`: the same data, the same SARM weights,
the same budgets) for each policy seed, which seeds the policies' initialisation, their batches and
the evaluation goals. Each seed's result is kept in `<demo>/policy_seeds/seed_<s>.json`, so a killed
run resumes where it stopped.

    python benchmarks/bench_demo_seeds.py --demo /tmp/seeds_demo             # 5 seeds, ~25 s each
    python benchmarks/bench_demo_seeds.py --demo /tmp/seeds_demo --record    # + sarm/demo/policy_seeds.json
    python benchmarks/bench_demo_seeds.py --demo /tmp/seeds_demo --seeds 0 1 2 --threads 2

`--record` adds (or replaces) this torch version and thread count's spread in the file that
`sarm demo` prints its own run against (`sarm.demo.spread`). Run it
in the demo's own environment (the README's `.venv-demo`, torch 2.13.0): the figures belong to the
torch version and thread count they were measured with, and the file says which.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's sarm, also when run as a script


def training_frames(demo: Path) -> tuple[np.ndarray, ...]:
    """The demo's training frames from its directory: states, actions, episode ids, RA-BC weights."""
    from rabc import RABCWeights
    from sarm.data import open_dataset

    table = json.loads((demo / "episodes.json").read_text())
    train = [row["episode"] for row in table if row["split"] == "train"]
    ds = open_dataset(demo / "dataset")
    lengths = np.array([row["frames"] for row in table])
    if not np.array_equal(ds.episode_lengths, lengths):
        raise ValueError(f"`{demo / 'dataset'}` does not match `{demo / 'episodes.json'}`; rerun the demo")
    weights = RABCWeights.load(demo / "rabc_weights.parquet")
    rows = np.isin(ds.episode_index, train)
    if not np.array_equal(weights.index, ds.index):
        raise ValueError(f"`{demo / 'rabc_weights.parquet'}` does not cover the frames of the demo's dataset")
    return ds.state()[rows], ds.column("action")[rows], ds.episode_index[rows], weights.weights[rows]


def run_seed(demo: Path, config, frames, seed: int) -> dict:
    """One seed of stage 6, read back from `policy_seeds/seed_<seed>.json` when it is already there."""
    from sarm.demo.run import compare_policies

    path = demo / "policy_seeds" / f"seed_{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    start = time.perf_counter()
    results = compare_policies(*frames, config, seed=seed, progress_bar=True)
    row = {
        "seed": seed,
        "success_rate": {m: r["success_rate"] for m, r in results.items()},
        "seconds": time.perf_counter() - start,
    }
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    tmp.replace(path)
    return row


def spread(rows: list[dict], summary: dict, torch_version: str, threads: int) -> dict:
    """The record `sarm.demo.spread` reads: the demo's configuration and each method's rates by seed."""
    return {
        "benchmark": "benchmarks/bench_demo_seeds.py",
        "config": {k: v for k, v in summary["config"].items() if k != "threads"},
        "torch": torch_version,
        "torch_threads": threads,
        "policy_seeds": [r["seed"] for r in rows],
        "success_rate": {m: [r["success_rate"][m] for r in rows] for m in ("bc", "sampler")},
        "demo_run": summary["success_rate"],
    }


def markdown(record: dict) -> str:
    rates = record["success_rate"]
    lines = [
        f"policy seeds {record['policy_seeds']}, torch {record['torch']}, {record['torch_threads']} "
        f"thread(s); demo data and SARM of seed {record['config']['seed']}",
        "",
        "| policy seed | BC | RA-BC (sampler) | RA-BC - BC |",
        "|---|---|---|---|",
    ]
    for seed, bc, ra in zip(record["policy_seeds"], rates["bc"], rates["sampler"], strict=True):
        lines.append(f"| {seed} | {bc:.0%} | {ra:.0%} | {100 * (ra - bc):+.0f} |")
    gaps = [ra - bc for bc, ra in zip(rates["bc"], rates["sampler"], strict=True)]
    cells = [
        f"{statistics.fmean(v):.0%} ({min(v):.0%}-{max(v):.0%})" for v in (rates["bc"], rates["sampler"])
    ]
    gap = f"{100 * statistics.fmean(gaps):+.0f} ({100 * min(gaps):+.0f} to {100 * max(gaps):+.0f})"
    lines.append(f"| mean (range) | {cells[0]} | {cells[1]} | {gap} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="a demo directory (run here if it is new)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="policy seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for the demo and every seed")
    parser.add_argument("--record", action="store_true", help="write sarm/demo/policy_seeds.json")
    parser.add_argument("--small", action="store_true", help="the demo's --small budgets (a smoke run)")
    args = parser.parse_args(argv)
    import torch

    from sarm.demo.config import DemoConfig
    from sarm.demo.run import run_demo
    from sarm.demo.spread import SPREAD_FILE, load_spread

    config = dataclasses.replace(DemoConfig.small() if args.small else DemoConfig(), threads=args.threads)
    torch.set_num_threads(args.threads)
    if not (args.demo / "summary.json").is_file():
        run_demo(args.demo, config)
    summary = json.loads((args.demo / "summary.json").read_text())
    config = dataclasses.replace(config, **{k: v for k, v in summary["config"].items() if k != "threads"})
    torch.set_num_threads(args.threads)  # the demo may have run in another process with other threads
    frames = training_frames(args.demo)
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(args.demo, config, frames, seed))
        rates = rows[-1]["success_rate"]
        print(f"seed {seed}: BC {rates['bc']:.0%} | RA-BC {rates['sampler']:.0%}", flush=True)
    record = spread(rows, summary, torch.__version__, args.threads)
    same = [r for r in rows if r["seed"] == summary["config"]["seed"]]
    if same and summary["torch_threads"] == args.threads:
        agree = same[0]["success_rate"] == summary["success_rate"]
        print(f"policy seed {same[0]['seed']} {'reproduces' if agree else 'DIFFERS FROM'} the demo's own run")
    print(markdown(record))
    out = args.demo / "policy_seeds.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    if args.record:
        keep = [
            r
            for r in load_spread()
            if (r.get("torch"), r.get("torch_threads")) != (record["torch"], record["torch_threads"])
        ]
        runs = sorted([*keep, record], key=lambda r: (r.get("torch", ""), r.get("torch_threads", 0)))
        SPREAD_FILE.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
        print(f"wrote {SPREAD_FILE} ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
