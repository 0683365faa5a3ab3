"""`evaluate`: reward-model metrics of a progress file, per task and overall, with a verdict.

    voc                  per-episode Spearman between progress and time (GVL / TOPReward's VOC): mean,
                         quantiles; on successful episodes only when outcomes are known
    auroc                of final progress for the outcomes (`success`: {episode: bool})
    auroc_length         of episode length alone (rows in the file), shorter = success: the baseline
    auroc_length_controlled  of final progress among episodes of matched length only (length strata,
                         `rabc.metrics.auroc_length_controlled`); None when no stratum holds both outcomes
    paper_rule_accuracy  how often the paper's rule (final > 0.8, last third > 0.6) matches the outcome
    paper_rho            Spearman between final progress and 3-level labels (failure 0, partial 1,
                         success 2) when `levels` is given
    demo_mse, pearson,   predicted against label progress (`labels`: one value per row, NaN where
    spearman             unlabelled), pooled over the labelled frames (every frame: `every=1`)

Every value is None when it cannot be computed. The verdict reads VOC on successful episodes (all
episodes without outcomes): below `VOC_NOISE` (0.5) progress barely follows time in demonstrations
that did make progress, so the deltas RA-BC weights are built from are mostly noise; from
`VOC_GOOD` (0.8) it follows time closely. With outcomes it also says whether final progress adds
anything beyond episode length: not when the length-controlled AUROC is below 0.5 + `LENGTH_MARGIN`
(0.1), unknown when it cannot be computed. The thresholds and why: docs/curation.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from rabc.metrics import (
    auroc,
    auroc_length,
    auroc_length_controlled,
    demo_mse,
    grouped_pearson,
    grouped_spearman,
    paper_rule,
    voc,
)
from rabc.progress_io import ProgressTable

__all__ = ["LENGTH_MARGIN", "VOC_GOOD", "VOC_NOISE", "EpisodeValues", "episode_values", "evaluate"]

VOC_NOISE, VOC_GOOD = 0.5, 0.8
LENGTH_MARGIN = 0.1  # a length-controlled AUROC below 0.5 + this: nothing beyond episode length
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


class EpisodeValues(NamedTuple):
    """Per-episode values of one progress head (episodes in file order)."""

    episodes: np.ndarray  # int64 (E,)
    starts: np.ndarray  # int64 (E,) first row of each episode
    ends: np.ndarray  # int64 (E,) one past its last row
    voc: np.ndarray  # float64 (E,), NaN where undefined
    final: np.ndarray  # float64 (E,) last known progress
    predicted: np.ndarray  # bool (E,) the paper's rule


def episode_values(table: ProgressTable, head: str = "sparse") -> EpisodeValues:
    """VOC, final progress and the paper's rule per episode of `table`'s `head`."""
    p = table.column(head)
    episodes, starts, ends = table.episode_runs()
    predicted, final, _ = paper_rule(p, starts, ends)
    return EpisodeValues(episodes, starts, ends, voc(p, starts, ends), final, predicted)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _label_metrics(p: np.ndarray, labels: np.ndarray, rows: np.ndarray, starts) -> dict:
    """Demo MSE, Pearson and Spearman of predicted vs label progress over the labelled `rows`."""
    use = rows & np.isfinite(p) & np.isfinite(labels)
    n = int(use.sum())
    one = (np.zeros(1, np.int64), np.array([n]))
    out = {"demo_mse": _num(demo_mse(p[use], labels[use], *one))}
    out["pearson"] = _num(grouped_pearson(p[use], labels[use], *one)[0]) if n else None
    out["spearman"] = _num(grouped_spearman(p[use], labels[use], *one)[0]) if n else None
    counts = np.add.reduceat(use.astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
    out["label_episodes"], out["label_frames"] = int((counts > 0).sum()), n
    return out


def _summary(ev: EpisodeValues, m: np.ndarray, success, levels) -> dict:
    episodes = ev.episodes[m].tolist()
    v, final, predicted = ev.voc[m], ev.final[m], ev.predicted[m]
    known = np.array([e in success for e in episodes], bool) if success else np.zeros(len(episodes), bool)
    outcome = np.array([bool(success.get(e, False)) for e in episodes], bool) if success else None
    use = known & outcome if success else np.ones(len(episodes), bool)
    vv = v[use & ~np.isnan(v)]
    out = {
        "voc": {
            "mean": _num(vv.mean()) if vv.size else None,
            "quantiles": {str(q): _num(np.quantile(vv, q)) for q in QUANTILES} if vv.size else None,
            "episodes": int(vv.size),
            "on": "successful episodes" if success else "all episodes",
        },
        "demo_mse": None,
        "pearson": None,
        "spearman": None,
        "auroc": _num(auroc(final[known], outcome[known])) if success else None,
        "auroc_length": None,
        "auroc_length_controlled": None,
        "paper_rule_accuracy": _num(np.mean(predicted[known] == outcome[known]))
        if success and known.any()
        else None,
        "paper_rho": None,
    }
    if success:  # on the episodes AUROC uses: known outcome and final progress
        scored = known & ~np.isnan(final)
        length = (ev.ends - ev.starts)[m][scored]
        out["auroc_length"] = _num(auroc_length(length, outcome[scored]))
        out["auroc_length_controlled"] = _num(auroc_length_controlled(final[scored], length, outcome[scored]))
    if levels:
        lv = np.array([levels.get(e, np.nan) for e in episodes], np.float64)
        ok = ~np.isnan(lv) & ~np.isnan(final)
        if ok.sum() >= 2 and np.ptp(final[ok]) > 0 and np.ptp(lv[ok]) > 0:  # else undefined
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
    ev = episode_values(table, head)
    eps = ev.episodes.tolist()
    if success:
        unknown = sorted(set(success) - set(eps))
        if unknown:
            raise ValueError(
                f"--success names episode(s) {unknown[:10]} that are not in `{table.source}`; fix the file"
            )
    p = table.column(head).astype(np.float64)
    if labels is not None:
        labels = np.asarray(labels, np.float64)
        if labels.shape != p.shape:
            raise ValueError(f"labels have shape {labels.shape} but `{table.source}` has {p.shape[0]} rows")
    every = np.ones(len(eps), bool)
    report = _summary(ev, every, success, levels)
    if labels is not None:
        report |= _label_metrics(p, labels, np.ones(len(p), bool), ev.starts)
    report["num_episodes"] = len(eps)
    report["per_task"] = {}
    if tasks:
        task = np.array([tasks.get(e, "") for e in eps])
        for t in sorted(set(task.tolist())):
            m = task == t
            sub_success = {e: s for e, s in (success or {}).items() if tasks.get(e, "") == t}
            report["per_task"][t] = _summary(ev, m, sub_success or None, levels)
            if labels is not None:
                rows = np.repeat(m, ev.ends - ev.starts)
                report["per_task"][t] |= _label_metrics(p, labels, rows, ev.starts)
    worst = np.argsort(np.where(np.isnan(ev.voc), -np.inf, ev.voc))[:5]
    report["worst_voc_episodes"] = [int(ev.episodes[i]) for i in worst]
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
    text += _length_verdict(r)
    if r.get("pearson") is not None and r["pearson"] < VOC_NOISE:
        text += f"; Pearson {r['pearson']:.2f} against the labels: the model does not reproduce its labels"
    return text


def _length_verdict(r: dict) -> str:
    """Whether final progress separates the outcomes beyond what episode length alone does."""
    plain, length, controlled = r["auroc"], r["auroc_length"], r["auroc_length_controlled"]
    if plain is None:
        return ""
    if controlled is None:
        return (
            f"; length-controlled AUROC n/a: no episodes of matched length include both a success and a "
            f"failure (episode length alone: AUROC {length:.2f}), so final progress cannot be shown to add "
            "anything beyond episode length on these episodes"
        )
    if controlled < 0.5 + LENGTH_MARGIN:
        return (
            f"; length-controlled AUROC {controlled:.2f} (plain {plain:.2f}, episode length alone "
            f"{length:.2f}): among episodes of matched length final progress does not separate successes "
            "from failures; the model adds nothing beyond episode length"
        )
    return (
        f"; length-controlled AUROC {controlled:.2f} (episode length alone {length:.2f}): final progress "
        "separates successes from failures among episodes of matched length, beyond what length tells"
    )
