from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlgate.errors import ImageError
from vlgate.sizing import (
    RESIZE_RULES,
    claude_size,
    openai_tile_size,
    provider_size,
    smart_resize,
)

# Worked examples from coords.md Part A (Qwen) and Part B (Claude, OpenAI).


@pytest.mark.parametrize(
    ("size", "kwargs", "expected"),
    [
        ((640, 480), {}, (644, 476)),
        ((1920, 1080), {}, (1932, 1092)),
        ((1920, 1080), {"max_pixels": 28 * 28 * 1280}, (1316, 728)),
        ((4032, 3024), {}, (4032, 3024)),
        ((4032, 3024), {"max_pixels": 28 * 28 * 1280}, (1148, 840)),
        ((10, 10), {}, (56, 56)),  # ceil to min_pixels = 4 patches
    ],
    ids=["640x480", "1080p-16k", "1080p-1280", "12mp-16k", "12mp-1280", "tiny"],
)
def test_smart_resize_examples(
    size: tuple[int, int], kwargs: dict[str, int], expected: tuple[int, int]
) -> None:
    assert smart_resize(*size, **kwargs) == expected


def test_smart_resize_factor_32() -> None:
    w, h = smart_resize(1920, 1200, factor=32, min_pixels=4 * 32 * 32, max_pixels=1280 * 32 * 32)
    assert w % 32 == 0 and h % 32 == 0
    assert w * h <= 1280 * 32 * 32
    assert (w, h) == (1440, 896)


def test_smart_resize_rejects_extreme_aspect() -> None:
    with pytest.raises(ImageError, match="aspect"):
        smart_resize(20100, 100)
    with pytest.raises(ValueError):  # ImageError is a ValueError too
        smart_resize(10, 3000)


@pytest.mark.parametrize("bad", [(0, 10), (10, -1), (1.5, 10)])
def test_sizes_must_be_positive_ints(bad: tuple[int, int]) -> None:
    for rule in RESIZE_RULES.values():
        with pytest.raises(ImageError):
            rule(*bad)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (1456, 819)),
        ((1240, 1754), (924, 1307)),
        ((800, 600), (800, 600)),
        ((1092, 1092), (1092, 1092)),
        ((4000, 100), (1568, 39)),
    ],
    ids=["1080p", "a4-portrait", "small", "legacy-square", "panorama"],
)
def test_claude_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    got = claude_size(*size)
    assert got == expected
    w, h = got
    assert max(w, h) <= 1568
    assert math.ceil(w / 28) * math.ceil(h / 28) <= 1568


def test_claude_hires_tier() -> None:
    # 1920x1080 = 2691 patches fits the high-res budget (4784) and the 2576 long edge.
    assert RESIZE_RULES["claude-hires"](1920, 1080) == (1920, 1080)
    w, h = RESIZE_RULES["claude-hires"](4032, 3024)
    assert max(w, h) <= 2576 and math.ceil(w / 28) * math.ceil(h / 28) <= 4784
    assert abs(w / h - 4032 / 3024) < 0.01


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (1365, 768)),
        ((1024, 1024), (768, 768)),
        ((4096, 1024), (2048, 512)),
        ((512, 300), (512, 300)),
        ((1080, 1920), (768, 1365)),
    ],
)
def test_openai_tile_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert openai_tile_size(*size) == expected


def test_provider_size() -> None:
    assert provider_size(None, (123, 45)) == (123, 45)
    assert provider_size("qwen-smart-28", (1920, 1080)) == (1316, 728)
    assert provider_size("qwen-smart-28-16k", (1920, 1080)) == (1932, 1092)
    assert provider_size("claude", (1920, 1080)) == (1456, 819)
    with pytest.raises(ValueError, match="unknown resize rule"):
        provider_size("nope", (10, 10))


def test_registry_rules_exist() -> None:
    from vlgate.registry import FAMILIES

    for fam in FAMILIES.values():
        if fam.resize is not None:
            assert fam.resize in RESIZE_RULES, fam.name


# Idempotence: pre-resizing to rule(w, h) makes the provider's own resize a no-op. Qwen's rounding
# of a very thin side can push the aspect ratio past 200 on the second pass, so the property is
# stated for aspect ratios up to 100 (any real camera or screen).
sides = st.integers(min_value=1, max_value=12000)


@settings(max_examples=300, deadline=None)
@given(w=sides, h=sides, rule=st.sampled_from(sorted(RESIZE_RULES)))
def test_rules_are_idempotent(w: int, h: int, rule: str) -> None:
    if max(w, h) / min(w, h) > 100:
        return
    fn = RESIZE_RULES[rule]
    once = fn(w, h)
    assert fn(*once) == once
    assert once[0] >= 1 and once[1] >= 1


@settings(max_examples=200, deadline=None)
@given(w=sides, h=sides)
def test_claude_and_openai_never_upscale_and_keep_aspect(w: int, h: int) -> None:
    for fn in (claude_size, openai_tile_size):
        nw, nh = fn(w, h)
        assert nw <= w and nh <= h
        if min(nw, nh) >= 50:
            assert abs(nw / nh - w / h) / (w / h) < 0.03


@settings(max_examples=200, deadline=None)
@given(w=st.integers(28, 8000), h=st.integers(28, 8000), factor=st.sampled_from([28, 32]))
def test_smart_resize_grid_and_budget(w: int, h: int, factor: int) -> None:
    if max(w, h) / min(w, h) > 200:
        return
    mx = 1280 * factor * factor
    nw, nh = smart_resize(w, h, factor=factor, min_pixels=4 * factor * factor, max_pixels=mx)
    assert nw % factor == 0 and nh % factor == 0
    assert 4 * factor * factor <= nw * nh <= mx
