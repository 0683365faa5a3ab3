"""`RewindCollate`: batches `WindowDataset` samples with per-sample rewind and language negatives.

    collate = RewindCollate(task_features, negative_text_features=encode(NEGATIVE_TEXTS), seed=0)
    loader = DataLoader(train_windows, batch_size=32, sampler=sampler, collate_fn=collate)
    for epoch in range(epochs):
        collate.set_epoch(epoch)  # before creating the loader's iterator (see `set_epoch`)
        for batch in loader:
            out = model(batch["text_features"], batch["video_features"], batch["state_features"],
                        batch["lengths"])
    eval_collate = RewindCollate(task_features, rewind_probability=0.0, language_negative_probability=0.0)

Rewind (SARM Sec. 1.5, from ReWiND): the window is followed by frames stepping backwards from the
anchor, so the model sees progress going down. Language negatives: the task text is replaced by a
text that does not describe the video and every target becomes 0. Unlike LeRobot, every coin is
drawn per sample from `np.random.default_rng([seed, epoch, key])`, rewound slots carry the labels of
the frames they show, and each sample keeps its own task text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["RewindCollate"]


_NUM_COINS = 5  # rewind?, rewind length, negative?, negative source, negative pick: always all drawn


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} should be a probability in [0, 1], but got {name}={value!r}")
    return float(value)


class RewindCollate:
    r"""`collate_fn` for `WindowDataset` items: rewind slots, language negatives, per-sample task text.

    Args:
        task_features: task text -> `(E,)` text feature, covering every task of the dataset.
        negative_text_features: `(M, E)` pool of texts that match no task (e.g. the encoded
            `NEGATIVE_TEXTS`), or None.
        negative_texts: the M strings behind `negative_text_features`, reported in `batch["tasks"]`;
            default `"<negative j>"`.
        rewind_probability: chance that a sample with `rewind_available > 0` is rewound.
        language_negative_probability: chance that a sample becomes a language negative.
        seed: non-negative int; with `epoch` and the sample's `key` it fixes every choice.

    Per sample b (with n = observation slots, R = max rewind steps, T = n + R):
        * rewind: with probability `rewind_probability`, when `rewind_available > 0`, draw r uniformly
          in `1..rewind_available`; slots `n .. n + r - 1` get `rewind_video[:r]`, `rewind_state[:r]`
          and `rewind_targets[:r]` (the features and the labels of the same frames). Otherwise r = 0.
          `lengths[b] = n + r`; slots `>= lengths[b]` are zero in features, state and targets.
        * language negative: with probability `language_negative_probability`, the text becomes
          another task's (uniform over the other keys of `task_features`) or a row of the negative
          pool (uniform); when both sources exist one of them is picked with probability 1/2 first.
          All targets of the sample (every slot, every head) become 0 and `negative[b]` is True.
          Rewind still applies to the features and `lengths`.
        * otherwise the text is `task_features[item["task"]]`, the sample's own task.

    Determinism: each sample draws exactly five uniforms from `np.random.default_rng([seed, epoch,
    key])`, whatever the probabilities, so the outcome depends only on `(seed, epoch, key)`: not on
    batch composition, batch size, `num_workers` or the global RNGs (never read or advanced). A key
    drawn twice in one epoch (a sampler with replacement) gets the same augmentation both times.
    `set_epoch` must be called before the DataLoader's iterator is created: workers copy the collate
    when they start, so with `persistent_workers=True` they keep the epoch they started with.

    Returns a dict: "video_features" `(B, T, C, E)`, "state_features" `(B, T, S)`, "lengths" `(B,)`
    int64, "targets" {head: `(B, T)`}, "text_features" `(B, E)`, "tasks" (the text fed, per sample),
    "negative" `(B,)` bool, "rewind_steps" `(B,)` int64, and "key", "frame", "episode" `(B,)` int64.
    """

    def __init__(
        self,
        task_features: Mapping[str, torch.Tensor],
        *,
        negative_text_features: torch.Tensor | None = None,
        negative_texts: Sequence[str] | None = None,
        rewind_probability: float = 0.8,
        language_negative_probability: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.rewind_probability = _probability("rewind_probability", rewind_probability)
        self.language_negative_probability = _probability(
            "language_negative_probability", language_negative_probability
        )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed should be a non-negative integer, but got seed={seed!r}")
        self.seed, self.epoch = int(seed), 0

        if not task_features:
            raise ValueError("task_features should map every task text to its (E,) feature, but it is empty")
        self.task_names = list(task_features)
        rows = [torch.as_tensor(task_features[name]).detach() for name in self.task_names]
        if any(row.ndim != 1 or row.shape != rows[0].shape for row in rows):
            shapes = {name: tuple(row.shape) for name, row in zip(self.task_names, rows, strict=True)}
            raise ValueError(
                f"task_features should all be (E,) vectors of one width, but got shapes {shapes}"
            )
        self.task_table = torch.stack(rows).to(torch.float32)  # (K, E)
        self._task_row = {name: k for k, name in enumerate(self.task_names)}

        self.negative_table: torch.Tensor | None = None
        if negative_text_features is not None:
            neg = torch.as_tensor(negative_text_features).detach().to(torch.float32)
            if neg.ndim != 2 or neg.shape[0] == 0 or neg.shape[1] != self.task_table.shape[1]:
                raise ValueError(
                    f"negative_text_features should be (M, E) with M >= 1 and E = {self.task_table.shape[1]} "
                    f"(the task feature width), but got shape {tuple(neg.shape)}"
                )
            self.negative_table = neg
        if negative_texts is not None:
            if self.negative_table is None or len(negative_texts) != self.negative_table.shape[0]:
                rows_given = None if self.negative_table is None else self.negative_table.shape[0]
                raise ValueError(
                    f"negative_texts should name each row of negative_text_features ({rows_given} rows), "
                    f"but got {len(negative_texts)} texts"
                )
        self.negative_texts = None if negative_texts is None else list(negative_texts)
        no_source = len(self.task_names) < 2 and self.negative_table is None
        if self.language_negative_probability > 0 and no_source:
            raise ValueError(
                f"language_negative_probability={self.language_negative_probability} needs texts that do not "
                f"describe the sample, but task_features has a single task ({self.task_names[0]!r}) and "
                "negative_text_features is None; pass negative_text_features (e.g. your text encoder's "
                "features of sarm.labels.negatives.NEGATIVE_TEXTS) or set language_negative_probability=0"
            )

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch that, with the seed and each sample's key, fixes every random choice."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"epoch should be a non-negative integer, but got epoch={epoch!r}")
        self.epoch = int(epoch)

    def _own_row(self, task: str) -> int:
        if task not in self._task_row:
            raise ValueError(
                f"task {task!r} has no entry in task_features; known tasks: {self.task_names}. "
                "Encode every task text of the dataset and pass them all"
            )
        return self._task_row[task]

    def _negative(self, own: int, u_source: float, u_pick: float) -> tuple[torch.Tensor, str]:
        others = len(self.task_names) - 1
        use_pool = self.negative_table is not None and (others == 0 or u_source < 0.5)
        if use_pool:
            j = min(int(u_pick * self.negative_table.shape[0]), self.negative_table.shape[0] - 1)
            text = self.negative_texts[j] if self.negative_texts is not None else f"<negative {j}>"
            return self.negative_table[j], text
        k = min(int(u_pick * others), others - 1)
        k += k >= own  # skip the sample's own task
        return self.task_table[k], self.task_names[k]

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if len(items) == 0:
            raise ValueError("RewindCollate got an empty batch")
        heads = set(items[0]["targets"])
        for item in items:
            if set(item["targets"]) != heads or set(item["rewind_targets"]) != heads:
                raise ValueError(
                    f"every item should carry the same target heads, but got {sorted(item['targets'])} "
                    f"and {sorted(heads)}"
                )
        video = torch.stack([item["video"] for item in items]).to(torch.float32)  # (B, n, C, E)
        state = torch.stack([item["state"] for item in items]).to(torch.float32)  # (B, n, S)
        rewind_video = torch.stack([item["rewind_video"] for item in items]).to(torch.float32)  # (B, R, C, E)
        rewind_state = torch.stack([item["rewind_state"] for item in items]).to(torch.float32)  # (B, R, S)
        batch, n, max_rewind = video.shape[0], video.shape[1], rewind_video.shape[1]

        steps = torch.zeros(batch, dtype=torch.int64)
        negative = torch.zeros(batch, dtype=torch.bool)
        text = self.task_table.new_empty(batch, self.task_table.shape[1])
        tasks: list[str] = []
        for b, item in enumerate(items):
            own = self._own_row(item["task"])
            u = np.random.default_rng([self.seed, self.epoch, int(item["key"])]).random(_NUM_COINS)
            available = int(item["rewind_available"])
            if not 0 <= available <= max_rewind:
                raise ValueError(
                    f"rewind_available={available} is outside [0, {max_rewind}] for key {item['key']}"
                )
            if available > 0 and u[0] < self.rewind_probability:
                steps[b] = 1 + min(int(u[1] * available), available - 1)
            if u[2] < self.language_negative_probability:
                negative[b] = True
                text[b], name = self._negative(own, u[3], u[4])
                tasks.append(name)
            else:
                text[b] = self.task_table[own]
                tasks.append(item["task"])

        used = torch.arange(max_rewind)[None, :] < steps[:, None]  # (B, R) rewind slots shown
        # where, not a product: unused slots are exactly zero even if their source rows are not finite
        rewind_video = torch.where(used[:, :, None, None], rewind_video, 0.0)
        rewind_state = torch.where(used[:, :, None], rewind_state, 0.0)
        # negatives: every slot of every head becomes 0
        targets = {}
        for head in sorted(heads):
            obs = torch.stack([item["targets"][head] for item in items]).to(torch.float32)  # (B, n)
            rew = torch.stack([item["rewind_targets"][head] for item in items]).to(torch.float32)  # (B, R)
            full = torch.cat([obs, torch.where(used, rew, 0.0)], dim=1)
            targets[head] = torch.where(negative[:, None], 0.0, full)
        return {
            "video_features": torch.cat([video, rewind_video], dim=1),
            "state_features": torch.cat([state, rewind_state], dim=1),
            "lengths": n + steps,
            "targets": targets,
            "text_features": text,
            "tasks": tasks,
            "negative": negative,
            "rewind_steps": steps,
            "key": torch.tensor([int(item["key"]) for item in items], dtype=torch.int64),
            "frame": torch.tensor([int(item["frame"]) for item in items], dtype=torch.int64),
            "episode": torch.tensor([int(item["episode"]) for item in items], dtype=torch.int64),
        }
