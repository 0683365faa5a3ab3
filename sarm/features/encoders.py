"""Frame and task-text encoders: CLIP through open_clip, and an offline pixel encoder for demos and tests.

    enc = load_encoder("clip:ViT-B-32/openai")           # CLIP ViT-B/32, OpenAI weights (the paper's)
    img = enc.encode_images(frames)                       # uint8 (n, H, W, 3) -> float32 (n, 512)
    txt = enc.encode_texts(["fold the towel"])            # -> float32 (1, 512)

Encoder specs (strings, stored in every feature cache's manifest so a cache names what made it):
    "clip:<model>/<pretrained>"  open_clip model with pretrained weights, e.g. "clip:ViT-B-32/openai"
                                 (fetched from the Hub on first use and cached by open_clip /
                                 huggingface_hub; needs `pip install 'sarm-rabc[clip]'`)
    "clip:<model>"               the same architecture with random weights (pretrained=None): the same
                                 FLOPs, for benchmarks and tests; not meaningful features
    "clip:sarm-tiny"             a tiny CLIP (2 layers, 64 px) registered by this module, random weights:
                                 fast enough for CI
    "pixels" | "pixels:<dim>"    `PixelEncoder`: a fixed random projection of 8x8 colour thumbnails and of
                                 hashed character trigrams. Offline, deterministic, no dependencies,
                                 and NOT semantically meaningful; it exists for the demo and for tests.

Image features are CLIP's projected embeddings without L2 normalisation, like LeRobot's
`get_image_features`. Preprocessing runs on tensors, batched, on the encoder's device: uint8 RGB ->
[0, 1] -> bicubic resize of the shorter side to the model's input size (antialiased) -> centre crop ->
mean/std normalisation. It matches open_clip's and HF CLIPProcessor's recipe up to interpolation
rounding (they resize PIL images); features of a cache are consistent with each other, which is what
training and inference need.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_ENCODER", "CLIPEncoder", "Encoder", "PixelEncoder", "load_encoder", "preprocess_images"]

DEFAULT_ENCODER = "clip:ViT-B-32/openai"

# A tiny CLIP for CI: ~780 img/s on 2 CPU cores instead of ViT-B/32's ~26.
_TINY_NAME = "sarm-tiny"
_TINY_CONFIG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2},
}


class Encoder(ABC):
    """Maps uint8 RGB frames and task texts to feature vectors. Subclasses set `spec`, `image_dim`,
    `text_dim` and `device`, and implement `_encode_images` / `encode_texts`."""

    spec: str
    image_dim: int
    text_dim: int
    device: torch.device
    batch_size: int = 64

    @torch.no_grad()
    def encode_images(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 `(n, H, W, 3)` RGB frames -> float32 `(n, image_dim)` on the CPU, in chunks of
        `batch_size` (each chunk is moved to the encoder's device and preprocessed there)."""
        images = torch.as_tensor(images)
        if images.dim() != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(
                f"images should be uint8 (n, H, W, 3) RGB frames, but got dtype {images.dtype} and shape "
                f"{tuple(images.shape)}"
            )
        chunks = [
            self._encode_images(images[i : i + self.batch_size].to(self.device, non_blocking=True))
            .float()
            .cpu()
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.image_dim)

    @abstractmethod
    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (b, H, W, 3) on `self.device` -> (b, image_dim)."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Task texts -> float32 `(len(texts), text_dim)` on the CPU."""

    def describe(self) -> dict[str, Any]:
        """What a feature cache's manifest records about this encoder."""
        return {"spec": self.spec, "image_dim": self.image_dim, "text_dim": self.text_dim}


def preprocess_images(
    images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 (b, H, W, 3) -> float32 (b, 3, size, size): resize the shorter side to `size` (bicubic,
    antialiased), centre crop, normalise with `mean` / `std` (per channel, on [0, 1] pixels)."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp_(0.0, 1.0)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top : top + size, left : left + size]
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - mean_t) / std_t


def _import_open_clip():
    try:
        import open_clip
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the CLIP encoder needs open_clip and torchvision: pip install 'sarm-rabc[clip]' "
            "(on CPU-only machines pin torch/torchvision to matching builds, see docs/data.md); or use "
            "the offline encoder --encoder pixels"
        ) from error
    if _TINY_NAME not in open_clip.list_models():
        with tempfile.TemporaryDirectory() as tmp:  # the public way to register a config is a file
            path = Path(tmp) / f"{_TINY_NAME}.json"
            path.write_text(json.dumps(_TINY_CONFIG))
            open_clip.add_model_config(path)
    return open_clip


class CLIPEncoder(Encoder):
    """An open_clip model (default ViT-B-32 with OpenAI weights, 512-d image and text features).

    Args:
        model: open_clip architecture name ("ViT-B-32", or "sarm-tiny" for CI).
        pretrained: open_clip weight tag ("openai"), a local checkpoint path, or None for random weights.
        device: where preprocessing and the forward pass run (default: CUDA when available, else CPU).
        batch_size: frames per forward pass.
        precision: "fp32", or "fp16" / "bf16" autocast on CUDA.
    """

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = "openai",
        *,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        precision: str = "fp32",
    ):
        open_clip = _import_open_clip()
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision should be 'fp32', 'fp16' or 'bf16', but got {precision!r}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # random weights (pretrained=None) are a function of the spec, so a resumed or sharded cache
        # never mixes two random models; the caller's RNG is left alone
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(0)
            self.model = open_clip.create_model(model, pretrained=pretrained, device=self.device).eval()
        self.model.requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model)
        self.spec = f"clip:{model}" + (f"/{pretrained}" if pretrained else "")
        self.batch_size, self.precision = batch_size, precision
        size = self.model.visual.image_size
        self.image_size = int(size if isinstance(size, int) else size[0])
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        with torch.no_grad():
            probe = self.model.encode_text(self.tokenizer(["probe"]).to(self.device))
        self.image_dim = self.text_dim = int(probe.shape[-1])

    def _autocast(self):
        if self.device.type != "cuda" or self.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)

    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        pixels = preprocess_images(images, self.image_size, self.mean, self.std)
        with self._autocast():
            return self.model.encode_image(pixels, normalize=False)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        texts = _check_texts(texts)
        with self._autocast():
            out = self.model.encode_text(self.tokenizer(texts).to(self.device), normalize=False)
        return out.float().cpu()

    def describe(self) -> dict[str, Any]:
        return super().describe() | {
            "preprocessing": {
                "resize": "shorter side, bicubic, antialias",
                "crop": "center",
                "image_size": self.image_size,
                "mean": list(self.mean),
                "std": list(self.std),
            },
            "normalized": False,
        }


class PixelEncoder(Encoder):
    """Offline stand-in for CLIP: NOT semantically meaningful. Images: 8x8 area-averaged colour
    thumbnails (192 values in [0, 1]) times a fixed Gaussian matrix; texts: counts of hashed character
    trigrams times another. Deterministic for a given `dim` and `seed`; needs nothing beyond torch. Use
    it for the demo, for tests, and for data whose frames differ visibly over an episode."""

    def __init__(
        self,
        dim: int = 512,
        *,
        seed: int = 0,
        device: str | torch.device | None = None,
        batch_size: int = 256,
    ):
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim should be a positive integer value, but got dim={dim}")
        _check_batch_size(batch_size)
        self.device = torch.device(device or "cpu")
        self.image_dim = self.text_dim = dim
        self.batch_size, self.seed = batch_size, seed
        self.spec = f"pixels:{dim}" + (f"/seed{seed}" if seed else "")
        generator = torch.Generator().manual_seed(seed)
        self._image_proj = (torch.randn(192, dim, generator=generator) / 192**0.5).to(self.device)
        self._text_proj = torch.randn(1024, dim, generator=generator) / 8.0

    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        thumbs = F.adaptive_avg_pool2d(x, 8).flatten(1)  # (b, 3 * 8 * 8)
        return thumbs @ self._image_proj

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        texts = _check_texts(texts)
        counts = torch.zeros(len(texts), 1024)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()} "
            for i in range(len(padded) - 2):
                digest = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=2).digest()
                counts[row, int.from_bytes(digest, "little") % 1024] += 1.0
        # one row at a time: a text's features must not depend on the batch it came in (BLAS kernels
        # for a (b, 1024) @ (1024, d) product differ in the last bits with b)
        return torch.stack([row @ self._text_proj for row in counts])


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"texts should be a sequence of strings, but got {texts!r}")
    return list(texts)


def load_encoder(spec: str = DEFAULT_ENCODER, **kwargs: Any) -> Encoder:
    """Build an encoder from a spec string (see the module docstring); kwargs go to the constructor
    (device, batch_size, precision for CLIP)."""
    kind, _, rest = spec.partition(":")
    if kind == "pixels":
        dim, _, seed = (rest or "512").partition("/seed")
        return PixelEncoder(int(dim), seed=int(seed or 0), **kwargs)
    if kind == "clip" and rest:
        model, _, pretrained = rest.partition("/")
        return CLIPEncoder(model, pretrained or None, **kwargs)
    raise ValueError(
        f"unknown encoder spec {spec!r}; use 'clip:<model>/<pretrained>' (e.g. {DEFAULT_ENCODER!r}), "
        "'clip:<model>' for random weights, 'clip:sarm-tiny', or 'pixels[:<dim>]' (offline, not semantic)"
    )
