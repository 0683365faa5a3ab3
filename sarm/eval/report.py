"""`evaluate`: reward-model metrics of a progress file, per task and overall, with a verdict.

    voc                  per-episode Spearman between progress and time (GVL / TOPReward's VOC): mean,
                         quantiles; on successful episodes only when outcomes are known
    auroc                of final progress for the outcomes (`success`: {episode: bool})
    paper_rule_accuracy  how often the paper's rule (final > 0.8, last third > 0.6) matches the outcome
    paper_rho            Spearman between final progress and 3-level labels (failure 0, partial 1,
                         success 2) when `levels` is given
    demo_mse             against labels (progress per row, NaN where unlabelled) when given

Every value is None when it cannot be computed. The verdict reads VOC on successful episodes (all
episodes without outcomes): below `VOC_NOISE` (0.5) progress barely follows time in demonstrations
that did make progress, so the deltas RA-BC weights are built from are mostly noise; from
`VOC_GOOD` (0.8) it follows time closely. The thresholds and why: docs/curation.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rabc.metrics import auroc, demo_mse, paper_rule, voc
from rabc.progress_io import ProgressTable

__all__ = ["VOC_GOOD", "VOC_NOISE", "evaluate"]

VOC_NOISE, VOC_GOOD = 0.5, 0.8
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _summary(episodes, v, final, predicted, success, levels, labels_mse) -> dict:
    known = np.array([e in success for e in episodes]) if success else np.zeros(len(episodes), bool)
    outcome = np.array([bool(success.get(e, False)) for e in episodes]) if success else None
    use = known & outcome if success else np.ones(len(episodes), bool)
    vv = v[use & ~np.isnan(v)]
    out = {
        "voc": {
            "mean": _num(vv.mean()) if vv.size else None,
            "quantiles": {str(q): _num(np.quantile(vv, q)) for q in QUANTILES} if vv.size else None,
            "episodes": int(vv.size),
            "on": "successful episodes" if success else "all episodes",
        },
        "demo_mse": labels_mse,
        "auroc": _num(auroc(final[known], outcome[known])) if success else None,
        "paper_rule_accuracy": _num(np.mean(predicted[known] == outcome[known]))
        if success and known.any()
        else None,
        "paper_rho": None,
    }
    if levels:
        lv = np.array([levels.get(e, np.nan) for e in episodes], np.float64)
        ok = ~np.isnan(lv) & ~np.isnan(final)
        if ok.sum() >= 2:
            from scipy.stats import spearmanr  # only with 3-level labels

            out["paper_rho"] = _num(spearmanr(final[ok], lv[ok]).statistic)
    return out


def evaluate(
    table: ProgressTable,
    head: str = "sparse",
    *,
    success: Mapping[int, bool] | None = None,
    levels: Mapping[int, int] | None = None,
    tasks: Mapping[int, str] | None = None,
    labels: np.ndarray | None = None,
) -> dict:
    """Metrics of `table`'s progress (see the module docstring); JSON-ready, None where not computable."""
    p = table.column(head)
    episodes, starts, ends = table.episode_runs()
    eps = episodes.tolist()
    if success:
        unknown = sorted(set(success) - set(eps))
        if unknown:
            raise ValueError(
                f"--success names episode(s) {unknown[:10]} that are not in `{table.source}`; fix the file"
            )
    v = voc(p, starts, ends)
    predicted, final, _ = paper_rule(p, starts, ends)
    mse = None
    if labels is not None:
        mse = _num(demo_mse(p, labels, starts, ends))
    report = _summary(eps, v, final, predicted, success, levels, mse)
    report["num_episodes"] = len(eps)
    report["per_task"] = {}
    if tasks:
        task = np.array([tasks.get(e, "") for e in eps])
        for t in sorted(set(task.tolist())):
            m = task == t
            sub_success = {e: s for e, s in (success or {}).items() if tasks.get(e, "") == t}
            report["per_task"][t] = _summary(
                [e for e, k in zip(eps, m, strict=True) if k],
                v[m],
                final[m],
                predicted[m],
                sub_success or None,
                levels,
                None,
            )
    worst = np.argsort(np.where(np.isnan(v), -np.inf, v))[:5]
    report["worst_voc_episodes"] = [int(episodes[i]) for i in worst]
    report["verdict"] = _verdict(report)
    return report


def _verdict(r: dict) -> str:
    mean, on = r["voc"]["mean"], r["voc"]["on"]
    if mean is None:
        return "no episode has enough known progress to compute VOC: recompute progress"
    if mean < VOC_NOISE:
        text = (
            f"VOC {mean:.2f} on {on}: progress barely follows time; RA-BC weights from this model "
            "will be close to noise: retrain or fix the reward model before training a policy"
        )
    elif mean < VOC_GOOD:
        text = (
            f"VOC {mean:.2f} on {on}: progress follows time loosely; watch the worst episodes "
            f"({r['worst_voc_episodes']}) before trusting the weights"
        )
    else:
        text = f"VOC {mean:.2f} on {on}: progress follows time; the weights can be trusted on this signal"
    if r["auroc"] is not None and r["auroc"] < 0.7:
        text += f"; AUROC {r['auroc']:.2f}: final progress separates successes from failures poorly"
    return text
