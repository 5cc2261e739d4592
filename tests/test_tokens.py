"""Image-token estimates before sending, and usage/cost on every answer (against the emulator)."""

from __future__ import annotations

import math

import pytest

import vlgate
from vlgate.registry import FAMILIES, resolve
from vlgate.testing import Emulator
from vlgate.tokens import MODEL_TOKEN_FORMULAS, TOKEN_FORMULAS, cost_of, formula_for

from .conftest import KEY, png_bytes

GPT = "openai/gpt-4o"
CLAUDE = "anthropic/claude-sonnet-4-5"
GEMINI = "gemini/gemini-2.5-flash"
QWEN = "qwen/qwen2.5-vl-72b-instruct"


def test_every_family_formula_exists() -> None:
    for fam in FAMILIES.values():
        assert fam.tokens is None or fam.tokens in TOKEN_FORMULAS, fam.name
    for _, name in MODEL_TOKEN_FORMULAS:
        assert name in TOKEN_FORMULAS


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        # OpenAI guide's worked examples: 1024^2 -> 4 tiles -> 765; 1920x1080 -> 6 tiles -> 1105.
        (GPT, (1024, 1024), 765),
        (GPT, (1920, 1080), 1105),
        (GPT, (512, 512), 85 + 170),
        # Claude: resized to 1456x819 -> 52 x 30 patches.
        (CLAUDE, (1920, 1080), 52 * 30),
        (CLAUDE, (200, 100), 8 * 4),
        # Gemini 2.x: <= 384 both sides -> 258; 1920x1080 -> 3 x 2 tiles.
        (GEMINI, (384, 384), 258),
        (GEMINI, (1920, 1080), 1548),
        (GEMINI, (385, 10), 258),
        # Qwen2.5-VL: smart_resize(640, 480) = 644x476 -> 23 x 17 tokens + 2.
        (QWEN, (640, 480), 23 * 17 + 2),
    ],
)
def test_provider_formulas(model: str, size: tuple[int, int], expected: int) -> None:
    assert vlgate.estimate_tokens(size, model) == expected


def test_per_model_overrides_are_data() -> None:
    assert formula_for(resolve("openai/gpt-4o-mini")).name == "openai-tile-mini"  # type: ignore[union-attr]
    assert formula_for(resolve("openai/gpt-4.1-mini")).name == "openai-patch-1.62"  # type: ignore[union-attr]
    # gpt-4o-mini: 2833 + 5667 per tile; 512x512 is one tile.
    assert vlgate.estimate_tokens((512, 512), "openai/gpt-4o-mini") == 2833 + 5667
    # Patch model: a small image is ceil(w/32)*ceil(h/32) patches x 1.62.
    assert vlgate.estimate_tokens((320, 320), "openai/gpt-4.1-mini") == math.ceil(100 * 1.62)
    # Gemini 3 bills a fixed count per image (media_resolution HIGH by default).
    assert vlgate.estimate_tokens((4032, 3024), "gemini/gemini-3-pro-preview") == 1120
    assert vlgate.estimate_tokens((4032, 3024), "gemini/gemini-2.5-pro") == 258 * 6 * 4
    # A huge image is capped at the 1536-patch budget.
    assert vlgate.estimate_tokens((8000, 8000), "openai/gpt-4.1-nano") <= math.ceil(1536 * 2.46)


def test_estimate_uses_the_size_vlgate_would_send() -> None:
    frame = png_bytes((1600, 1200))
    # auto_resize to 400x300 makes Claude count the smaller image: 15 x 11 patches.
    model = vlgate.create(CLAUDE, api_key=KEY, auto_resize=(400, 400))
    assert vlgate.estimate_tokens(frame, model) == math.ceil(400 / 28) * math.ceil(300 / 28)
    # Without it, Claude's own resize applies (1600x1200 -> within 1568 px and 1568 patches).
    full = vlgate.estimate_tokens(frame, CLAUDE)
    assert 1400 <= full <= 1568
    assert vlgate.estimate_tokens(vlgate.Image.load(frame), CLAUDE) == full


def test_unknown_family_is_a_config_error() -> None:
    with pytest.raises(vlgate.ConfigError, match="no image-token formula"):
        vlgate.estimate_tokens((100, 100), "openai/moondream2")
    with pytest.raises(vlgate.ConfigError):
        vlgate.estimate_tokens((0, 100), GPT)


def test_cost_from_family_prices() -> None:
    usage = vlgate.Usage(input_tokens=2_000_000, output_tokens=1_000_000)
    assert cost_of(resolve(CLAUDE), usage) == pytest.approx(2 * 3.0 + 15.0)
    assert cost_of(resolve("openai/generic-vlm"), usage) is None


@pytest.mark.parametrize(
    ("model", "base", "size"),
    [
        (GPT, "openai", (1280, 720)),
        (CLAUDE, "root", (900, 700)),
        (GEMINI, "root", (1000, 800)),
        (QWEN, "openai", (640, 480)),
    ],
)
def test_answer_usage_matches_what_the_provider_billed(
    emulator: Emulator, model: str, base: str, size: tuple[int, int]
) -> None:
    prompt = "Describe this image."
    m = vlgate.create(
        model,
        api_key=KEY,
        api_base=emulator.openai_base if base == "openai" else emulator.url,
        backoff_base=0,
    )
    image = png_bytes(size)
    answer = m.query(image, prompt)
    usage = answer.usage
    # The emulator bills ceil(len(prompt)/4) text tokens plus the provider's image formula on
    # what it received, so input minus text is the image count vlgate estimated before sending.
    text_tokens = math.ceil(len(prompt) / 4)
    assert usage.image_tokens == vlgate.estimate_tokens(image, m)
    assert usage.input_tokens - text_tokens == usage.image_tokens
    assert usage.output_tokens > 0 and usage.requests == 1
    priced = resolve(model).family.price_per_mtok
    if priced is None:
        assert usage.cost is None
    else:
        assert usage.cost is not None and usage.cost > 0
    total = m.usage
    assert total.input_tokens == usage.input_tokens and total.requests == 1
