"""Fallbacks, cooldown and timeouts on the wire, against the emulator."""

from __future__ import annotations

import time

import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY, SIZE_PROMPT, png_bytes, size_in


def make(emu: Emulator, fallbacks: list[object] | None = None, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.openai_base)
    kw.setdefault("backoff_base", 0.0)
    kw.setdefault("max_retries", 1)
    if fallbacks is None:
        fallbacks = [{"model": "openai/gpt-4o", "api_key": KEY, "api_base": emu.openai_base}]
    return vlgate.create("openai/gpt-4o-mini", fallbacks=fallbacks, **kw)


@pytest.mark.parametrize("fault", ["429", "503"])
def test_primary_keeps_failing_the_fallback_answers(emulator: Emulator, fault: str) -> None:
    emulator.script("gpt-4o-mini", [fault] * 10)
    answer = make(emulator).query(png_bytes(), "Describe this image.")
    assert answer.model == "gpt-4o"
    assert [(r.model, r.status) for r in emulator.requests] == [
        ("gpt-4o-mini", int(fault)),
        ("gpt-4o-mini", int(fault)),  # max_retries=1: two attempts on the primary
        ("gpt-4o", 200),
    ]


def test_cooldown_skips_the_primary_on_the_next_calls(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["503"] * 10)
    model = make(emulator, max_retries=0, cooldown_after=2, cooldown_seconds=30)
    for _ in range(4):
        assert model.query(png_bytes(), "hi").model == "gpt-4o"
    # Two failed calls put the primary in cooldown: calls 3 and 4 went straight to the fallback.
    assert [r.model for r in emulator.requests] == [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o",
        "gpt-4o",
    ]


def test_cooldown_ends_and_the_primary_is_used_again(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["503"])
    model = make(emulator, max_retries=0, cooldown_after=1, cooldown_seconds=0.3)
    assert model.query(png_bytes(), "hi").model == "gpt-4o"
    assert model.query(png_bytes(), "hi").model == "gpt-4o"  # cooling down
    time.sleep(0.35)
    assert model.query(png_bytes(), "hi").model == "gpt-4o-mini"


def test_total_timeout_bounds_a_hanging_primary(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["hang:5"])
    model = make(emulator, timeout=10, total_timeout=0.5)
    started = time.perf_counter()
    with pytest.raises(vlgate.TimeoutError, match="total_timeout"):
        model.query(png_bytes(), "hi")
    assert time.perf_counter() - started < 1.5
    assert [r.model for r in emulator.requests] == ["gpt-4o-mini"]


def test_per_call_timeout_then_fallback(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["hang:5", "hang:5"])
    started = time.perf_counter()
    answer = make(emulator).query(png_bytes(), "hi", timeout=0.3)
    assert answer.model == "gpt-4o"
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("status", ["400", "401", "403", "404"])
def test_permanent_error_on_the_primary_does_not_fall_back(emulator: Emulator, status: str) -> None:
    emulator.script("gpt-4o-mini", [status])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator).query(png_bytes(), "hi")
    assert info.value.status == int(status) and info.value.attempts == 1
    assert [r.model for r in emulator.requests] == ["gpt-4o-mini"]


def test_wrong_key_on_the_primary_is_an_auth_error_not_a_fallback(emulator: Emulator) -> None:
    model = make(emulator, api_key="sk-wrong-0123456789")
    with pytest.raises(vlgate.AuthError):
        model.query(png_bytes(), "hi")
    assert len(emulator.requests) == 1


def test_fallback_to_another_provider_through_litellm(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["529", "529"])
    fb = {"model": "anthropic/claude-sonnet-4-5", "api_key": KEY, "api_base": emulator.url}
    answer = make(emulator, fallbacks=[fb]).query(png_bytes((72, 40)), SIZE_PROMPT)
    assert size_in(answer) == (72, 40)
    assert [r.protocol for r in emulator.requests] == ["openai", "openai", "anthropic"]
    assert answer.usage.requests == 1 and answer.usage.cost is not None


def test_every_engine_failing_raises_the_last_error(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["503", "503"])
    emulator.script("gpt-4o", ["429:0", "429:0"])
    with pytest.raises(vlgate.RateLimitError):
        make(emulator).query(png_bytes(), "hi")
    assert len(emulator.requests) == 4


def test_fallback_has_its_own_rate_limit(emulator: Emulator) -> None:
    fb = {"model": "openai/gpt-4o", "api_key": KEY, "api_base": emulator.openai_base, "rpm": 1}
    model = make(emulator, fallbacks=[fb], max_retries=0, timeout=1, cooldown_after=100)
    emulator.script("gpt-4o-mini", ["503", "503"])
    assert model.query(png_bytes(), "hi").model == "gpt-4o"
    # The fallback's one request a minute is spent: the next fallback is refused client-side.
    with pytest.raises(vlgate.RateLimitError, match="client-side"):
        model.query(png_bytes(), "hi")
    assert [r.model for r in emulator.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]


def test_client_side_limit_on_the_primary_falls_back_without_cooldown(emulator: Emulator) -> None:
    model = make(emulator, rpm=1, timeout=1, cooldown_after=1)
    assert model.query(png_bytes(), "hi").model == "gpt-4o-mini"
    # The primary's budget is spent: the fallback answers, nothing over-limit is sent, and
    # the primary is not put in cooldown (it did not fail).
    assert model.query(png_bytes(), "hi").model == "gpt-4o"
    assert model.query(png_bytes(), "hi").model == "gpt-4o"
    assert [r.model for r in emulator.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o"]
    assert model._primary.cooldown_until == 0.0
