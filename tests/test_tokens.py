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
        # Claude: resized to 1456x819 -> w*h/750.
        (CLAUDE, (1920, 1080), math.ceil(1456 * 819 / 750)),
        (CLAUDE, (200, 100), math.ceil(200 * 100 / 750)),
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
    # auto_resize to 400x300 makes Claude count the smaller image: 400*300/750.
    model = vlgate.create(CLAUDE, api_key=KEY, auto_resize=(400, 400))
    assert vlgate.estimate_tokens(frame, model) == 160
    # Without it, Claude's own resize applies (1600x1200 -> within 1568 px and 1568 patches).
    full = vlgate.estimate_tokens(frame, CLAUDE)
    assert 1400 <= full <= 1640  # at most 1568 28-px patches (~1.23 MP) / 750
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


# --- the providers' published worked examples (within 2%) ------------------------------------


def _close(got: int, expected: float) -> bool:
    return abs(got - expected) <= 0.02 * expected


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        # OpenAI "Images and vision" guide, calculating costs (coords.md Part B): tile models.
        ("openai/gpt-4o", (1024, 1024), 765),
        ("openai/gpt-4o", (2048, 4096), 1105),
        # OpenAI guide, patch models: 1024x1024 -> 1024 patches x 1.62 (gpt-4.1-mini) = 1,659;
        # 1800x2400 -> resized 1056x1408 -> 1452 patches.
        ("openai/gpt-4.1-mini", (1024, 1024), 1659),
        ("openai/gpt-4.1-mini", (1800, 2400), 1452 * 1.62),
        ("openai/gpt-4.1-nano", (1024, 1024), 1024 * 2.46),
        ("openai/o4-mini", (1800, 2400), 1452 * 1.72),
        # Anthropic vision docs, "calculate image costs" table: 200x200 ~54, 1000x1000 ~1334,
        # 1092x1092 ~1590 tokens.
        ("anthropic/claude-sonnet-4-5", (200, 200), 54),
        ("anthropic/claude-sonnet-4-5", (1000, 1000), 1334),
        ("anthropic/claude-sonnet-4-5", (1092, 1092), 1590),
        # Gemini token docs (geminibyexample.com calculate-input-tokens): <= 384 px -> 258;
        # 1920x1080 -> 6 tiles of 768 px -> 1548.
        ("gemini/gemini-2.5-flash", (384, 384), 258),
        ("gemini/gemini-2.5-flash", (1920, 1080), 1548),
        # Qwen3-VL on a self-hosted server: the released processor (min 65,536 / max 16,777,216
        # pixels, factor 32) keeps 4032x3024 as 4032x3008 -> 126 x 94 + 2 = 11,846.
        ("vllm/Qwen/Qwen3-VL-8B-Instruct", (4032, 3024), 11846),
        # Qwen2.5-VL self-hosted (qwen-vl-utils / preprocessor_config: max 12,845,056 pixels):
        # 1920x1080 -> 1932x1092 (coords.md worked example) -> 69 x 39 + 2.
        ("vllm/Qwen/Qwen2.5-VL-7B-Instruct", (1920, 1080), 69 * 39 + 2),
        ("ollama/qwen2.5vl:7b", (1920, 1080), 69 * 39 + 2),
        # DashScope keeps its ~1280-token cap: 1920x1080 -> 1316x728 -> 47 x 26 + 2.
        ("qwen/qwen2.5-vl-72b-instruct", (1920, 1080), 47 * 26 + 2),
    ],
)
def test_published_worked_examples(model: str, size: tuple[int, int], expected: float) -> None:
    got = vlgate.estimate_tokens(size, model)
    assert _close(got, expected), (model, size, got, expected)


def test_patch_models_are_pre_resized_by_the_patch_rule() -> None:
    cfg = vlgate.ModelConfig(model="openai/gpt-4.1-mini")
    from vlgate import planning

    # 1800x2400 -> 1056x1408 (OpenAI guide); the tile rule would send 768x1024.
    assert planning.target_size((1800, 2400), resolve(cfg.model), cfg) == (1056, 1408)
    assert planning.target_size((1800, 2400), resolve("openai/gpt-4o"), cfg) == (768, 1024)


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("openai/gpt-4o", {"detail": "low"}, 85),
        ("openai/gpt-4o-mini", {"detail": "low"}, 2833),
        ("gemini/gemini-3-pro-preview", {"media_resolution": "MEDIA_RESOLUTION_LOW"}, 280),
        ("gemini/gemini-3-pro-preview", {"media_resolution": "MEDIA_RESOLUTION_MEDIUM"}, 560),
        # DashScope vl_high_resolution_images: the 16,384-token cap -> 1932x1092.
        ("qwen/qwen2.5-vl-72b-instruct", {"vl_high_resolution_images": True}, 69 * 39 + 2),
        # vLLM mm_processor_kwargs max_pixels: the server's processor budget.
        (
            "vllm/Qwen/Qwen2.5-VL-7B-Instruct",
            {"mm_processor_kwargs": {"max_pixels": 1280 * 28 * 28}},
            47 * 26 + 2,
        ),
    ],
)
def test_parameters_that_change_what_the_model_sees(
    model: str, params: dict[str, object], expected: int
) -> None:
    assert vlgate.estimate_tokens((1920, 1080), model, **params) == expected


def test_detail_low_is_pre_resized_and_sent(emulator: Emulator) -> None:
    m = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emulator.openai_base)
    answer = m.query(png_bytes((1920, 1080)), "Describe.", detail="low")
    [req] = emulator.requests
    assert req.images[0].size == (512, 288) and req.images[0].detail == "low"
    assert answer.usage.image_tokens == 85


def test_image_tokens_never_exceed_the_billed_input(emulator: Emulator) -> None:
    # Tell vlgate the model is Claude while the server (emulator) bills a generic model's flat
    # count: the estimate is larger than the whole billed input, and is clamped to it.
    m = vlgate.create("openai/my-vlm", api_key=KEY, api_base=emulator.openai_base, family="claude")
    answer = m.query(png_bytes((1500, 1500)), "Describe.")
    assert answer.usage.input_tokens > 0
    assert answer.usage.image_tokens is not None
    assert answer.usage.image_tokens <= answer.usage.input_tokens
