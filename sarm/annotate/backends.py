"""Vision-language models that answer a conversation of text and timed frames: local or over HTTP.

    backend = EndpointBackend("http://localhost:8000/v1", model="Qwen/Qwen2.5-VL-7B-Instruct")
    backend = TransformersBackend("Qwen/Qwen3-VL-30B-A3B-Instruct")           # local, on GPU if there is one
    answer = backend.chat([{"role": "system", "content": ["..."]},
                           {"role": "user", "content": ["t=0.00 s", Frame(image, 0.0), ...]}])

A conversation is a list of {"role", "content"} turns whose content is a list of strings and `Frame`s.
`EndpointBackend` speaks OpenAI's chat-completions protocol (vLLM, SGLang, TGI, hosted APIs) with the
standard library: frames go as base64 JPEG `image_url` parts, each after the text that gives its time.
Transport failures (timeouts, refused connections, HTTP 5xx / 429, replies that are not
chat-completions JSON) raise `BackendError`, which the annotation loop counts as a failed attempt.
`TransformersBackend` runs an `AutoModelForImageTextToText` with its `AutoProcessor` (Qwen2-VL,
Qwen2.5-VL, Qwen3-VL families); `transformers` is the optional `annotate` extra.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Backend", "BackendError", "EndpointBackend", "Frame", "TransformersBackend"]

_PIP = "pip install 'sarm-rabc[annotate]'"


@dataclass(frozen=True)
class Frame:
    """One sampled frame: uint8 RGB `(H, W, 3)` and its time in seconds from the episode's start."""

    image: np.ndarray
    time: float


class BackendError(RuntimeError):
    """The model could not be asked (timeout, connection, HTTP error): no answer to check."""


class Backend(Protocol):
    name: str

    def chat(self, messages: list[dict]) -> str: ...


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))


def _jpeg_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class EndpointBackend:
    """An OpenAI-compatible `/chat/completions` endpoint.

    Args:
        api_base: the server's base URL including the version, e.g. "http://localhost:8000/v1".
        model: the served model's name (vLLM: the name given to `vllm serve`).
        api_key: sent as `Authorization: Bearer ...` when given.
        timeout_s: seconds to wait for one reply.
        max_tokens, temperature: generation settings (temperature 0: the same answer on a rerun).
    """

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        max_tokens: int = 1024,
        temperature: float = 0.0,
    ) -> None:
        if not api_base.startswith(("http://", "https://")):
            raise ValueError(
                f"--api-base should be an http(s) URL such as http://localhost:8000/v1, got {api_base!r}"
            )
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.name, self.api_key, self.timeout_s = model, api_key, float(timeout_s)
        self.max_tokens, self.temperature = int(max_tokens), float(temperature)

    def request_body(self, messages: list[dict]) -> dict:
        """The JSON body for `messages`: text parts, and each frame as a JPEG data URL."""
        out = []
        for turn in messages:
            parts: list[dict[str, Any]] = []
            for item in turn["content"]:
                if isinstance(item, Frame):
                    parts.append({"type": "image_url", "image_url": {"url": _jpeg_url(item.image)}})
                else:
                    parts.append({"type": "text", "text": str(item)})
            out.append({"role": turn["role"], "content": parts})
        return {
            "model": self.name,
            "messages": out,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def chat(self, messages: list[dict]) -> str:
        data = json.dumps(self.request_body(messages)).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                body = reply.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:200].decode(errors="replace")
            raise BackendError(f"HTTP {err.code} from {self.url}: {detail}") from None
        except (TimeoutError, OSError) as err:  # URLError is an OSError; a read timeout is TimeoutError
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise BackendError(
                    f"no reply from {self.url} within {self.timeout_s:g} s (--timeout)"
                ) from None
            raise BackendError(f"cannot reach {self.url} ({reason}); is the server running?") from None
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.url} sent a reply that is not chat-completions JSON: {body[:200]!r}"
            ) from None
        if isinstance(content, list):  # some servers send content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""


class TransformersBackend:
    """A local `transformers` VLM: `AutoModelForImageTextToText` + `AutoProcessor` from a Hub id or folder.

    Args:
        model: a Hub id ("Qwen/Qwen3-VL-30B-A3B-Instruct") or a local folder with both saved.
        device: default cuda if available, else cpu.
        dtype: "auto" (the checkpoint's), "bfloat16", "float16" or "float32".
        max_new_tokens, temperature: generation settings (temperature 0: greedy, the same answer on a rerun).

    One model serves every worker thread; generation is serialised by a lock.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as err:
            raise ImportError(f"the local backend needs transformers: {_PIP} (or pass --api-base)") from err
        if dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"--dtype should be auto, bfloat16, float16 or float32, got {dtype!r}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.name, self.max_new_tokens, self.temperature = model, int(max_new_tokens), float(temperature)
        self.processor = AutoProcessor.from_pretrained(model)
        kind = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=kind).to(self.device).eval()
        self._lock = threading.Lock()

    def chat(self, messages: list[dict]) -> str:
        import torch

        turns, images = [], []
        for turn in messages:
            parts = []
            for item in turn["content"]:
                if isinstance(item, Frame):
                    parts.append({"type": "image"})
                    images.append(_pil(item.image))
                else:
                    parts.append({"type": "text", "text": str(item)})
            turns.append({"role": turn["role"], "content": parts})
        text = self.processor.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt").to(self.device)
        sampling = (
            {"do_sample": True, "temperature": self.temperature}
            if self.temperature > 0
            else {"do_sample": False}
        )
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, **sampling)
        new = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()
