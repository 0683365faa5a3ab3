"""RABCWeightedSampler vs torch's WeightedRandomSampler, and the sampler alone up to ~2 x 10^9 frames.

    python benchmarks/bench_sampler.py --out docs/benchmarks/sampler.md        # 1.6e7 and 1.3e8
    python benchmarks/bench_sampler.py --sizes 1.5e9 --memmap-size 2.2e9 --no-compare --out ...

Each size runs in a fresh subprocess (so its peak RSS is its own); sizes >= 1e8 run under
`flock /tmp/heavy.lock` so they never overlap other heavy benchmarks on the machine. Weights are
RA-BC-like float32: 70% exactly 1.0, 15% 0.0, 15% uniform(0, 1). Iteration consumes `__iter__`
with `collections.deque(it, maxlen=0)` for both samplers (no Python loop of our own in the way).
`--memmap-size` keeps the weights in a float32 np.memmap file under /tmp (deleted afterwards), so
only the sampler's 8 B/frame CDF lives in RAM.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from rabc.draws import search_sorted_keys
from rabc.sampler import RABCWeightedSampler

_BLOCK = 1 << 22
_LOCK = "/tmp/heavy.lock"
BATCH = 64  # batch size of the `sampler.batches()` path


def make_weights(n: int, path: str | None = None, seed: int = 0) -> np.ndarray:
    """RA-BC-like float32 weights, filled block by block (in RAM, or in a memmap file at `path`)."""
    rng = np.random.default_rng(seed)
    w = np.lib.format.open_memmap(path, "w+", np.float32, (n,)) if path else np.empty(n, np.float32)
    for lo in range(0, n, _BLOCK):
        r = rng.random(min(_BLOCK, n - lo))
        block = np.ones(r.shape[0], np.float32)
        block[r < 0.15] = 0.0
        mid = r > 0.85
        block[mid] = rng.random(int(mid.sum()))
        w[lo : lo + r.shape[0]] = block
    if path:
        w.flush()
        del w
        w = np.load(path, mmap_mode="r")
    return w


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _iterate(sampler, draws: int) -> tuple[float, float]:
    """(seconds to the first index, draws/s over `draws` indices counted from the iter() call)."""
    t0 = time.perf_counter()
    it = iter(sampler)
    next(it)
    first = time.perf_counter() - t0
    collections.deque(itertools.islice(it, draws - 1), maxlen=0)
    return first, draws / (time.perf_counter() - t0)


def _chunk_rate(sampler: RABCWeightedSampler, seconds: float = 3.0) -> float:
    """Draws/s of the vectorised chunk step alone (no Python ints)."""
    count, t0, c = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        sampler._draw_chunk(0, c)
        count, c = count + sampler.chunk_size, c + 1
    return count / (time.perf_counter() - t0)


def _alternatives(cdf: np.ndarray, total: float, seconds: float = 2.0) -> dict[str, float]:
    """Draws/s of the search alternatives on the same CDF (key generation + search + shuffle)."""
    n = cdf.shape[0]

    def exp_keys(rng, size):
        keys = rng.standard_exponential(size + 1)
        np.cumsum(keys, out=keys)
        return keys[:-1] * (total / keys[-1])

    def window(size):
        return min(1 << max(1, n * 8 // size).bit_length(), 1 << (n.bit_length() - 1))

    methods = {
        "random keys + np.searchsorted": lambda rng, s: np.searchsorted(cdf, rng.random(s) * total, "right"),
        "sorted keys (np.sort) + np.searchsorted": lambda rng, s: np.searchsorted(
            cdf, np.sort(rng.random(s)) * total, "right"
        ),
        "sorted keys (exponentials) + np.searchsorted": lambda rng, s: np.searchsorted(
            cdf, exp_keys(rng, s), "right"
        ),
        "sorted keys (np.sort) + windowed search": lambda rng, s: search_sorted_keys(
            cdf, np.sort(rng.random(s)) * total, window(s)
        ),
        "sorted keys (exponentials) + windowed search [used]": lambda rng, s: search_sorted_keys(
            cdf, exp_keys(rng, s), window(s)
        ),
        "sorted keys (exponentials) + torch.searchsorted (1 thread)": lambda rng, s: torch.searchsorted(
            torch.from_numpy(cdf), torch.from_numpy(exp_keys(rng, s)), right=True
        ).numpy(),
    }
    rates, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)
    for size in (1 << 16, 1 << 18, 1 << 20):
        for name, fn in methods.items():
            if size != 1 << 16 and "[used]" not in name:
                continue
            count, t0, c = 0, time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                rng = np.random.default_rng([0, 0, c])
                rng.shuffle(fn(rng, size))
                count, c = count + size, c + 1
            rates[f"{name}, chunk {size}"] = count / (time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return rates


def _rss_gib() -> tuple[float, float]:
    """(peak RSS of this process so far, current anonymous RSS), GiB."""
    status = Path("/proc/self/status").read_text().splitlines()
    anon = next(int(s.split()[1]) for s in status if s.startswith("RssAnon"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, anon / 2**20


def run_child(n: int, args) -> dict:
    """All measurements for one size (runs in its own process)."""
    path = f"/tmp/rabc_bench_sampler_{os.getpid()}.npy" if args.memmap else None
    extras = n <= args.extras_max
    try:
        gen_s, w = _timed(lambda: make_weights(n, path))
        res: dict = {"n": n, "memmap": bool(path), "generate_s": gen_s, "ours": [], "torch": []}
        draws = res["draws"] = min(n, int(args.draws))
        for rep in range(args.repeats):
            sampler = None  # free the previous CDF before building the next
            t0 = time.perf_counter()
            sampler = RABCWeightedSampler(w, seed=rep)
            build = time.perf_counter() - t0
            first, rate = _iterate(sampler, draws)
            res["ours"].append({"construct_s": build, "first_s": first, "draws_per_s": rate})
            print(n, res["ours"][-1], file=sys.stderr, flush=True)
        res["batches"] = []
        for rep in range(args.repeats if hasattr(sampler, "batches") else 0):
            batched = RABCWeightedSampler(w, seed=rep).batches(BATCH)
            t0 = time.perf_counter()
            collections.deque(itertools.islice(iter(batched), draws // BATCH), maxlen=0)
            res["batches"].append({"draws_per_s": draws // BATCH * BATCH / (time.perf_counter() - t0)})
        res["chunk_draws_per_s"] = _chunk_rate(sampler)
        res["sampler_bytes_per_frame"] = sampler.nbytes / n
        res["weights_bytes_per_frame"] = w.nbytes / n
        res["peak_rss_gib"], res["rss_anon_gib"] = _rss_gib()  # before anything but our sampler ran
        if args.alternatives and extras:
            res["alternatives"] = _alternatives(sampler._cdf, sampler._total)
        del sampler
        if args.compare and n <= 1 << 24 and not path:  # torch.multinomial's limit: 2^24 categories
            wt = torch.from_numpy(w)
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                wrs = WeightedRandomSampler(wt, num_samples=n)
                build = time.perf_counter() - t0
                first, rate = _iterate(wrs, n)
                res["torch"].append({"construct_s": build, "first_s": first, "draws_per_s": rate})
                print(n, "torch", res["torch"][-1], file=sys.stderr, flush=True)
            del wrs
        res["chunk_sizes"] = {}
        for size in args.chunk_sizes if extras else []:
            other = RABCWeightedSampler(w, seed=0, chunk_size=size)
            runs = []
            for epoch in range(args.repeats):
                other.set_epoch(epoch)
                first, rate = _iterate(other, draws)
                runs.append({"first_s": first, "draws_per_s": rate})
            res["chunk_sizes"][size] = {
                "first_s": _med(runs, "first_s"),
                "draws_per_s": _med(runs, "draws_per_s"),
            }
            res["chunk_sizes"][size]["chunk_draws_per_s"] = _chunk_rate(other)
            del other
        if args.no_replacement and extras:
            build, nr = _timed(lambda: RABCWeightedSampler(w, replacement=False, seed=0))
            epoch_s, kept = _timed(lambda: len(nr))
            first, rate = _iterate(nr, min(kept, draws))
            res["no_replacement"] = {"construct_s": build, "epoch_build_s": epoch_s, "kept": kept}
            res["no_replacement"].update(first_s=first, draws_per_s=rate, bytes_per_frame=nr.nbytes / n)
        return res
    finally:
        if path and os.path.exists(path):
            os.remove(path)


def _med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: list[dict], argv: str, repeats: int, title: str) -> str:
    lines = [
        f"## {title}",
        "",
        f"Machine: 2-core AMD EPYC CPU (KVM), 24 GiB RAM, shared with other jobs; torch {torch.__version__}, "
        f"numpy {np.__version__}. Median of {repeats} runs; each size in a fresh process.",
        f"Command: `{argv}` (sizes >= 1e8 under `flock {_LOCK}`).",
        "Weights: float32, 70% 1.0, 15% 0.0, 15% uniform(0, 1). Draws/s counts from the `iter()` call "
        "(so it includes the time to the first index), consuming with `deque(it, maxlen=0)`.",
        "",
        "| N | sampler | construct | first index | draws/s (iterated) | draws/s (chunk step) "
        "| B/frame sampler + weights | peak RSS (anon with sampler alive) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r["ours"]
        where = " (memmap)" if r["memmap"] else ""
        lines.append(
            f"| {r['n']:.3g}{where} | RABCWeightedSampler | {_med(o, 'construct_s'):.2f} s "
            f"| {_med(o, 'first_s') * 1e3:.1f} ms | {_med(o, 'draws_per_s'):.3g} ({r['draws']:.2g} draws) "
            f"| {r['chunk_draws_per_s']:.3g} | {r['sampler_bytes_per_frame']:.2f} + "
            f"{r['weights_bytes_per_frame']:.2f}{' on disk' if r['memmap'] else ''} "
            f"| {r['peak_rss_gib']:.2f} GiB ({r['rss_anon_gib']:.2f} GiB) |"
        )
        if r.get("batches"):
            lines.append(
                f"| {r['n']:.3g} | RABCWeightedSampler.batches({BATCH}) | | "
                f"| {_med(r['batches'], 'draws_per_s'):.3g} (indices in batches) | | | |"
            )
        if r["torch"]:
            t = r["torch"]
            lines.append(
                f"| {r['n']:.3g} | torch WeightedRandomSampler | {_med(t, 'construct_s'):.2f} s "
                f"| {_med(t, 'first_s') * 1e3:.0f} ms | {_med(t, 'draws_per_s'):.3g} | - | - | - |"
            )
            lines.append(
                f"| {r['n']:.3g} | **ratio (ours / torch, draws/s)** | | "
                f"| **{_med(o, 'draws_per_s') / _med(t, 'draws_per_s'):.1f}x** | | | |"
            )
        for size, c in r.get("chunk_sizes", {}).items():
            lines.append(
                f"| {r['n']:.3g} | RABCWeightedSampler(chunk_size={size}) | | {c['first_s'] * 1e3:.1f} ms "
                f"| {c['draws_per_s']:.3g} | {c['chunk_draws_per_s']:.3g} | | |"
            )
    for r in results:
        if "no_replacement" in r:
            nr = r["no_replacement"]
            lines += [
                "",
                f"No-duplicates mode (`replacement=False`) at N = {r['n']:.3g}: construct "
                f"{nr['construct_s']:.2f} s, epoch build (thinning + shuffle of {nr['kept']:,} kept frames) "
                f"{nr['epoch_build_s']:.2f} s, first index {nr['first_s'] * 1e3:.1f} ms, "
                f"{nr['draws_per_s']:.3g} indices/s, {nr['bytes_per_frame']:.2f} B/frame own arrays.",
            ]
        if "alternatives" in r:
            lines += ["", f"Draw methods on the same CDF at N = {r['n']:.3g} (chunk step only, draws/s):", ""]
            lines += ["| method | draws/s |", "|---|---|"]
            lines += [f"| {k} | {v:.3g} |" for k, v in r["alternatives"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1.6e7, 1.3e8])
    parser.add_argument("--memmap-size", type=float, default=None, help="also run this N with memmap weights")
    parser.add_argument("--draws", type=float, default=2e7, help="indices iterated per run (at most N)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compare", dest="compare", action="store_false", help="skip torch's sampler")
    parser.add_argument("--alternatives", action="store_true", help="time the draw-method alternatives")
    parser.add_argument("--no-replacement", action="store_true", help="also time replacement=False")
    parser.add_argument(
        "--chunk-sizes", nargs="*", type=int, default=[], help="also iterate these chunk sizes"
    )
    parser.add_argument("--extras-max", type=float, default=2e8, help="extras only for N up to this")
    parser.add_argument("--out", default=None, help="write the markdown report here")
    parser.add_argument("--append", action="store_true", help="append to --out instead of overwriting it")
    parser.add_argument("--title", default="RABCWeightedSampler vs torch WeightedRandomSampler")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--memmap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(int(args.child), args)))
        return

    jobs = [(n, False) for n in args.sizes] + ([(args.memmap_size, True)] if args.memmap_size else [])
    results = []
    for n, memmap in jobs:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(n),
            "--draws",
            str(args.draws),
            "--repeats",
            str(args.repeats),
        ]
        flags = {"--alternatives": args.alternatives, "--no-replacement": args.no_replacement,
                 "--memmap": memmap, "--no-compare": not args.compare}  # fmt: skip
        cmd += [flag for flag, on in flags.items() if on] + ["--extras-max", str(args.extras_max)]
        cmd += ["--chunk-sizes", *map(str, args.chunk_sizes)] if args.chunk_sizes else []
        if n >= 1e8:
            cmd = ["flock", _LOCK, *cmd]
        print(" ".join(cmd), flush=True)
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    text = report(
        results,
        shlex.join(["python", "benchmarks/bench_sampler.py", *sys.argv[1:]]),
        args.repeats,
        args.title,
    )
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a" if args.append else "w") as f:
            f.write(("\n" if args.append else "") + text)


if __name__ == "__main__":
    main()
