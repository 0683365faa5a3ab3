"""Language negatives: instructions that describe no task of any dataset, whose target progress is 0.

SARM's rewind augmentation pairs some windows with such a text (the paper's language perturbation), so
the model learns to read the instruction. The feature cache encodes these texts once
(`sarm.features.cache`) and `sarm.training.rewind.RewindCollate` draws from them.
"""

from __future__ import annotations

__all__ = ["NEGATIVE_TEXTS"]

_NEGATIVE_VERBS = ("pick up", "push", "fold", "open", "stack", "pour", "wipe", "rotate")
_NEGATIVE_OBJECTS = (
    "the zorblax",
    "the quindle sprocket",
    "a vormish glonk",
    "the plimbet",
    "two snarfles",
    "the wubbling trelk",
    "a frazzled mungo",
    "the yibbet coil",
)
NEGATIVE_TEXTS: tuple[str, ...] = tuple(f"{v} {o}" for v in _NEGATIVE_VERBS for o in _NEGATIVE_OBJECTS)
"""64 fixed instructions (8 manipulation verbs x 8 made-up objects) that describe no real task.

Encode them once with the text encoder used for the task texts and pass the result as
`RewindCollate(negative_text_features=...)` (and the strings as `negative_texts=`). The verbs are
real, so the model must read the object to tell a negative apart; the objects are nonsense words, so
no plausible dataset task matches. Replaces LeRobot's unseeded Faker words with a fixed, reproducible
pool.
"""
