"""Image-token counts before sending: each provider's own formula, on the size vlgate will send.

A formula is picked by data, never by branching on the provider: ``registry.FAMILIES[*].tokens``
names a row of :data:`TOKEN_FORMULAS`, and :data:`MODEL_TOKEN_FORMULAS` overrides it for the few
models of a family that count differently (OpenAI's patch models, gpt-4o-mini's tile constants).

Every formula takes the ``(width, height)`` vlgate sends and applies the provider's own resize
first, so it also answers "what would the full-resolution frame cost" when given the raw size.
The Qwen formulas assume DashScope's default ~1280-token cap; a self-hosted server with a larger
``max_pixels`` bills more for an image vlgate did not pre-resize (Qwen3-VL has no resize rule).
Formulas and constants: coords.md Part B (OpenAI "Images and vision" guide; Anthropic vision
docs; Gemini token docs; DashScope Model Studio vision docs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from . import sizing
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import ModelConfig
    from .image import ImageInput
    from .model import VlModel
    from .providers.base import ChatRequest, Usage
    from .registry import Route

__all__ = [
    "MODEL_TOKEN_FORMULAS",
    "TOKEN_FORMULAS",
    "TokenFormula",
    "cost_of",
    "estimate_tokens",
    "formula_for",
    "image_tokens",
    "request_tokens",
]

Size = tuple[int, int]


@dataclass(frozen=True)
class TokenFormula:
    """One provider's image-token rule: ``count(w, h)`` for an image *sent* at ``(w, h)``."""

    name: str
    count: Callable[[int, int], int]
    source: str


# --- OpenAI ----------------------------------------------------------------------------------
# Tile models (detail=high): fit 2048 box, short side -> 768, then base + per_tile * 512-px tiles.
# 1024x1024 -> 765, 1920x1080 -> 1105 (guide's worked examples).


def _openai_tiles(width: int, height: int, base: int, per_tile: int) -> int:
    w, h = sizing.openai_tile_size(width, height)
    return base + per_tile * math.ceil(w / 512) * math.ceil(h / 512)


# Patch models: 32-px patches, at most 1536; a larger image is shrunk so that its patches fit,
# then the patch count is multiplied by a per-model factor.
_PATCH = 32
_PATCH_BUDGET = 1536


def _openai_patches(width: int, height: int, multiplier: float) -> int:
    patches = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    if patches > _PATCH_BUDGET:
        shrink = math.sqrt(_PATCH * _PATCH * _PATCH_BUDGET / (width * height))
        # Shrink a little further so both sides land on whole patches.
        shrink *= min(
            math.floor(width * shrink / _PATCH) / (width * shrink / _PATCH),
            math.floor(height * shrink / _PATCH) / (height * shrink / _PATCH),
        )
        w, h = max(1, int(width * shrink)), max(1, int(height * shrink))
        patches = min(_PATCH_BUDGET, math.ceil(w / _PATCH) * math.ceil(h / _PATCH))
    return math.ceil(patches * multiplier)


# --- Anthropic -------------------------------------------------------------------------------
# After Claude's resize: ceil(w/28) * ceil(h/28) visual tokens.


def _claude(width: int, height: int, rule: str = "claude") -> int:
    w, h = sizing.provider_size(rule, (width, height))
    return math.ceil(w / 28) * math.ceil(h / 28)


# --- Gemini 2.x ------------------------------------------------------------------------------
# Both sides <= 384 px -> 258 tokens; otherwise 258 per 768x768 tile (1920x1080 -> 6 -> 1548).

_GEMINI_TILE_TOKENS = 258
_GEMINI_SMALL = 384
_GEMINI_TILE = 768


# Gemini 3: LOW 280 / MEDIUM 560 / HIGH 1120 (default) / ULTRA_HIGH 2240, whatever the size
# (coords.md Part B, confidence S).
_GEMINI3_DEFAULT = 1120


def _gemini(width: int, height: int) -> int:
    if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
        return _GEMINI_TILE_TOKENS
    return _GEMINI_TILE_TOKENS * math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE)


# --- Qwen (DashScope, vLLM, Ollama) ----------------------------------------------------------
# After smart_resize: h*w / factor^2 + 2 (vision start/end tokens), default ~1280-token cap.


def _qwen(width: int, height: int, factor: int) -> int:
    w, h = sizing.RESIZE_RULES[f"qwen-smart-{factor}"](width, height)
    return (w * h) // (factor * factor) + 2


TOKEN_FORMULAS: dict[str, TokenFormula] = {
    f.name: f
    for f in [
        TokenFormula(
            "openai-tile",
            partial(_openai_tiles, base=85, per_tile=170),
            "OpenAI vision guide: 85 + 170 per 512-px tile after 2048/768 fit",
        ),
        TokenFormula(
            "openai-tile-mini",
            partial(_openai_tiles, base=2833, per_tile=5667),
            "gpt-4o-mini: 2833 + 5667 per tile (coords.md Part B, confidence U)",
        ),
        TokenFormula(
            "openai-patch-1.62",
            partial(_openai_patches, multiplier=1.62),
            "OpenAI patch models (gpt-4.1-mini, gpt-5 mini): 32-px patches <= 1536, x1.62",
        ),
        TokenFormula(
            "openai-patch-2.46",
            partial(_openai_patches, multiplier=2.46),
            "gpt-4.1-nano: 32-px patches <= 1536, x2.46",
        ),
        TokenFormula(
            "openai-patch-1.72",
            partial(_openai_patches, multiplier=1.72),
            "o4-mini: 32-px patches <= 1536, x1.72",
        ),
        TokenFormula(
            "claude",
            _claude,
            "Anthropic vision docs: ceil(w/28)*ceil(h/28) after the 1568/1568 resize",
        ),
        TokenFormula(
            "claude-hires",
            partial(_claude, rule="claude-hires"),
            "Anthropic high-res tier: 2576 long edge, 4784 tokens",
        ),
        TokenFormula(
            "gemini", _gemini, "Gemini 2.x token docs: 258, or 258 per 768-px tile above 384 px"
        ),
        TokenFormula(
            "gemini-3",
            lambda _w, _h: _GEMINI3_DEFAULT,
            "Gemini 3: a fixed count per image by media_resolution; HIGH (default) = 1120",
        ),
        TokenFormula(
            "qwen-28", partial(_qwen, factor=28), "DashScope: w*h/28^2 + 2 after smart_resize"
        ),
        TokenFormula(
            "qwen-32", partial(_qwen, factor=32), "DashScope: w*h/32^2 + 2 after smart_resize"
        ),
    ]
}
"""Image-token formulas by name (``registry.ModelFamily.tokens``)."""

MODEL_TOKEN_FORMULAS: tuple[tuple[str, str], ...] = (
    (r"gpt-4o-mini", "openai-tile-mini"),
    (r"gpt-4\.1-nano", "openai-patch-2.46"),
    (r"gpt-4\.1-mini|gpt-5(\.\d+)?-mini", "openai-patch-1.62"),
    (r"\bo4-mini", "openai-patch-1.72"),
    (r"gemini-3", "gemini-3"),
)
"""``(regex, formula)``: models that count differently from their family, first match wins."""


@lru_cache(maxsize=256)
def formula_for(route: Route) -> TokenFormula | None:
    """The image-token formula for a resolved route, or ``None`` when none is known.

    Example:
        >>> from vlgate.registry import resolve
        >>> formula_for(resolve("anthropic/claude-sonnet-4-6")).name
        'claude'
    """
    for pattern, name in MODEL_TOKEN_FORMULAS:
        if re.search(pattern, route.model, re.IGNORECASE):
            return TOKEN_FORMULAS[name]
    family_formula = route.family.tokens
    return TOKEN_FORMULAS[family_formula] if family_formula is not None else None


def image_tokens(route: Route, size: Size) -> int | None:
    """Image tokens of one image sent at ``size`` on ``route``; ``None`` without a formula."""
    formula = formula_for(route)
    return formula.count(*size) if formula is not None else None


def estimate_tokens(
    image: ImageInput | Size, model: str | VlModel, *, config: ModelConfig | None = None
) -> int:
    """Image tokens ``model`` will charge for ``image``, computed before sending.

    Uses the size vlgate would send (``auto_resize`` and the provider-side resize rule, see
    :func:`vlgate.planning.target_size`) and the provider's own formula. ``image`` is anything
    :meth:`vlgate.Image.load` takes, or a plain ``(width, height)``. ``model`` is a model string or
    a :class:`~vlgate.VlModel` (whose configuration is then used).

    Raises:
        ConfigError: no formula is known for this model's family.

    Example:
        >>> estimate_tokens((1920, 1080), "anthropic/claude-sonnet-4-6")
        1560
        >>> estimate_tokens((1920, 1080), "gemini/gemini-2.5-flash")
        1548
    """
    from . import planning
    from .config import ModelConfig
    from .image import Image
    from .registry import resolve

    if isinstance(model, str):
        cfg = config or ModelConfig(model=model)
        route = resolve(model, family=cfg.family)
    else:
        cfg, route = model.config, model.route
    size = _size_of(image, Image)
    formula = formula_for(route)
    if formula is None:
        raise ConfigError(
            f"no image-token formula is known for {route.requested or route.model} "
            f"(family {route.family.name!r})"
        )
    return formula.count(*planning.target_size(size, route, cfg))


def _size_of(image: Any, image_cls: Any) -> Size:
    if (
        isinstance(image, tuple)
        and len(image) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in image)
    ):
        if image[0] < 1 or image[1] < 1:
            raise ConfigError(f"image size must be positive, got {image!r}")
        return (image[0], image[1])
    img = image if isinstance(image, image_cls) else image_cls.load(image)
    return img.size  # type: ignore[no-any-return]


# Used only to reserve rate-limit budget before sending; corrected by the real usage after.
_CHARS_PER_TOKEN = 4
_UNKNOWN_IMAGE_PIXELS_PER_TOKEN = 750  # Anthropic's legacy rule of thumb, for unknown families
_DEFAULT_OUTPUT_TOKENS = 256


def request_tokens(route: Route, request: ChatRequest) -> tuple[int, int | None]:
    """``(total, image_tokens)`` a request is expected to use: images by the provider's formula,
    text at ~4 characters a token, plus ``max_tokens`` (256 when unset) for the answer.

    ``image_tokens`` is ``None`` when the family has no known formula.
    """
    formula = formula_for(route)
    images = 0
    text_chars = 0
    for msg in request.messages:
        for part in msg.parts:
            if isinstance(part, str):
                text_chars += len(part)
            elif formula is not None:
                images += formula.count(*part.size)
            else:
                w, h = part.size
                images += max(1, (w * h) // _UNKNOWN_IMAGE_PIXELS_PER_TOKEN)
    params = request.params
    out = params.get("max_tokens") or params.get("max_completion_tokens") or _DEFAULT_OUTPUT_TOKENS
    out = out if isinstance(out, int) and out > 0 else _DEFAULT_OUTPUT_TOKENS
    total = images + math.ceil(text_chars / _CHARS_PER_TOKEN) + out
    return total, (images if formula is not None else None)


def cost_of(route: Route, usage: Usage) -> float | None:
    """US dollars for ``usage`` at the family's ``price_per_mtok``; ``None`` when unpriced.

    Example:
        >>> from vlgate.registry import resolve
        >>> from vlgate.providers.base import Usage
        >>> cost_of(resolve("anthropic/claude-sonnet-4-6"), Usage(1_000_000, 0))
        3.0
    """
    price = route.family.price_per_mtok
    if price is None or usage.total_tokens == 0:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000
