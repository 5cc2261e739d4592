"""Provider-side image resize rules: the size a provider gives an image before the model sees it.

vlgate pre-resizes an image to exactly the size a rule returns. Every rule is idempotent
(``rule(*rule(w, h)) == rule(w, h)``), so the provider's own resize is then a no-op and
pixel coordinates from pixel-frame families (Qwen2.5-VL, Claude, GPT) map back with a plain
``x * W / sent_w``.

Sizes are always ``(width, height)``. The module is organised by rule; image-token formulas
(``qwen-28``, ``claude``, ...) live in their own section at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from .errors import ImageError

__all__ = [
    "RESIZE_RULES",
    "claude_size",
    "openai_tile_size",
    "provider_size",
    "smart_resize",
]

ResizeRule = Callable[[int, int], tuple[int, int]]


def _check_size(width: int, height: int) -> None:
    if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
        raise ImageError(f"image size must be two positive integers, got {width!r}x{height!r}")


# --- Qwen smart_resize -----------------------------------------------------------------------
# Source: qwen-vl-utils vision_process.py and transformers Qwen2VLImageProcessor.smart_resize
# (coords.md Part A, "smart_resize details"). factor = patch size x merge size: 28 for
# Qwen2/2.5-VL, 32 for Qwen3-VL and the 2025 DashScope qwen-vl-max/plus snapshots.

QWEN_MAX_ASPECT = 200


def smart_resize(
    width: int,
    height: int,
    factor: int = 28,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 16384 * 28 * 28,
) -> tuple[int, int]:
    """The size Qwen's ``smart_resize`` gives an image: both sides multiples of ``factor`` and
    ``min_pixels <= w*h <= max_pixels``. The aspect ratio is kept only approximately.

    Example:
        >>> smart_resize(640, 480)
        (644, 476)
        >>> smart_resize(1920, 1080, max_pixels=28 * 28 * 1280)
        (1316, 728)
    """
    _check_size(width, height)
    if max(width, height) / min(width, height) > QWEN_MAX_ASPECT:
        raise ImageError(
            f"aspect ratio of {width}x{height} exceeds {QWEN_MAX_ASPECT}, which Qwen rejects"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


# Budgets used when vlgate pre-resizes. A size inside [min, max] on the factor grid is left alone
# by any server whose max_pixels is at least this large, so the conservative 1280-token budget
# (HF Qwen2VLImageProcessor class default, the model card's recommended ceiling, and DashScope's
# default cap per coords.md Part B) is safe for every server we know of.
QWEN_TOKENS_DEFAULT = 1280
QWEN_TOKENS_HIGH = 16384


def _qwen_rule(factor: int, tokens: int) -> ResizeRule:
    return partial(
        smart_resize,
        factor=factor,
        min_pixels=4 * factor * factor,
        max_pixels=tokens * factor * factor,
    )


# --- Anthropic Claude ------------------------------------------------------------------------
# Source: platform.claude.com build-with-claude/vision and vision-coordinates (coords.md Part A,
# Claude notes): the largest aspect-preserving size within a long-edge limit and a budget of
# ceil(w/28)*ceil(h/28) visual tokens; 1568/1568 on the standard tier, 2576/4784 high-res.

CLAUDE_PATCH = 28


def _claude_tokens(width: int, height: int) -> int:
    return math.ceil(width / CLAUDE_PATCH) * math.ceil(height / CLAUDE_PATCH)


def claude_size(
    width: int, height: int, *, long_edge: int = 1568, token_budget: int = 1568
) -> tuple[int, int]:
    """The size Claude sees: long edge <= ``long_edge`` and at most ``token_budget`` 28-px
    patches, aspect preserved, never upscaled.

    Example:
        >>> claude_size(1920, 1080)
        (1456, 819)
        >>> claude_size(800, 600)
        (800, 600)
    """
    _check_size(width, height)
    if max(width, height) <= long_edge and _claude_tokens(width, height) <= token_budget:
        return width, height
    landscape = width >= height
    long_side, short_side = (width, height) if landscape else (height, width)
    scale = min(
        long_edge / long_side,
        math.sqrt(token_budget * CLAUDE_PATCH * CLAUDE_PATCH / (width * height)),
    )
    candidate = max(1, math.floor(long_side * scale))
    while True:  # ends: at candidate == 1 the size is 1x1, one patch
        short = max(1, round(candidate * short_side / long_side))
        w, h = (candidate, short) if landscape else (short, candidate)
        if candidate == 1 or _claude_tokens(w, h) <= token_budget:
            return w, h
        candidate -= 1


# --- OpenAI tile models ----------------------------------------------------------------------
# Source: OpenAI "Images and vision" guide, detail=high (coords.md Part B): fit within a
# 2048x2048 square, then scale so the shortest side is 768 px. Smaller images are not upscaled.

OPENAI_BOX = 2048
OPENAI_SHORT = 768


def openai_tile_size(width: int, height: int) -> tuple[int, int]:
    """The size a tile-based OpenAI model (gpt-4o, detail high) processes.

    Example:
        >>> openai_tile_size(1920, 1080)
        (1365, 768)
        >>> openai_tile_size(4096, 1024)
        (2048, 512)
    """
    _check_size(width, height)
    w, h = width, height
    if max(w, h) > OPENAI_BOX:
        s = OPENAI_BOX / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if min(w, h) > OPENAI_SHORT:
        s = OPENAI_SHORT / min(w, h)
        if w <= h:
            w, h = OPENAI_SHORT, max(OPENAI_SHORT, round(h * s))
        else:
            w, h = max(OPENAI_SHORT, round(w * s)), OPENAI_SHORT
    return w, h


# --- registry of rules -----------------------------------------------------------------------

RESIZE_RULES: dict[str, ResizeRule] = {
    "qwen-smart-28": _qwen_rule(28, QWEN_TOKENS_DEFAULT),
    "qwen-smart-32": _qwen_rule(32, QWEN_TOKENS_DEFAULT),
    "qwen-smart-28-16k": _qwen_rule(28, QWEN_TOKENS_HIGH),
    "qwen-smart-32-16k": _qwen_rule(32, QWEN_TOKENS_HIGH),
    "claude": claude_size,
    "claude-hires": partial(claude_size, long_edge=2576, token_budget=4784),
    "openai-tile": openai_tile_size,
}
"""Resize rules by name (``registry.ModelFamily.resize``): ``(w, h) -> (w, h)`` as the provider
processes the image."""


def provider_size(rule: str | None, size: tuple[int, int]) -> tuple[int, int]:
    """The size the model sees after the provider applies ``rule``; identity for ``None``.

    Example:
        >>> provider_size("openai-tile", (1920, 1080))
        (1365, 768)
        >>> provider_size(None, (1920, 1080))
        (1920, 1080)
    """
    if rule is None:
        _check_size(*size)
        return size
    try:
        fn = RESIZE_RULES[rule]
    except KeyError:
        known = ", ".join(sorted(RESIZE_RULES))
        raise ValueError(f"unknown resize rule {rule!r}; known: {known}") from None
    return fn(*size)
