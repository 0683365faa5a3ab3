"""Drop lists from episode scores: explicit rules, a reason per dropped episode, LeRobot's command.

    rules = ["predicted-failures", "worst:5", "below:0.3", "max-drop:0.2", "list:bad.json"]
    result = curate(score_episodes("sarm_progress.parquet", chunk_size=50), rules)
    result["drop"], result["keep"], result["reasons"], result["lerobot_command"]

Rules (an episode is dropped when any rule names it; nothing is dropped without a rule):
    predicted-failures  the paper's rule predicts failure (`predicted_success` false)
    worst:K             the K lowest scores, per task when tasks are known
    below:SCORE         score < SCORE
    max-drop:X          max_drop > X (a regression larger than X)
    list:FILE           the episodes of FILE: a JSON list, a JSON object with "drop" (this output),
                        or integers separated by spaces, commas or newlines
    manual              episodes picked by hand, given as `curate(..., manual={episode: why})` (the
                        rule `sarm explore` exports; added to the rules when `manual` is given)
Episodes with unknown progress (NaN score) are dropped only by `predicted-failures` or `list:`.
`read_drop_list` reads a drop list back for `RABCWeights.from_progress(drop_episodes=...)`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rabc.episodes import EpisodeScores

__all__ = ["RULES", "curate", "lerobot_command", "read_drop_list"]

RULES = ("predicted-failures", "worst:K", "below:SCORE", "max-drop:X", "list:FILE")


def read_drop_list(path) -> list[int]:
    """Episode indices from a drop file (see the module docstring), sorted, repeats removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"drop list `{path}` does not exist; write one with `rabc curate`")
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        data = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if isinstance(data, dict):
        if "drop" not in data:
            raise ValueError(
                f"drop list `{path}` is a JSON object without a `drop` key; write it with `rabc curate`"
            )
        data = data["drop"]
    if not isinstance(data, list):
        raise ValueError(f"drop list `{path}` should hold a list of episode indices")
    try:
        out = [int(e) for e in data]
    except (TypeError, ValueError):
        raise ValueError(
            f"drop list `{path}` holds something that is not an episode index (e.g. {data[:3]!r}); "
            "list integers"
        ) from None
    if any(e < 0 for e in out):
        raise ValueError(f"drop list `{path}` holds negative episode indices; episode indices are >= 0")
    return sorted(set(out))


def _number(rule: str, text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"--drop {rule}: {text!r} is not a {'whole number' if kind is int else 'number'}"
        ) from None


def curate(scores: EpisodeScores, rules, repo_id: str = "<repo_id>", manual=None) -> dict:
    """Apply `rules` to `scores`; returns the JSON-ready result (drop, keep, rules, reasons, command).

    `manual` ({episode: why}, `why` may be empty) drops hand-picked episodes under the rule `manual`."""
    rules = list(rules)
    if manual is not None and "manual" not in rules:
        rules.append("manual")
    if not rules:
        raise ValueError(
            "no --drop rule given: dropping is always explicit; choose among " + ", ".join(RULES)
        )
    episodes = scores["episode_index"]
    known = set(episodes.tolist())
    score = scores["score"]
    reasons: dict[int, list[str]] = {}

    def add(mask: np.ndarray, why) -> None:
        for i in np.flatnonzero(mask):
            reasons.setdefault(int(episodes[i]), []).append(why(i) if callable(why) else why)

    for rule in rules:
        name, _, arg = rule.partition(":")
        if rule == "predicted-failures":
            add(
                ~scores["predicted_success"],
                lambda i: f"predicted failure (final progress {scores['final_progress'][i]:.3g})",
            )
        elif name == "worst" and arg:
            k = _number(rule, arg, int)
            if k <= 0:
                raise ValueError(f"--drop {rule}: K should be a positive integer")
            mask = np.zeros(len(episodes), bool)
            task = scores["task"].astype(str)
            for t in np.unique(task):
                rows = np.flatnonzero((task == t) & ~np.isnan(score))
                worst = rows[np.lexsort((episodes[rows], score[rows]))][:k]
                mask[worst] = True
            per = " in its task" if scores["task"][0] is not None else ""
            add(
                mask,
                lambda i, k=k, per=per: (
                    f"worst:{k}: score {score[i]:.3g}, rank {int(scores['rank'][i])}{per}"
                ),
            )
        elif name == "below" and arg:
            x = _number(rule, arg)
            add(score < x, lambda i, x=x: f"below:{x:g}: score {score[i]:.3g}")
        elif name == "max-drop" and arg:
            x = _number(rule, arg)
            add(scores["max_drop"] > x, lambda i, x=x: f"max-drop:{x:g}: drop {scores['max_drop'][i]:.3g}")
        elif name == "list" and arg:
            listed = read_drop_list(arg)
            unknown = [e for e in listed if e not in known]
            if unknown:
                raise ValueError(
                    f"--drop {rule}: episode(s) {unknown[:10]} ({len(unknown)} in all) are not in "
                    f"the progress file (it has {len(known)} episodes, {min(known)}..{max(known)})"
                    "; fix the list"
                )
            add(np.isin(episodes, listed), f"listed in {arg}")
        elif rule == "manual":
            picked = {int(e): str(why or "") for e, why in (manual or {}).items()}
            if manual is None:
                raise ValueError("--drop manual: hand-picked drops come from `sarm explore`; use list:FILE")
            if unknown := sorted(set(picked) - known):
                raise ValueError(
                    f"manual drops name episode(s) {unknown[:10]} ({len(unknown)} in all) that are not in "
                    f"the progress file ({len(known)} episodes); pick episodes it holds"
                )
            reason = {e: f"manual: {why}" if why else "manual" for e, why in picked.items()}
            add(np.isin(episodes, list(picked)), lambda i, reason=reason: reason[int(episodes[i])])
        else:
            raise ValueError(f"--drop {rule!r} is not a rule; rules are {', '.join(RULES)}")
    drop = sorted(reasons)
    keep = sorted(known - set(drop))
    return {
        "rules": rules,
        "drop": drop,
        "keep": keep,
        "reasons": {str(e): reasons[e] for e in drop},
        "num_episodes": len(known),
        "lerobot_command": lerobot_command(drop, repo_id) if drop else None,
    }


def lerobot_command(drop: list[int], repo_id: str = "<repo_id>") -> str:
    """LeRobot's command line that deletes `drop` into a new dataset (the original is left as it is)."""
    return (
        f"lerobot-edit-dataset --repo_id {repo_id} --new_repo_id {repo_id}_curated "
        f'--operation.type delete_episodes --operation.episode_indices "{list(drop)}"'
    )
