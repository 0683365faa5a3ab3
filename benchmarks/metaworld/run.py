"""The Meta-World noisy-demonstration benchmark: reward models and policies, RA-BC vs BC.

    python benchmarks/metaworld/run.py --out benchmarks/metaworld/results           # all tasks, ~1 h
    python benchmarks/metaworld/run.py --out /tmp/mw --tasks pick-place-v3 --quick  # a smoke run
    python benchmarks/metaworld/run.py --out benchmarks/metaworld/results --report  # tables only
    python benchmarks/metaworld/run.py --out /tmp/mw --tasks pick-place-v3 --quick --plan 2  # v2 smoke

`--plan 2` runs `sarm.demo.protocol.EVALUATION_V2` (issue 14): eight reward models (SARM under six label
policies with the protocol's recorded mistake spans and outcomes, linear time, ReWiND-style), the VOC
metric, eleven policy arms with five seeds, `sarm_best` chosen by `best_sarm_rule`, and summary.json
(report.py) beside RESULTS.md. The default `--plan 1` is the plan of the committed results.

`--parallel N` runs N processes: one per task while tasks wait, then a helper (`--helper`) for a task
still running, so no core idles at the end. A task's two workers split its reward models and policy
runs (claim files, one unit at a time, from opposite ends) and get the same results as one process:
every unit is seeded. Worker 0 records the data and writes results.json.

Per task (one process each, two at a time): demonstrations under `sarm.demo.protocol` (fixed before
any result), frame features, three reward models on the same data and budget (SARM with stages and
rewind; a single-stage linear-time model without rewind; a ReWiND-style single-stage model with
rewind), their held-out metrics, then the same policy under each method of the evaluation plan with
3 training seeds and 50 simulator rollouts each, a kappa sweep, and the reward models' separation of
successful from failed policy rollouts. Results go to `<out>/<task>/results.json`; `--report` turns
them into `<out>/README.md` tables and plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class Budget:
    train_episodes: int = 100
    held_out_episodes: int = 25
    sarm_steps: int = 1500
    rollout_episodes: int = 30  # recorded policy rollouts scored by the reward models
    quick: bool = False

    @classmethod
    def small(cls) -> Budget:
        return cls(train_episodes=12, held_out_episodes=6, sarm_steps=40, rollout_episodes=4, quick=True)


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the renderer's workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _recorded(out: Path, name: str, task: str, ids: list[int], protocol, policy=None, goal_seed: int = 0):
    """`record_dataset` once: a rerun of the task re-simulates the same episodes without rendering
    (states and actions do not depend on the renderer) instead of writing the dataset again."""
    from sarm.demo.collect import collect, collect_rollouts
    from sarm.demo.record import record_dataset

    marker = out / f"{name}.recorded.json"
    recorded_under = dataclasses.asdict(protocol)
    if marker.exists() and json.loads(marker.read_text()).get("protocol") != json.loads(
        json.dumps(recorded_under)
    ):
        marker.unlink()  # recorded under another protocol (v1 labels): record it again
    if marker.exists():
        rendered = json.loads(marker.read_text())["rendered"]
        if policy is None:
            return list(collect(task, ids, protocol, render=False)), rendered
        again = collect_rollouts(task, policy, len(ids), protocol, goal_seed=goal_seed, render=False)
        return list(again), rendered
    if (out / name).exists():
        import shutil

        shutil.rmtree(out / name)  # an unfinished recording
    episodes, rendered = record_dataset(out / name, task, ids, protocol, policy=policy, goal_seed=goal_seed)
    marker.write_text(json.dumps({"rendered": rendered, "protocol": recorded_under}))
    return episodes, rendered


def _best_sarm(reward: dict, plan) -> str:
    """`Evaluation.best_sarm_rule`: max held-out AUROC, then min demo MSE, then order in reward_models."""
    names = [n for n in plan.reward_models if n.startswith("sarm_")]

    def key(name):
        held = reward[name]["held_out"]
        auroc, mse = held["auroc_success"], held["demo_mse_clean"]
        return (
            -(auroc if np.isfinite(auroc) else -1.0),
            mse if np.isfinite(mse) else np.inf,
            names.index(name),
        )

    return min(names, key=key)


def _policy_runs(plan, weights: dict, rows, clean, best: str | None) -> dict:
    """method -> train_policy arguments, for every arm of the plan."""
    if plan.version == 1:
        return {
            "bc_all": {"method": "bc"},
            "rabc_sampler": {"method": "sampler", "weights": weights["sarm"][rows]},
            "rabc_loss": {"method": "loss", "weights": weights["sarm"][rows]},
            "bc_clean": {"method": "bc", "episodes": clean},
            "rabc_true_progress": {"method": "sampler", "weights": weights["truth"][rows]},
        }
    runs = {}
    for name in plan.methods:
        if name == "bc_all":
            runs[name] = {"method": "bc"}
        elif name == "bc_clean":
            runs[name] = {"method": "bc", "episodes": clean}
        elif name == "rabc_true_progress":
            runs[name] = {"method": "sampler", "weights": weights["truth"][rows]}
        else:
            _, how, model = name.split("_", 2)  # rabc_{sampler,loss}_{reward model or sarm_best}
            runs[name] = {"method": how, "weights": weights[best if model == "sarm_best" else model][rows]}
    return runs


def run_task(task: str, out: Path, budget: Budget, plan_version: int = 1, worker: int = 0) -> dict | None:
    """One task, start to end. `worker=1` is a helper process on the same `out`: it takes reward models
    and policy runs from the other end of the list (claim files say who does what) and leaves the
    rollouts and results.json to worker 0. Every unit is seeded, so who runs it does not change it."""
    import torch
    from reward_models import reward_metrics, reward_model_specs, train_reward_model  # beside run.py
    from workers import POLL_S, shared  # benchmarks/metaworld/workers.py: a helper may share the task

    from rabc import ProgressTable, RABCWeights, write_progress
    from sarm.data import open_dataset
    from sarm.demo.policy import EVAL_GOAL_SEED, evaluate, train_policy
    from sarm.demo.protocol import DEFAULT_EVALUATION, EVALUATION_V2
    from sarm.demo.protocol import DEFAULT_PROTOCOL as protocol
    from sarm.demo.record import episode_table, progress_by_episode
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features
    from sarm.inference.progress import compute_progress

    plan = EVALUATION_V2 if plan_version == 2 else DEFAULT_EVALUATION
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    timings, cpu, start, cpu_start = {}, {}, time.perf_counter(), _cpu_seconds()
    total = budget.train_episodes + budget.held_out_episodes
    while worker and not (out / "features.ready").exists():  # worker 0 records and extracts
        time.sleep(POLL_S)
    episodes, rendered = _recorded(out, "dataset", task, list(range(total)), protocol)
    held = list(range(budget.train_episodes, total))
    train_ids = list(range(budget.train_episodes))
    bounds = np.cumsum([0] + [len(ep.states) for ep in episodes])
    encoder = load_encoder("pixels")
    cache = extract_features(open_dataset(out / "dataset"), encoder, out / "features", progress=False)
    (out / "features.ready").touch()
    timings["data_s"] = time.perf_counter() - start
    cpu["data_s"] = _cpu_seconds() - cpu_start

    models, reward, predicted = {}, {}, {}
    specs = reward_model_specs(plan)
    order = list(specs)[::-1] if worker else list(specs)
    for name, mine in shared(order, lambda n: (out / f"rm_{n}.done", out / f"rm_{n}.claim")):
        t0, c0 = time.perf_counter(), _cpu_seconds()
        model, path = train_reward_model(out, name, specs[name], cache, train_ids, budget.sarm_steps)
        models[name], predicted[name] = model, progress_by_episode(path, bounds)
        reward[name] = {"held_out": reward_metrics(predicted[name], episodes, held)}
        (out / f"rm_{name}.done").touch()
        if mine:
            timings[f"reward_model_{name}_s"] = time.perf_counter() - t0
            cpu[f"reward_model_{name}_s"] = _cpu_seconds() - c0
            print(f"{task} reward model {name}: {reward[name]['held_out']}", flush=True)
    models = {n: models[n] for n in specs}  # the plan's order, whoever trained them
    reward = {n: reward[n] for n in specs}

    chunk, rows = plan.chunk_size, np.arange(bounds[budget.train_episodes])
    rabc = {
        name: RABCWeights.from_progress(out / f"progress_{name}.parquet", chunk_size=chunk, kappa=plan.kappa)
        for name in models
    }
    best = _best_sarm(reward, plan) if plan.version == 2 else None
    w_sarm = rabc[best or "sarm"]
    truth = ProgressTable(
        np.arange(bounds[-1]),
        np.repeat(np.arange(total), np.diff(bounds)),
        np.concatenate([np.arange(n) for n in np.diff(bounds)]),
        {"sparse": np.concatenate([e.progress for e in episodes])},
    )
    write_progress(out / "progress_truth.parquet", truth)
    w_true = RABCWeights.from_progress(out / "progress_truth.parquet", chunk_size=chunk, kappa=plan.kappa)
    states = np.concatenate([episodes[i].states for i in train_ids])
    actions = np.concatenate([episodes[i].actions for i in train_ids])
    episode_index = np.repeat(np.arange(budget.train_episodes), np.diff(bounds)[: budget.train_episodes])
    clean = np.array([i for i in train_ids if episodes[i].mistake is None and episodes[i].success])
    weights = {name: w.weights for name, w in rabc.items()} | {"truth": w_true.weights}
    runs = _policy_runs(plan, weights, rows, clean, best)
    sweep = {}
    for kappa in plan.kappa_sweep:
        w = w_sarm.with_kappa(kappa)
        sweep[str(kappa)] = {"kappa": w.kappa, "mean_weight": float(w.weights[rows].mean())}
        if str(kappa) != str(plan.kappa):
            runs[f"rabc_sampler_kappa_{kappa}"] = {"method": "sampler", "weights": w.weights[rows]}
    seeds = plan.train_seeds[:1] if budget.quick else plan.train_seeds
    rollouts = 4 if budget.quick else plan.rollouts
    steps = 50 if budget.quick else plan.steps
    policies, t0, c0 = {}, time.perf_counter(), _cpu_seconds()
    done_dir = out / "policies"  # one file per finished (arm, seed): a killed run resumes from there
    done_dir.mkdir(exist_ok=True)
    under = json.loads(json.dumps({"plan": dataclasses.asdict(plan), "budget": dataclasses.asdict(budget)}))
    units = [(name, seed) for name in runs for seed in seeds]
    for (name, seed), mine in shared(
        units[::-1] if worker else units,
        lambda u: (done_dir / f"{u[0]}_seed{u[1]}.json", done_dir / f"{u[0]}_seed{u[1]}.claim"),
    ):
        done, saved = done_dir / f"{name}_seed{seed}.json", done_dir / f"{name}_seed{seed}.pt"
        if mine:
            kwargs = runs[name]
            policy = train_policy(
                states,
                actions,
                episode_index,
                chunk_size=chunk,
                steps=steps,
                batch_size=plan.batch_size,
                seed=seed,
                **kwargs,
            )
            result = evaluate(policy, task, rollouts=rollouts, seed=seed)
            row = {"seed": seed, "success_rate": result["success_rate"], "mean_steps": result["mean_steps"]}
            if name == "bc_all" and seed == seeds[0]:
                torch.save(policy, saved)
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps({"under": under, "result": row}))
            os.replace(tmp, done)  # the other worker never reads half a file
            print(f"{task} {name} seed {seed}: {row['success_rate']:.0%}", flush=True)
    timings["policies_s"] = time.perf_counter() - t0
    cpu["policies_s"] = _cpu_seconds() - c0
    if worker:  # the helper's CPU time joins worker 0's figures; the rollouts and results are worker 0's
        (out / f"cpu_worker{worker}.json").write_text(json.dumps({"cpu_s": cpu, "wall_s": timings}))
        return None
    for name, seed in units:
        finished = json.loads((done_dir / f"{name}_seed{seed}.json").read_text())
        if finished["under"] != under:
            raise SystemExit(f"{done_dir / f'{name}_seed{seed}.json'} was run under another plan: delete it")
        policies.setdefault(name, []).append(finished["result"])
    bc_policy = torch.load(done_dir / f"bc_all_seed{seeds[0]}.pt", weights_only=False)

    # the reward models on rollouts of the BC-all policy (a mix of outcomes)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    rollouts_ep, _ = _recorded(
        out,
        "rollouts",
        task,
        list(range(budget.rollout_episodes)),
        protocol,
        policy=bc_policy,
        goal_seed=EVAL_GOAL_SEED + 999,
    )
    rcache = extract_features(
        open_dataset(out / "rollouts"), encoder, out / "rollout_features", progress=False
    )
    rbounds = np.cumsum([0] + [len(ep.states) for ep in rollouts_ep])
    for name, model in models.items():
        path = compute_progress(model, rcache, out / f"rollout_progress_{name}.parquet", progress=False)
        scores = progress_by_episode(path, rbounds)
        reward[name]["policy_rollouts"] = reward_metrics(scores, rollouts_ep, list(range(len(rollouts_ep))))
    timings["rollout_scoring_s"] = time.perf_counter() - t0
    cpu["rollout_scoring_s"] = _cpu_seconds() - c0
    timings["total_s"] = time.perf_counter() - start
    cpu["total_s"] = _cpu_seconds() - cpu_start
    helpers = sorted(out.glob("cpu_worker*.json"))
    for helper in helpers:  # CPU seconds add up across workers; a stage's wall time is its worker's
        figures = json.loads(helper.read_text())
        for stage, seconds in figures["cpu_s"].items():
            cpu[stage] = cpu.get(stage, 0.0) + seconds
            cpu["total_s"] += seconds
        for stage, seconds in figures["wall_s"].items():
            timings.setdefault(stage, seconds)
    stages = ["data_s", *(f"reward_model_{n}_s" for n in specs), "policies_s", "rollout_scoring_s", "total_s"]
    timings, cpu = ({k: d[k] for k in stages if k in d} for d in (timings, cpu))

    summary = {
        "task": task,
        "protocol": dataclasses.asdict(protocol),
        "evaluation": dataclasses.asdict(plan),
        "budget": dataclasses.asdict(budget),
        "rendered": rendered,
        "episodes": episode_table(episodes, set(held)),
        "reward_models": reward,
        "sarm_best": best,
        "weights": {
            **{n: {"kappa": w.kappa, "mean_weight": float(w.weights[rows].mean())} for n, w in rabc.items()},
            "truth": {"kappa": w_true.kappa, "mean_weight": float(w_true.weights[rows].mean())},
            "kappa_sweep": sweep,
        },
        "policies": policies,
        "timings": timings,
        "cpu_s": cpu,  # CPU seconds (the task's processes and their children): robust to other load
        "workers": 1 + len(helpers),  # processes that shared the task (--helper)
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def main() -> None:
    from sarm.demo.protocol import DEFAULT_PROTOCOL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_PROTOCOL.tasks))
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    parser.add_argument("--report", action="store_true", help="only write the report from results.json files")
    parser.add_argument("--parallel", type=int, default=2, help="tasks run at once (one process each)")
    parser.add_argument("--plan", type=int, choices=(1, 2), default=1, help="evaluation plan (protocol.py)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run this task in this process
    parser.add_argument(
        "--helper",
        action="store_true",
        help="with --one: a second process on the same task, taking work from the other end of its list",
    )
    args = parser.parse_args()
    budget = Budget.small() if args.quick else Budget()
    if args.one:
        run_task(args.one, args.out / args.one, budget, args.plan, worker=int(args.helper))
        return
    if not args.report:
        args.out.mkdir(parents=True, exist_ok=True)
        from workers import run_tasks  # benchmarks/metaworld/workers.py

        extra = (["--quick"] if args.quick else []) + ["--plan", str(args.plan)]
        run_tasks(Path(__file__), args.out, args.tasks, args.parallel, extra)
    from report import write_report  # benchmarks/metaworld/report.py

    print(write_report(args.out, args.tasks))


if __name__ == "__main__":
    main()
