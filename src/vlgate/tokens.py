"""Image-token counts before sending: each provider's own formula, on the size vlgate will send.

A formula is picked by data, never by branching on the provider: ``registry.FAMILIES[*].tokens``
names a row of :data:`TOKEN_FORMULAS`, and :data:`MODEL_TOKEN_FORMULAS` overrides it for the few
models of a family that count differently (OpenAI's patch models, gpt-4o-mini's tile constants).

Every formula takes the ``(width, height)`` vlgate sends and applies the provider's own resize
first, so it also answers "what would the full-resolution frame cost" when given the raw size.
DashScope's Qwen formulas use its ~1280-token cap (16,384 with ``vl_high_resolution_images``);
self-hosted servers (vLLM, Ollama, local) use the released processor's min/max pixels, or the
``max_pixels`` a call sets in ``mm_processor_kwargs`` (see :func:`vlgate.planning.size_plan`).
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
from .registry import FAMILIES

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
    """One provider's image-token rule for an image *sent* at ``(w, h)``: the provider's resize
    ``rule`` (a name in :data:`vlgate.sizing.RESIZE_RULES`) first, then ``per_image`` on the size
    the model sees."""

    name: str
    rule: str | None
    per_image: Callable[[int, int], int]
    source: str

    def count(self, width: int, height: int, pixels: sizing.Pixels | None = None) -> int:
        """Tokens of one image sent at ``(width, height)``; ``pixels`` overrides a Qwen budget."""
        return self.per_image(*sizing.provider_size(self.rule, (width, height), pixels))


# --- OpenAI ----------------------------------------------------------------------------------
# Tile models (detail=high): fit 2048 box, short side -> 768, then base + per_tile * 512-px tiles
# (1024x1024 -> 765, 1920x1080 -> 1105: the guide's worked examples). detail=low: base only.
# Patch models: 32-px patches (at most 1536 after the resize) times a per-model multiplier.


def _tiles(width: int, height: int, base: int, per_tile: int) -> int:
    return base + per_tile * math.ceil(width / 512) * math.ceil(height / 512)


def _patches(width: int, height: int, multiplier: float) -> int:
    return math.ceil(sizing.openai_patches(width, height) * multiplier)


# --- Anthropic -------------------------------------------------------------------------------
# Standard tier: tokens = w*h/750 on the size Claude sees (vision docs' table: 200x200 -> ~54,
# 1000x1000 -> ~1334, 1092x1092 -> ~1590). The high-resolution tier counts 28-px patches
# (ceil(w/28)*ceil(h/28), budget 4784; vision-coordinates docs).


def _claude_750(width: int, height: int) -> int:
    return math.ceil(width * height / 750)


def _claude_patches(width: int, height: int) -> int:
    return math.ceil(width / 28) * math.ceil(height / 28)


# --- Gemini ----------------------------------------------------------------------------------
# 2.x: both sides <= 384 px -> 258 tokens; otherwise 258 per 768x768 tile (1920x1080 -> 1548).
# 3.x: a fixed count per image by media_resolution: LOW 280 / MEDIUM 560 / HIGH 1120 (default)
# (coords.md Part B, confidence S).

_GEMINI_TILE_TOKENS = 258
_GEMINI_SMALL = 384
_GEMINI_TILE = 768


def _gemini(width: int, height: int) -> int:
    if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
        return _GEMINI_TILE_TOKENS
    return _GEMINI_TILE_TOKENS * math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE)


def _fixed(count: int) -> Callable[[int, int], int]:
    return lambda _w, _h: count


# --- Qwen ------------------------------------------------------------------------------------
# After smart_resize: h*w / factor^2 + 2 (vision start/end tokens). DashScope caps at ~1280
# tokens (16,384 with vl_high_resolution_images); self-hosted servers run the released
# processor's min/max pixels (sizing.QWEN25_PROCESSOR_PIXELS, QWEN3_PROCESSOR_PIXELS).


def _qwen(width: int, height: int, factor: int) -> int:
    return (width * height) // (factor * factor) + 2


def _openai_rows() -> list[TokenFormula]:
    rows = [
        TokenFormula(
            "openai-tile",
            "openai-tile",
            partial(_tiles, base=85, per_tile=170),
            "OpenAI vision guide: 85 + 170 per 512-px tile after the 2048/768 fit",
        ),
        TokenFormula(
            "openai-tile@low", "openai-tile@low", _fixed(85), "OpenAI: detail=low is 85 tokens"
        ),
        TokenFormula(
            "openai-tile-mini",
            "openai-tile",
            partial(_tiles, base=2833, per_tile=5667),
            "gpt-4o-mini: 2833 + 5667 per tile (coords.md Part B, confidence U)",
        ),
        TokenFormula(
            "openai-tile-mini@low",
            "openai-tile@low",
            _fixed(2833),
            "gpt-4o-mini detail=low: the base count",
        ),
    ]
    for mult, models in (
        (1.62, "gpt-4.1-mini, gpt-5 mini"),
        (2.46, "gpt-4.1-nano, gpt-5 nano"),
        (1.72, "o4-mini"),
    ):
        rows.append(
            TokenFormula(
                f"openai-patch-{mult}",
                "openai-patch",
                partial(_patches, multiplier=mult),
                f"OpenAI patch models ({models}): 32-px patches <= 1536, x{mult}",
            )
        )
    return rows


def _qwen_rows() -> list[TokenFormula]:
    """Qwen's smart_resize count at both patch sizes: DashScope (and its ``@high`` variant),
    then the self-hosted processors."""
    rows = []
    for factor in (28, 32):
        count = partial(_qwen, factor=factor)
        rows.append(
            TokenFormula(
                f"qwen-{factor}",
                f"qwen-smart-{factor}",
                count,
                f"DashScope: w*h/{factor}^2 + 2 after smart_resize, ~1280-token cap",
            )
        )
        rows.append(
            TokenFormula(
                f"qwen-{factor}@high",
                f"qwen-smart-{factor}@high",
                count,
                "DashScope vl_high_resolution_images: 16,384-token cap",
            )
        )
    for factor, processor in (
        (28, "Qwen2.5-VL processor (self-hosted): min 3,136 / max 12,845,056 pixels"),
        (32, "Qwen3-VL processor (self-hosted): min 65,536 / max 16,777,216 pixels"),
    ):
        name = f"qwen-proc-{factor}"
        rows.append(TokenFormula(name, name, partial(_qwen, factor=factor), processor))
    return rows


TOKEN_FORMULAS: dict[str, TokenFormula] = {
    f.name: f
    for f in [
        *_openai_rows(),
        TokenFormula(
            "claude",
            "claude",
            _claude_750,
            "Anthropic vision docs: w*h/750 after the 1568 px / ~1.15 MP resize",
        ),
        TokenFormula(
            "claude-hires",
            "claude-hires",
            _claude_patches,
            "Anthropic high-res tier: ceil(w/28)*ceil(h/28) after the 2576 px / 4784 resize",
        ),
        TokenFormula(
            "gemini", None, _gemini, "Gemini 2.x token docs: 258, or 258 per 768-px tile above 384"
        ),
        TokenFormula("gemini-3", None, _fixed(1120), "Gemini 3: media_resolution HIGH, 1120"),
        TokenFormula("gemini-3@low", None, _fixed(280), "Gemini 3: media_resolution LOW, 280"),
        TokenFormula("gemini-3@medium", None, _fixed(560), "Gemini 3: MEDIUM, 560"),
        TokenFormula("gemini-3@high", None, _fixed(1120), "Gemini 3: HIGH, 1120"),
        *_qwen_rows(),
    ]
}
"""Image-token formulas by name (``registry.ModelFamily.tokens``); ``"<name>@<variant>"`` rows
apply when a parameter changes what the model sees (``detail="low"``, ``media_resolution``)."""

MODEL_TOKEN_FORMULAS: tuple[tuple[str, str], ...] = tuple(
    rule for family in FAMILIES.values() for rule in family.token_rules
)
"""Every family's ``token_rules`` (registry data): models that count differently from their
family's formula."""


@lru_cache(maxsize=256)
def formula_for(route: Route) -> TokenFormula | None:
    """The image-token formula for a resolved route, or ``None`` when none is known.

    Example:
        >>> from vlgate.registry import resolve
        >>> formula_for(resolve("anthropic/claude-sonnet-4-6")).name
        'claude'
    """
    for pattern, name in route.family.token_rules:
        if re.search(pattern, route.model, re.IGNORECASE):
            return TOKEN_FORMULAS[name]
    family_formula = route.family.tokens
    return TOKEN_FORMULAS[family_formula] if family_formula is not None else None


def image_tokens(
    route: Route,
    size: Size,
    config: ModelConfig | None = None,
    params: dict[str, Any] | None = None,
) -> int | None:
    """Image tokens of one image sent at ``size`` on ``route``; ``None`` without a formula."""
    from .config import ModelConfig
    from .planning import size_plan

    cfg = config or ModelConfig(model=route.requested or route.model)
    return size_plan(route, cfg, params).count(size)


def estimate_tokens(
    image: ImageInput | Size,
    model: str | VlModel,
    *,
    config: ModelConfig | None = None,
    **params: Any,
) -> int:
    """Image tokens ``model`` will charge for ``image``, computed before sending.

    Uses the size vlgate would send (``auto_resize`` and the provider-side resize rule, see
    :func:`vlgate.planning.target_size`) and the provider's own formula. ``image`` is anything
    :meth:`vlgate.Image.load` takes, or a plain ``(width, height)``. ``model`` is a model string or
    a :class:`~vlgate.VlModel` (whose configuration is then used). ``params`` are the call's
    parameters that change what the model sees (``detail="low"``, ``media_resolution=...``,
    ``vl_high_resolution_images=True``, ``mm_processor_kwargs={"max_pixels": ...}``).

    Raises:
        ConfigError: no formula is known for this model's family.

    Example:
        >>> estimate_tokens((1024, 1024), "openai/gpt-4.1-mini")
        1659
        >>> estimate_tokens((1920, 1080), "gemini/gemini-2.5-flash")
        1548
        >>> estimate_tokens((1920, 1080), "openai/gpt-4o", detail="low")
        85
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
    plan = planning.size_plan(route, cfg, params)
    if plan.tokens is None:
        raise ConfigError(
            f"no image-token formula is known for {route.requested or route.model} "
            f"(family {route.family.name!r})"
        )
    return plan.tokens.count(*planning.target_size(size, route, cfg, params), pixels=plan.pixels)


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


def request_tokens(
    route: Route, request: ChatRequest, config: ModelConfig | None = None
) -> tuple[int, int | None]:
    """``(total, image_tokens)`` a request is expected to use: images by the provider's formula,
    text at ~4 characters a token, plus ``max_tokens`` (256 when unset) for the answer.

    ``image_tokens`` is ``None`` when the family has no known formula.
    """
    from .planning import size_plan

    if config is None:
        from .config import ModelConfig

        config = ModelConfig(model=route.requested or route.model)
    plan = size_plan(route, config, request.params)
    images = 0
    text_chars = 0
    for msg in request.messages:
        for part in msg.parts:
            if isinstance(part, str):
                text_chars += len(part)
                continue
            counted = plan.count(part.size)
            if counted is None:
                w, h = part.size
                counted = max(1, (w * h) // _UNKNOWN_IMAGE_PIXELS_PER_TOKEN)
            images += counted
    params = request.params
    out = params.get("max_tokens") or params.get("max_completion_tokens") or _DEFAULT_OUTPUT_TOKENS
    out = out if isinstance(out, int) and out > 0 else _DEFAULT_OUTPUT_TOKENS
    total = images + math.ceil(text_chars / _CHARS_PER_TOKEN) + out
    return total, (images if plan.tokens is not None else None)


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
