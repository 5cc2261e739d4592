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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import sizing, tokens
from .config import ModelConfig
from .errors import ConfigError
from .image import EncodedImage, Image
from .providers.base import ChatRequest, Message
from .registry import ImageLimits, Route, param_table
from .tokens import TokenFormula

__all__ = [
    "SizePlan",
    "build_request",
    "encode_for",
    "model_input_size",
    "size_plan",
    "target_size",
]


_PIXEL_PARAM = "mm_processor_kwargs"
"""The call parameter carrying a Qwen processor's pixel budget (vLLM)."""


def _fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    scale = min(box[0] / w, box[1] / h, 1.0)
    return max(1, round(w * scale)), max(1, round(h * scale))


@dataclass(frozen=True)
class SizePlan:
    """How the provider will size and count an image on one route with one call's parameters."""

    resize: str | None
    """The provider's resize rule vlgate pre-resizes to (``None``: sent as planned)."""
    tokens: TokenFormula | None
    pixels: sizing.Pixels | None = None
    """A Qwen processor's (min_pixels, max_pixels) set by the call or the local model."""

    def size(self, size: tuple[int, int]) -> tuple[int, int]:
        return sizing.provider_size(self.resize, size, self.pixels)

    def count(self, size: tuple[int, int]) -> int | None:
        return self.tokens.count(*size, pixels=self.pixels) if self.tokens is not None else None


def _variant(name: str | None, variant: str | None, table: Mapping[str, Any]) -> str | None:
    if name is None or variant is None:
        return name
    named = f"{name}@{variant}"
    return named if named in table else name


def _pixels(params: Mapping[str, Any], config: ModelConfig) -> sizing.Pixels | None:
    """A Qwen pixel budget the caller set: vLLM ``mm_processor_kwargs`` or a local model's
    ``processor_kwargs``; ``None`` when neither names one."""
    for source in (params.get(_PIXEL_PARAM), config.local_options.get("processor_kwargs")):
        if isinstance(source, Mapping) and ("max_pixels" in source or "min_pixels" in source):
            lo, hi = source.get("min_pixels"), source.get("max_pixels")
            return (
                lo if isinstance(lo, int) else None,
                hi if isinstance(hi, int) else None,
            )
    return None


# The plan of a (route, config) pair without call parameters, with the parameter names that
# would change it. Asked for twice per request (the size to send, the token estimate) and almost
# never changed by a call's parameters. Keyed by identity; the entry holds both objects, so an
# id is not reused while its entry lives. Both are immutable (frozen).
_BASE_PLANS: dict[tuple[int, int], tuple[Route, ModelConfig, SizePlan, frozenset[str]]] = {}


def size_plan(
    route: Route, config: ModelConfig, params: Mapping[str, Any] | None = None
) -> SizePlan:
    """The resize rule and token formula for ``route`` under ``params`` (merged over the
    config's): the family's rule, the service's own replacement (a self-hosted Qwen server uses
    the processor's budget), and the variant a parameter selects (``detail="low"``).

    Example:
        >>> from vlgate.registry import resolve
        >>> cfg = ModelConfig(model="openai/gpt-4o")
        >>> plan = size_plan(resolve("openai/gpt-4o"), cfg, {"detail": "low"})
        >>> plan.resize, plan.tokens.name, plan.count((1920, 1080))
        ('openai-tile@low', 'openai-tile@low', 85)
    """
    key = (id(route), id(config))
    base = _BASE_PLANS.get(key)
    if base is None or base[0] is not route or base[1] is not config:
        table = param_table(route.service.name)
        names = frozenset(table.variants if table is not None else ()) | {_PIXEL_PARAM}
        if len(_BASE_PLANS) >= 256:
            _BASE_PLANS.clear()
        base = _BASE_PLANS[key] = (route, config, _size_plan(route, config, None), names)
    if not params or base[3].isdisjoint(params):
        return base[2]
    return _size_plan(route, config, params)


def _size_plan(route: Route, config: ModelConfig, params: Mapping[str, Any] | None) -> SizePlan:
    merged = {**config.params, **(params or {})}
    rule = route.family.resize if config.provider_resize else None
    formula = tokens.formula_for(route)
    fname = formula.name if formula is not None else None
    remap = route.service.rule_map
    rule = remap.get(rule, rule) if rule is not None else None
    fname = remap.get(fname, fname) if fname is not None else None
    table = param_table(route.service.name)
    if table is not None:
        for param, values in table.variants.items():
            if param in merged:
                variant = values.get(str(merged[param]))
                rule = _variant(rule, variant, sizing.RESIZE_RULES)
                fname = _variant(fname, variant, tokens.TOKEN_FORMULAS)
    return SizePlan(
        resize=rule,
        tokens=tokens.TOKEN_FORMULAS[fname] if fname is not None else None,
        pixels=_pixels(merged, config),
    )


def target_size(
    image_size: tuple[int, int],
    route: Route,
    config: ModelConfig,
    params: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """The (w, h) to send for an image of ``image_size`` (before the service's limits)."""
    size = image_size
    if config.auto_resize is not None:
        size = _fit(size, config.auto_resize)
    return size_plan(route, config, params).size(size)


def encode_for(
    image: Image,
    route: Route,
    config: ModelConfig,
    *,
    n_images: int = 1,
    params: Mapping[str, Any] | None = None,
) -> EncodedImage:
    """Encode ``image`` for ``route``: planned size, service limits, sniffed MIME type.

    A per-request cap (Gemini's inline 20 MB) is shared out: each of ``n_images`` images gets an
    equal part of it, counted in raw bytes (base64 adds a third on the wire).
    """
    size = target_size(image.size, route, config, params)
    limits = _shared_limits(route.service.limits, max(1, n_images))
    return image.encode(
        size=None if size == image.size else size,
        limits=limits,
        n_images=n_images,
    )


@lru_cache(maxsize=64)
def _shared_limits(limits: ImageLimits, n_images: int) -> ImageLimits:
    """``limits`` with a per-request byte cap shared out over ``n_images`` (cached: the same few
    pairs come back on every request, and ``dataclasses.replace`` is not cheap)."""
    if limits.max_request_bytes is not None:
        share = limits.max_request_bytes * 3 // 4 // n_images
        if limits.max_bytes is None or share < limits.max_bytes:
            return dataclasses.replace(limits, max_bytes=share)
    return limits


def model_input_size(
    encoded: EncodedImage,
    route: Route,
    config: ModelConfig,
    params: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """The (w, h) the model saw, after the provider's own resize of what was sent."""
    return size_plan(route, config, params).size(encoded.size)


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
    )
