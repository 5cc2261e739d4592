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
from dataclasses import dataclass
from functools import partial

from .errors import ImageError

__all__ = [
    "RESIZE_RULES",
    "QwenRule",
    "claude_size",
    "openai_low_size",
    "openai_patch_size",
    "openai_patches",
    "openai_tile_size",
    "provider_size",
    "resize_rule",
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


# Budgets used when vlgate pre-resizes for DashScope: its default cap is ~1280 tokens (coords.md
# Part B), 16,384 with ``vl_high_resolution_images``. Self-hosted servers (vLLM, Ollama, local
# transformers) run the model's released processor: Qwen2.5-VL's preprocessor_config.json ships
# min 3,136 / max 12,845,056 pixels (factor 28), Qwen3-VL's 65,536 / 16,777,216 (factor 32).
QWEN_TOKENS_DEFAULT = 1280
QWEN_TOKENS_HIGH = 16384
QWEN25_PROCESSOR_PIXELS = (3136, 12845056)
QWEN3_PROCESSOR_PIXELS = (65536, 16777216)


@dataclass(frozen=True)
class QwenRule:
    """Qwen's smart_resize with one factor and pixel budget; :meth:`with_pixels` overrides the
    budget (a server's ``mm_processor_kwargs``, a local model's ``processor_kwargs``)."""

    factor: int
    min_pixels: int
    max_pixels: int

    def __call__(self, width: int, height: int) -> tuple[int, int]:
        return smart_resize(width, height, self.factor, self.min_pixels, self.max_pixels)

    def with_pixels(self, min_pixels: int | None, max_pixels: int | None) -> QwenRule:
        return QwenRule(
            self.factor,
            self.min_pixels if min_pixels is None else min_pixels,
            self.max_pixels if max_pixels is None else max_pixels,
        )


def _qwen_rule(factor: int, tokens: int) -> QwenRule:
    return QwenRule(factor, 4 * factor * factor, tokens * factor * factor)


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


# --- OpenAI patch models ---------------------------------------------------------------------
# Source: OpenAI "Images and vision" guide (coords.md Part B): gpt-4.1-mini, gpt-4.1-nano,
# o4-mini and the gpt-5 mini/nano models cut an image into 32-px patches, at most 1,536; a larger
# image is shrunk by sqrt(32*32*1536 / (w*h)), then a little more so that the width lands on a
# whole number of patches (1800x2400 -> 1056x1408, 1452 patches: the guide's worked example).

OPENAI_PATCH = 32
OPENAI_PATCH_BUDGET = 1536


def openai_patches(width: int, height: int) -> int:
    """32-px patches of an image as sent (ceil on both sides)."""
    return math.ceil(width / OPENAI_PATCH) * math.ceil(height / OPENAI_PATCH)


def openai_patch_size(width: int, height: int) -> tuple[int, int]:
    """The size a patch-based OpenAI model processes: at most 1,536 patches of 32 px.

    Example:
        >>> openai_patch_size(1024, 1024)
        (1024, 1024)
        >>> openai_patch_size(1800, 2400)
        (1056, 1408)
    """
    _check_size(width, height)
    if openai_patches(width, height) <= OPENAI_PATCH_BUDGET:
        return width, height
    shrink = math.sqrt(OPENAI_PATCH * OPENAI_PATCH * OPENAI_PATCH_BUDGET / (width * height))
    shrink *= min(
        math.floor(width * shrink / OPENAI_PATCH) / (width * shrink / OPENAI_PATCH),
        math.floor(height * shrink / OPENAI_PATCH) / (height * shrink / OPENAI_PATCH),
    )
    w, h = max(1, int(width * shrink)), max(1, int(height * shrink))
    while openai_patches(w, h) > OPENAI_PATCH_BUDGET:  # float edge cases: one pixel at a time
        w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h


OPENAI_LOW = 512


def openai_low_size(width: int, height: int) -> tuple[int, int]:
    """``detail="low"``: the model sees the image within a 512x512 box (OpenAI vision guide).

    Example:
        >>> openai_low_size(1920, 1080)
        (512, 288)
    """
    _check_size(width, height)
    scale = min(OPENAI_LOW / width, OPENAI_LOW / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


# --- registry of rules -----------------------------------------------------------------------

RESIZE_RULES: dict[str, ResizeRule] = {
    "qwen-smart-28": _qwen_rule(28, QWEN_TOKENS_DEFAULT),
    "qwen-smart-32": _qwen_rule(32, QWEN_TOKENS_DEFAULT),
    "qwen-smart-28-16k": _qwen_rule(28, QWEN_TOKENS_HIGH),
    "qwen-smart-32-16k": _qwen_rule(32, QWEN_TOKENS_HIGH),
    "qwen-smart-28@high": _qwen_rule(28, QWEN_TOKENS_HIGH),
    "qwen-smart-32@high": _qwen_rule(32, QWEN_TOKENS_HIGH),
    "qwen-proc-28": QwenRule(28, *QWEN25_PROCESSOR_PIXELS),
    "qwen-proc-32": QwenRule(32, *QWEN3_PROCESSOR_PIXELS),
    "claude": claude_size,
    "claude-hires": partial(claude_size, long_edge=2576, token_budget=4784),
    "openai-tile": openai_tile_size,
    "openai-tile@low": openai_low_size,
    "openai-patch": openai_patch_size,
}
"""Resize rules by name (``registry.ModelFamily.resize``): ``(w, h) -> (w, h)`` as the provider
processes the image. ``"<rule>@<variant>"`` applies when a parameter changes what the model sees
(``registry.ParamTable.variants``: ``detail="low"``, ``vl_high_resolution_images=True``)."""

Pixels = tuple[int | None, int | None]


def resize_rule(rule: str, pixels: Pixels | None = None) -> ResizeRule:
    """The rule named ``rule``, with a Qwen pixel budget override ``(min, max)`` when given."""
    try:
        fn = RESIZE_RULES[rule]
    except KeyError:
        known = ", ".join(sorted(RESIZE_RULES))
        raise ValueError(f"unknown resize rule {rule!r}; known: {known}") from None
    if pixels is not None and isinstance(fn, QwenRule):
        return fn.with_pixels(*pixels)
    return fn


def provider_size(
    rule: str | None, size: tuple[int, int], pixels: Pixels | None = None
) -> tuple[int, int]:
    """The size the model sees after the provider applies ``rule``; identity for ``None``.

    Example:
        >>> provider_size("openai-tile", (1920, 1080))
        (1365, 768)
        >>> provider_size(None, (1920, 1080))
        (1920, 1080)
        >>> provider_size("qwen-proc-32", (4032, 3024), pixels=(None, 1280 * 32 * 32))
        (1312, 960)
    """
    if rule is None:
        _check_size(*size)
        return size
    return resize_rule(rule, pixels)(*size)
