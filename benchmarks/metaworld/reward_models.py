"""The Meta-World benchmark's reward models: which to train (per plan), how, and their held-out metrics.

Shared by `run.py` (the whole benchmark) and `length_check.py` (AUROC against episode length).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REWARD_MODELS = {  # name -> (annotated stages?, rewind probability)
    "sarm": (True, 0.8),
    "linear_time": (False, 0.0),
    "rewind_single": (False, 0.8),
}


def reward_metrics(predicted, episodes, ids) -> dict:
    """VOC, demo MSE (clean successes), AUROC of final progress and rule accuracy over episodes `ids`."""
    from sarm.demo.metrics import auroc, demo_mse, paper_rule, success_scores, voc

    clean = [i for i in ids if episodes[i].mistake is None and episodes[i].success]
    labels = np.array([episodes[i].success for i in ids])
    return {
        "voc": voc([predicted[i] for i in clean]) if clean else float("nan"),
        "demo_mse_clean": demo_mse(
            [predicted[i] for i in clean], [episodes[i].progress for i in clean], every=10
        )
        if clean
        else float("nan"),
        "auroc_success": auroc(success_scores([predicted[i] for i in ids]), labels),
        "paper_rule_accuracy": float(np.mean([paper_rule(predicted[i]) == episodes[i].success for i in ids])),
        "episodes": len(ids),
        "successes": int(labels.sum()),
    }


def reward_model_specs(plan) -> dict[str, dict]:
    """name -> how to train it: annotated stages?, rewind probability, label policies (v2)."""
    if plan.version == 1:
        return {name: {"staged": st, "rewind": rw} for name, (st, rw) in REWARD_MODELS.items()}
    from sarm.demo.protocol import LABEL_POLICIES, sarm_model_name

    specs = {
        sarm_model_name(m, f): {"staged": True, "rewind": 0.8, "mistakes": m, "failures": f}
        for m, f in LABEL_POLICIES
    }
    specs["linear_time"] = {"staged": False, "rewind": 0.0}
    specs["rewind_single"] = {"staged": False, "rewind": 0.8}
    return {name: specs[name] for name in plan.reward_models}


def train_reward_model(out: Path, name: str, spec: dict, cache, train_ids: list[int], steps: int):
    """Train reward model `name` (`reward_model_specs`) on the training episodes of `out / "dataset"`
    only, then score every cached frame: (model, path of `progress_<name>.parquet`)."""
    from sarm.demo.config import REWARD_MODEL_SIZE, reward_model_config
    from sarm.inference.progress import compute_progress
    from sarm.labels.annotations import read_lerobot_annotations
    from sarm.labels.records import read_mistakes, read_outcomes
    from sarm.training.from_cache import train_from_cache

    train = set(train_ids)
    spans = read_lerobot_annotations(out / "dataset", head="sparse")
    annotations = {"sparse": {e: s for e, s in spans.items() if e in train}} if spec["staged"] else {}
    config = reward_model_config(steps, rewind_probability=spec["rewind"])
    labels = {}
    if "mistakes" in spec:  # v2: the protocol's record of injected mistakes, the success flags
        labels = dict(mistakes=spec["mistakes"], failures=spec["failures"])
        labels["mistake_spans"] = {e: m for e, m in read_mistakes(out / "dataset").items() if e in train}
        labels["outcomes"] = {e: o for e, o in read_outcomes(out / "dataset").items() if e in train}
    model, _, _ = train_from_cache(  # held-out episodes never train any reward model
        cache,
        out / f"rm_{name}",
        episodes=train_ids,
        annotations=annotations,
        config=config,
        model_overrides=REWARD_MODEL_SIZE,
        progress=False,
        **labels,
    )
    path = compute_progress(model.eval(), cache, out / f"progress_{name}.parquet", progress=False)
    return model, path
