"""The SARM model: a stage transformer and a tau transformer over per-frame features.

Dimension letters:
    b batch   t frame slots   n cameras   e feature width   s state width   d model width
    k stages  h heads ("sparse", "dense")   r token streams (cameras + language + state [+ stage])

Both transformers see the same token streams, laid out stream-major like LeRobot:
[camera_1 x t, ..., camera_n x t, language x t, state x t (, stage prior x t)]. A learned vector marks
slot 0 of every camera (the only positional signal, as in ReWiND, so the model cannot read progress
off the slot number). Per slot, the streams' outputs are concatenated and fused (LayerNorm, Linear,
ReLU); the stage model then gives stage logits per head, the tau model, conditioned on a one-hot stage,
gives the progress inside the stage. Normalised progress is P[k] + tau * (P[k+1] - P[k]) (Formula 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from sarm.model.config import SARMConfig
from sarm.model.hub import HubMixin

__all__ = ["SARM", "HeadOutput", "Prediction"]


@dataclass(frozen=True)
class HeadOutput:
    """Training outputs of one head."""

    stage_logits: Tensor  # (b, t, k)
    tau: Tensor  # (b, t) in (0, 1), conditioned on the stage prior


@dataclass(frozen=True)
class Prediction:
    """Inference outputs of one head, for every frame slot (slots >= lengths are padding)."""

    progress: Tensor  # (b, t) normalised progress in [0, 1]
    stage_probs: Tensor  # (b, t, k) stage probabilities (0 for stages the task does not have)
    stage: Tensor  # (b, t) argmax stage
    tau: Tensor  # (b, t) progress inside the argmax stage


class _Estimator(nn.Module):
    """One transformer over camera, language, state (and optionally stage-prior) token streams."""

    def __init__(self, config: SARMConfig, *, head_sizes: dict[str, int], stage_prior: bool):
        super().__init__()
        d = config.hidden_dim
        self.width = d
        self.attention = config.attention
        self.lang_proj = nn.Linear(config.text_dim, d)
        self.state_proj = nn.Linear(config.max_state_dim, d)
        if config.num_cameras:  # a state-only model has no camera stream (no unused parameters for DDP)
            self.visual_proj = nn.Linear(config.image_dim, d)
            self.first_pos = nn.Parameter(torch.zeros(1, d))
        layer = nn.TransformerEncoderLayer(d, config.num_heads, 4 * d, config.dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        streams = config.num_cameras + 2 + int(stage_prior)
        self.fusion_backbone = nn.Sequential(nn.LayerNorm(streams * d), nn.Linear(streams * d, d), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(d, size) for name, size in head_sizes.items()})

    def _masks(self, streams: int, slots: int, lengths: Tensor) -> tuple[Tensor, Tensor]:
        device = lengths.device
        time = torch.arange(streams * slots, device=device) % slots  # slot of each stream-major token
        if self.attention == "lerobot":  # triangular over the flattened streams (LeRobot's layout)
            blocked = torch.ones(len(time), len(time), dtype=torch.bool, device=device).triu(1)
        else:  # temporally causal: a token at slot t sees every stream at slots <= t
            blocked = time[None, :] > time[:, None]
        padding = time[None, :] >= lengths[:, None]  # (b, r*t)
        return blocked, padding

    def forward(
        self, video: Tensor, text: Tensor, state: Tensor, lengths: Tensor, prior: Tensor | None = None
    ) -> Tensor:
        """video (b, n, t, e), text (b, e) or (b, t, e), state (b, t, s), prior (b, t, k) -> (b, t, d)."""
        t = video.shape[2]
        streams = []
        if video.shape[1]:
            vis = self.visual_proj(video)  # (b, n, t, d)
            vis = torch.cat([vis[:, :, :1] + self.first_pos, vis[:, :, 1:]], dim=2)  # mark slot 0
            streams.append(vis)
        lang = self.lang_proj(text)
        lang = lang[:, None] if lang.dim() == 3 else repeat(lang, "b d -> b 1 t d", t=t)
        streams += [lang, self.state_proj(state)[:, None]]
        if prior is not None:  # one-hot stage, zero-padded to the model width (no learned projection)
            streams.append(F.pad(prior, (0, self.width - prior.shape[-1]))[:, None])
        x = torch.cat(streams, dim=1)  # (b, r, t, d)
        r = x.shape[1]
        blocked, padding = self._masks(r, t, lengths)
        h = self.transformer(rearrange(x, "b r t d -> b (r t) d"), mask=blocked, src_key_padding_mask=padding)
        return self.fusion_backbone(rearrange(h, "b (r t) d -> b t (r d)", r=r))


class SARM(HubMixin, nn.Module):
    """Stage-Aware Reward Model (SARM, arXiv 2509.25358) over precomputed frame and text features.

    Example::

        model = SARM(SARMConfig(hidden_dim=64, num_layers=2, num_heads=4))
        out = model.predict(text (b, 512), video (b, 13, 512), state (b, 13, 7), lengths (b,))
        out.progress  # (b, 13) normalised progress of every slot

    The model holds no device: move it with `.to(device)` and pass inputs on that device.
    """

    def __init__(self, config: SARMConfig):
        super().__init__()
        self.config = config
        # where the weights come from (the directory or Hub id given to from_pretrained / from_lerobot,
        # or the run's model/ folder after `train`); recorded as `reward_model_path` in progress files
        self.source: str | None = None
        self.stage_model = _Estimator(
            config, head_sizes={h: config.num_stages(h) for h in config.heads}, stage_prior=False
        )
        self.tau_model = _Estimator(config, head_sizes={h: 1 for h in config.heads}, stage_prior=True)

    # ---- inputs ----------------------------------------------------------------------------------
    def _inputs(self, text: Tensor, video: Tensor, state: Tensor | None, lengths: Tensor | None):
        c = self.config
        dtype = self.stage_model.lang_proj.weight.dtype
        device = self.stage_model.lang_proj.weight.device
        video = torch.as_tensor(video, device=device).to(dtype)
        text = torch.as_tensor(text, device=device).to(dtype)
        if video.dim() == 3:
            video = video[:, :, None]  # one camera
        if video.dim() != 4 or video.shape[-1] != c.image_dim or video.shape[2] != c.num_cameras:
            raise ValueError(
                f"video_features should be (b, t, {c.image_dim}) or (b, t, {c.num_cameras}, {c.image_dim}) "
                f"for this model (num_cameras={c.num_cameras}, image_dim={c.image_dim}), but got "
                f"{tuple(video.shape)}"
            )
        b, t = video.shape[:2]
        if text.dim() not in (2, 3) or text.shape[0] != b or text.shape[-1] != c.text_dim:
            raise ValueError(
                f"text_features should be ({b}, {c.text_dim}) or ({b}, {t}, {c.text_dim}), "
                f"but got {tuple(text.shape)}"
            )
        if state is None and not c.num_cameras:
            raise ValueError(
                "this model is state-only (num_cameras=0): pass state_features (b, t, s); it sees only the "
                "task text and the robot state"
            )
        if state is None:
            state = torch.zeros(b, t, c.max_state_dim, dtype=dtype, device=device)
        else:
            state = torch.as_tensor(state, device=device).to(dtype)
            if state.dim() != 3 or state.shape[:2] != (b, t) or state.shape[-1] > c.max_state_dim:
                raise ValueError(
                    f"state_features should be ({b}, {t}, s) with s <= max_state_dim={c.max_state_dim}, "
                    f"but got {tuple(state.shape)}; raise max_state_dim or select fewer state dimensions"
                )
            if not c.num_cameras and state.shape[-1] == 0:
                raise ValueError(
                    "this model is state-only (num_cameras=0) but state_features have 0 dimensions; "
                    "it needs the robot state"
                )
            state = F.pad(state, (0, c.max_state_dim - state.shape[-1]))
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=device)
        else:
            lengths = torch.as_tensor(lengths, device=device).long()
            if lengths.shape != (b,) or bool((lengths < 1).any()) or bool((lengths > t).any()):
                raise ValueError(
                    f"lengths should be ({b},) with values in [1, {t}], but got shape {tuple(lengths.shape)} "
                    f"and values {lengths.tolist()}"
                )
        return rearrange(video, "b t n e -> b n t e"), text, state, lengths

    # ---- training forward ---------------------------------------------------------------------------
    def forward(
        self,
        text_features: Tensor,
        video_features: Tensor,
        state_features: Tensor | None = None,
        lengths: Tensor | None = None,
        *,
        heads: Sequence[str] | None = None,
        stage_prior: dict[str, Tensor] | None = None,
    ) -> dict[str, HeadOutput]:
        """Stage logits and tau for each head, in one call (DDP sees every parameter used).

        `stage_prior[head]` (b, t) long: the stage each slot's tau is conditioned on (teacher forcing);
        entries < 0, or a head without a prior, use the stage model's own argmax.
        """
        heads = tuple(heads or self.config.heads)
        for head in heads:
            self.config.check_head(head)
        video, text, state, lengths = self._inputs(text_features, video_features, state_features, lengths)
        fused = self.stage_model(video, text, state, lengths)  # one stage trunk pass serves every head
        logits = {h: self.stage_model.heads[h](fused) for h in heads}
        priors = []
        for h in heads:
            stage = logits[h].argmax(-1)
            given = (stage_prior or {}).get(h)
            if given is not None:
                stage = torch.where(given >= 0, given.to(stage.device).long(), stage)
            priors.append(F.one_hot(stage, logits[h].shape[-1]).to(fused.dtype))
        tau = self._tau(video, text, state, lengths, priors, heads)
        return {h: HeadOutput(stage_logits=logits[h], tau=tau[i]) for i, h in enumerate(heads)}

    def _tau(self, video, text, state, lengths, priors: list[Tensor], heads: Sequence[str]) -> list[Tensor]:
        """Tau for several (head, prior) pairs in one trunk pass, stacked along the batch."""
        m = len(priors)
        width = max(p.shape[-1] for p in priors)
        prior = torch.cat([F.pad(p, (0, width - p.shape[-1])) for p in priors])
        fused = self.tau_model(
            video.repeat(m, 1, 1, 1),
            text.repeat(m, *[1] * (text.dim() - 1)),
            state.repeat(m, 1, 1),
            lengths.repeat(m),
            prior,
        )
        b = video.shape[0]
        return [
            torch.sigmoid(self.tau_model.heads[h](fused[i * b : (i + 1) * b])).squeeze(-1)
            for i, h in enumerate(heads)
        ]

    # ---- inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        text_features: Tensor,
        video_features: Tensor,
        state_features: Tensor | None = None,
        lengths: Tensor | None = None,
        *,
        head: str = "sparse",
        tasks: str | Sequence[str] | None = None,
        soft: bool = False,
    ) -> Prediction:
        """Normalised progress and stage probabilities of every slot, in eval mode.

        `tasks` selects each sample's stage schema (names, proportions) by task text; None uses the
        head's only schema. `soft=False` reads progress with the argmax stage (LeRobot);
        `soft=True` takes the expectation over stages, sum_k p_k (P[k] + alpha_k tau_k), running the
        tau model once per stage.
        """
        self.config.check_head(head)
        was_training = self.training
        self.eval()
        try:
            video, text, state, lengths = self._inputs(text_features, video_features, state_features, lengths)
            b = video.shape[0]
            counts, breakpoints = self._schemas(head, tasks, b, video.device)
            logits = self.stage_model.heads[head](self.stage_model(video, text, state, lengths))
            k = logits.shape[-1]
            absent = torch.arange(k, device=video.device)[None, :] >= counts[:, None]  # (b, k)
            probs = logits.masked_fill(absent[:, None, :], float("-inf")).softmax(-1)  # (b, t, k)
            stage = probs.argmax(-1)
            start = breakpoints.gather(1, stage)  # (b, t)
            width = breakpoints.gather(1, stage + 1) - start
            if not soft:
                (tau,) = self._tau(video, text, state, lengths, [F.one_hot(stage, k).to(probs.dtype)], [head])
                progress = start + tau * width
            else:
                eye = torch.eye(k, dtype=probs.dtype, device=video.device)
                per_stage = self._tau(
                    video, text, state, lengths, [eye[j].expand_as(probs) for j in range(k)], [head] * k
                )
                taus = torch.stack(per_stage, dim=-1)  # (b, t, k)
                widths = (breakpoints[:, 1:] - breakpoints[:, :-1])[:, None, :]
                progress = (probs * (breakpoints[:, None, :-1] + taus * widths)).sum(-1)
                tau = taus.gather(-1, stage[..., None]).squeeze(-1)
            return Prediction(
                progress=progress.clamp(0.0, 1.0).float(),
                stage_probs=probs.float(),
                stage=stage,
                tau=tau.float(),
            )
        finally:
            self.train(was_training)

    def _schemas(self, head: str, tasks, b: int, device) -> tuple[Tensor, Tensor]:
        """Per-sample stage counts (b,) and breakpoints (b, k+1), padded with 1.0 past each task's stages."""
        schemas = self.config.task_schemas(head)
        k = schemas.max_stages
        if tasks is None:
            if len(schemas) != 1:
                raise ValueError(
                    f"this model's {head!r} head has schemas for several tasks {sorted(schemas)}; "
                    "pass tasks=<task text per sample> to predict"
                )
            tasks = [next(iter(dict(schemas.items())))] * b
        elif isinstance(tasks, str):
            tasks = [tasks] * b
        elif len(tasks) != b:
            raise ValueError(f"tasks should hold one text per sample ({b}), but got {len(tasks)}")
        table = {}
        for task in set(tasks):
            schema = schemas.schema_for(task)
            points = list(schema.breakpoints) + [1.0] * (k - schema.num_stages)
            table[task] = (schema.num_stages, points)
        counts = torch.tensor([table[task][0] for task in tasks], device=device)
        breakpoints = torch.tensor([table[task][1] for task in tasks], dtype=torch.float32, device=device)
        return counts, breakpoints

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
