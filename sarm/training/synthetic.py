"""Synthetic multi-stage episodes with features that encode (stage, tau): for tests, benchmarks, docs.

Each episode walks through the stages in order; each stage lasts `mean_duration * U(0.4, 1.6)` frames,
so the same state sits at very different fractions of elapsed time across episodes (the situation where
linear-time labels are noisy and stage-aware labels are not). The frame feature blends a code for the
current stage into the code of the next, `code[k] * (1 - tau) + code[k + 1] * tau`, plus noise; the
state does the same in a smaller space. These features are NOT semantically meaningful images: they
only give a model something learnable without a video encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sarm.labels.proportions import temporal_proportions
from sarm.labels.schema import Span, StageSchema

__all__ = ["SyntheticEpisodes", "synthetic_episodes"]


@dataclass(frozen=True)
class SyntheticEpisodes:
    features: np.ndarray  # float32 (N, feature_dim), episodes stored one after another
    state: np.ndarray  # float32 (N, state_dim)
    lengths: np.ndarray  # int64 (M,)
    spans: list[list[Span]]  # per episode, inclusive frame spans relative to the episode
    tasks: list[str]  # per episode
    schema: StageSchema  # stage names with the paper's Eq. 1 proportions over these episodes

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def targets(self) -> np.ndarray:
        """float64 (N,) y = stage + tau for every frame (LeRobot's edge rules)."""
        return np.concatenate(
            [self.schema.targets(s, int(n)) for s, n in zip(self.spans, self.lengths, strict=True)]
        )

    def progress(self) -> np.ndarray:
        """float64 (N,) ground-truth normalised progress (Formula 2)."""
        return self.schema.progress(self.targets())


def synthetic_episodes(
    num_episodes: int = 40,
    *,
    stages: Sequence[str] = ("reach", "grasp", "place"),
    mean_durations: Sequence[int] = (30, 20, 50),
    feature_dim: int = 16,
    state_dim: int = 4,
    noise: float = 0.1,
    task: str = "synthetic task",
    seed: int = 0,
) -> SyntheticEpisodes:
    if len(stages) != len(mean_durations):
        raise ValueError(
            f"stages ({len(stages)}) and mean_durations ({len(mean_durations)}) differ in length"
        )
    rng = np.random.default_rng(seed)
    k = len(stages)
    codes = rng.standard_normal((k + 1, feature_dim)).astype(np.float32)
    state_codes = rng.standard_normal((k + 1, state_dim)).astype(np.float32)
    features, states, lengths, spans = [], [], [], []
    for _ in range(num_episodes):
        durations = np.maximum(2, np.round(np.asarray(mean_durations) * rng.uniform(0.4, 1.6, k))).astype(int)
        stage = np.repeat(np.arange(k), durations)
        start = np.concatenate([[0], np.cumsum(durations)[:-1]])
        tau = (np.arange(len(stage)) - start[stage]) / (durations[stage] - 1)
        mix = tau[:, None].astype(np.float32)
        features.append(
            codes[stage] * (1 - mix)
            + codes[stage + 1] * mix
            + noise * rng.standard_normal((len(stage), feature_dim)).astype(np.float32)
        )
        states.append(
            state_codes[stage] * (1 - mix)
            + state_codes[stage + 1] * mix
            + noise * rng.standard_normal((len(stage), state_dim)).astype(np.float32)
        )
        lengths.append(len(stage))
        spans.append([Span(stages[j], int(start[j]), int(start[j] + durations[j] - 1)) for j in range(k)])
    proportions = temporal_proportions(list(zip(spans, lengths, strict=True)), names=list(stages))
    return SyntheticEpisodes(
        features=np.concatenate(features),
        state=np.concatenate(states),
        lengths=np.asarray(lengths, dtype=np.int64),
        spans=spans,
        tasks=[task] * num_episodes,
        schema=StageSchema(list(proportions), list(proportions.values())),
    )
