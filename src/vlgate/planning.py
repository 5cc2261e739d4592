"""Request planning: which size each image is sent at, and the provider-neutral request.

The size sent is decided once, here, in this order:

1. ``auto_resize``: fit within the configured (width, height), aspect preserved;
2. the family's provider-side resize rule (Qwen smart_resize, Claude, OpenAI tiles), so the provider
   processes exactly what was sent and pixel coordinates map back 1:1;
3. the receiving service's limits (bytes, sides, formats), applied by ``Image.encode``.

The size the model finally sees is ``sizing.provider_size(rule, encoded.size)``: if a limit changed
the size after step 2, the provider's rule is applied to what was really sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from . import sizing
from .config import ModelConfig
from .errors import ConfigError
from .image import EncodedImage, Image
from .providers.base import ChatRequest, Message
from .registry import Route

__all__ = ["build_request", "encode_for", "model_input_size", "target_size"]


def _fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    scale = min(box[0] / w, box[1] / h, 1.0)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _rule(route: Route, config: ModelConfig) -> str | None:
    return route.family.resize if config.provider_resize else None


def target_size(image_size: tuple[int, int], route: Route, config: ModelConfig) -> tuple[int, int]:
    """The (w, h) to send for an image of ``image_size`` (before the service's limits)."""
    size = image_size
    if config.auto_resize is not None:
        size = _fit(size, config.auto_resize)
    return sizing.provider_size(_rule(route, config), size)


def encode_for(
    image: Image, route: Route, config: ModelConfig, *, n_images: int = 1
) -> EncodedImage:
    """Encode ``image`` for ``route``: planned size, service limits, sniffed MIME type.

    A per-request cap (Gemini's inline 20 MB) is shared out: each of ``n_images`` images gets an
    equal part of it, counted in raw bytes (base64 adds a third on the wire).
    """
    size = target_size(image.size, route, config)
    limits = route.service.limits
    if limits.max_request_bytes is not None:
        share = limits.max_request_bytes * 3 // 4 // max(1, n_images)
        if limits.max_bytes is None or share < limits.max_bytes:
            limits = dataclasses.replace(limits, max_bytes=share)
    return image.encode(
        size=None if size == image.size else size,
        limits=limits,
        n_images=n_images,
    )


def model_input_size(encoded: EncodedImage, route: Route, config: ModelConfig) -> tuple[int, int]:
    """The (w, h) the model saw, after the provider's own resize of what was sent."""
    return sizing.provider_size(_rule(route, config), encoded.size)


def build_request(
    route: Route,
    config: ModelConfig,
    images: Sequence[EncodedImage],
    prompt: str,
    params: dict[str, Any],
    *,
    json_schema: dict[str, Any] | None = None,
    json_mode: bool = False,
    timeout: float | None = None,
    history: Sequence[Message] = (),
    task: str | None = None,
    target: str | None = None,
) -> ChatRequest:
    """A single-turn request (plus optional ``history`` turns appended after it).

    Images come before the text, as Anthropic and Gemini recommend.
    """
    merged = {**config.params, **params}
    headers = merged.pop("extra_headers", None) or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError("extra_headers must be a dict of header names to strings")
    first = Message("user", (*images, prompt))
    return ChatRequest(
        model=route.model,
        messages=(first, *history),
        params=merged,
        json_schema=json_schema,
        json_mode=json_mode,
        timeout=timeout if timeout is not None else config.timeout,
        extra_headers=dict(headers),
        task=task,
        target=target,
    )
