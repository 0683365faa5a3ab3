"""Benchmark `sarm explore`'s episode table at 10^4 episodes: time from navigation to the first painted rows.

A synthetic v3.0 dataset (`LeRobotWriter`, no camera: the table reads no video) of `--episodes`
episodes of 20-60 frames over 4 tasks, a third annotated, a tenth with a known outcome, plus a progress
file (rising, stalling or regressing curves) and its `rabc weights` file (chunk 10), so every column
of the table is filled (outcome known or predicted, the scores of `rabc episodes`, mean weight).
The server runs in this process; headless Chromium (Debian's, through Playwright) loads the page
`--runs` times, each in a fresh page. Per run:

  first rows   `performance.mark("sarm:first-rows")`, set by table.js in a timer queued from the
               animation frame after the first rows went into the DOM, i.e. just after they painted
               (ms since navigation start)
  FCP          Chromium's first-contentful-paint (the header may paint before the rows)
  api          when the /api/episodes response ended (resource timing), server time included
  parsed       when table.js had the response parsed (`sarm:episodes-parsed`)
  in DOM       when the first window of rows was in the DOM (`sarm:rows-in-dom`), before its paint
  sort         one click on the score header: JS time to sort 10^4 rows and redraw the window

Printed: each run and the medians, and the server's own `Catalog.episodes()` time. The dataset is
kept in `--work` (default a temporary folder) and reused when it is there.

    python benchmarks/bench_explore.py                          # 10^4 episodes, 5 runs
    python benchmarks/bench_explore.py --episodes 1000 --runs 3 --work /tmp/explore_bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rabc.progress_io import ProgressTable, write_progress
from rabc.weights import RABCWeights
from sarm.data.writer import LeRobotWriter
from sarm.explore import Catalog, ExploreServer

CHUNK = 10


def build(work: Path, episodes: int, seed: int = 0) -> Path:
    """The dataset, progress and weights under `work` (reused when `work/done.json` matches)."""
    done = work / "done.json"
    if done.is_file() and json.loads(done.read_text()) == {"episodes": episodes, "seed": seed}:
        return work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 61, episodes)
    writer = LeRobotWriter(work / "ds", fps=30, state_dim=2, action_dim=2)
    curves = []
    for ep in tqdm(range(episodes), desc="writing episodes", unit="ep"):
        n = int(lengths[ep])
        kind = rng.integers(3)
        t = np.linspace(0, 1, n)
        curve = t if kind == 0 else np.minimum(t, rng.uniform(0.2, 0.7)) if kind == 1 else t - 0.3 * (t > 0.5)
        curves.append(np.clip(curve + rng.normal(0, 0.02, n), 0, 1))
        spans = {"sparse": (["reach", "place"], [0, n // 2], [n // 2 - 1, n - 1])} if ep % 3 == 0 else None
        writer.add_episode(
            state=np.zeros((n, 2)),
            action=np.zeros((n, 2)),
            task=f"task {ep % 4}",
            annotations=spans,
            outcome=("success" if kind == 0 else "failure") if ep % 10 == 0 else None,
        )
    writer.close()
    ep_index = np.repeat(np.arange(episodes), lengths)
    frame = np.concatenate([np.arange(n) for n in lengths])
    table = ProgressTable(
        np.arange(ep_index.size), ep_index, frame, {"sparse": np.concatenate(curves).astype(np.float32)}
    )
    write_progress(work / "progress.parquet", table)
    RABCWeights.from_progress(table, CHUNK).save(work / "weights.parquet")
    done.write_text(json.dumps({"episodes": episodes, "seed": seed}))
    return work


def measure(url: str, runs: int, chromium: str) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for _ in tqdm(range(runs), desc="page loads", unit="load"):
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function(
                "performance.getEntriesByName('sarm:first-rows').length > 0", timeout=60000
            )
            run = page.evaluate(
                """() => ({
                  first_rows_ms: performance.getEntriesByName("sarm:first-rows")[0].startTime,
                  parsed_ms: performance.getEntriesByName("sarm:episodes-parsed")[0].startTime,
                  dom_ms: performance.getEntriesByName("sarm:rows-in-dom")[0].startTime,
                  fcp_ms: (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime ?? null,
                  api_ms: performance.getEntriesByType("resource")
                    .find((r) => r.name.includes("api/episodes")).responseEnd,
                  rows_in_dom: document.querySelectorAll("#episodes tbody tr.row").length,
                  summary: document.getElementById("summary").textContent,
                })"""
            )
            run["sort_ms"] = page.evaluate(
                """() => { const t = performance.now();
                  document.querySelector("th[data-key=score]").click(); return performance.now() - t; }"""
            )
            run["errors"] = errors
            out.append(run)
            page.close()
        browser.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", help="folder for the synthetic dataset (kept; reused when it matches)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--json", help="also write the runs here")
    args = ap.parse_args(argv)
    work = build(Path(args.work or Path(tempfile.gettempdir()) / "sarm_bench_explore"), args.episodes)
    catalog = Catalog(work / "ds", work / "progress.parquet", work / "weights.parquet")
    t = time.perf_counter()
    rows = catalog.episodes()
    server_s = time.perf_counter() - t
    server = ExploreServer(catalog)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runs = measure(server.url, args.runs, args.chromium)
    finally:
        server.shutdown()
        server.server_close()
    frames = sum(r["length"] for r in rows)
    print(f"\n{len(rows)} episodes, {frames} frames; Catalog.episodes() {server_s:.3f} s")
    shown = [("first rows", "first_rows_ms"), ("FCP", "fcp_ms"), ("api", "api_ms"), ("parsed", "parsed_ms")]
    shown += [("in DOM", "dom_ms"), ("sort", "sort_ms")]
    print(f"{'run':>4} " + " ".join(f"{label + ' ms':>13}" for label, _ in shown) + f" {'rows in DOM':>12}")
    for i, r in enumerate(runs):
        cells = ["-" if r[k] is None else f"{r[k]:.0f}" for _, k in shown]
        print(f"{i:>4} " + " ".join(f"{c:>13}" for c in cells) + f" {r['rows_in_dom']:>12}")
    med = {k: statistics.median(r[k] for r in runs) for _, k in shown if k != "fcp_ms"}
    print(
        f"median: first rows {med['first_rows_ms']:.0f} ms (target < 1000), api {med['api_ms']:.0f} ms, "
        f"in DOM {med['dom_ms']:.0f} ms, sort {med['sort_ms']:.0f} ms; "
        f"page errors: {sum(len(r['errors']) for r in runs)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"server_s": server_s, "runs": runs, "median": med}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
