"""Streaming on the wire: OpenAI protocol via the SDK, Anthropic and Gemini via LiteLLM."""

from __future__ import annotations

import time

import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes

PROMPT = "Describe this image."
MODELS = [
    pytest.param("openai/gpt-4o-mini", "openai", "openai", id="openai"),
    pytest.param("anthropic/claude-sonnet-4-5", "root", "anthropic", id="anthropic"),
    pytest.param("gemini/gemini-2.5-flash", "root", "gemini", id="gemini"),
]


def make(emu: Emulator, model: str, base: str, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create(model, api_base=emu.openai_base if base == "openai" else emu.url, **kw)


def assert_streamed_whole(emu: Emulator, chunks: list[str]) -> None:
    """The chunks add up to the whole caption the emulator answered, about the image sent."""
    last = emu.requests[-1]
    assert last.status == 200 and [i.size for i in last.images] == [(64, 48)]
    assert "".join(chunks) == last.response_text
    assert "".join(chunks).startswith("A wide image of 1 shape")


@pytest.mark.parametrize(("model", "base", "protocol"), MODELS)
def test_stream_yields_the_same_text_as_query(
    emulator: Emulator, model: str, base: str, protocol: str
) -> None:
    m = make(emulator, model, base)
    whole = m.query(png_bytes(), PROMPT)
    chunks = list(m.stream(png_bytes(), PROMPT))
    assert len(chunks) > 1
    assert "".join(chunks) == str(whole)
    streamed = emulator.requests[1]
    assert streamed.protocol == protocol and streamed.stream is True
    assert streamed.status == 200


@pytest.mark.parametrize(("model", "base", "protocol"), MODELS)
async def test_astream_async(emulator: Emulator, model: str, base: str, protocol: str) -> None:
    m = make(emulator, model, base)
    async with m:
        chunks = [c async for c in m.astream(png_bytes(), PROMPT)]
    assert_streamed_whole(emulator, chunks)


@pytest.mark.parametrize(("model", "base", "protocol"), MODELS)
def test_truncated_stream_raises_a_vlgate_error(
    emulator: Emulator, model: str, base: str, protocol: str
) -> None:
    m = make(emulator, model, base, timeout=5)
    emulator.script(model.split("/", 1)[1], ["truncate"])
    got: list[str] = []
    started = time.perf_counter()
    with pytest.raises(vlgate.ProviderError):
        for chunk in m.stream(png_bytes(), PROMPT):
            got.append(chunk)
    # Raised promptly at the cut, not after a hang; the partial text never passes as whole.
    assert time.perf_counter() - started < 3.0
    whole = m.query(png_bytes(), PROMPT)
    assert "".join(got) != str(whole)


def test_truncated_openai_stream_is_a_retryable_connection_error(emulator: Emulator) -> None:
    m = make(emulator, "openai/gpt-4o-mini", "openai")
    emulator.script("gpt-4o-mini", ["truncate"])
    with pytest.raises(vlgate.ConnectionError) as info:
        list(m.stream(png_bytes(), PROMPT))
    assert info.value.retryable and "ended before" in str(info.value)


def test_stream_error_before_text_is_mapped(emulator: Emulator) -> None:
    m = make(emulator, "openai/gpt-4o-mini", "openai")
    emulator.script("gpt-4o-mini", ["401"])
    with pytest.raises(vlgate.AuthError):
        list(m.stream(png_bytes(), PROMPT))


def test_stalled_stream_times_out(emulator: Emulator) -> None:
    m = make(emulator, "openai/gpt-4o-mini", "openai", timeout=0.3, max_retries=1)
    emulator.script("gpt-4o-mini", ["hang:5", "hang:5", "hang:5", "ok"])
    started = time.perf_counter()
    with pytest.raises(vlgate.TimeoutError):
        list(m.stream(png_bytes(), PROMPT))
    assert time.perf_counter() - started < 2.0
    assert len(emulator.requests) == 2
    # The next call: one more stall, then the stream opens on the retry.
    assert_streamed_whole(emulator, list(m.stream(png_bytes(), PROMPT)))


def test_stream_respects_the_rate_limit(emulator: Emulator) -> None:
    m = make(emulator, "openai/gpt-4o-mini", "openai", rpm=1, timeout=1)
    assert list(m.stream(png_bytes(), PROMPT))
    with pytest.raises(vlgate.RateLimitError):
        list(m.stream(png_bytes(), PROMPT))
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(("model", "base", "protocol"), MODELS)
def test_stream_open_is_retried_before_any_text(
    emulator: Emulator, model: str, base: str, protocol: str
) -> None:
    m = make(emulator, model, base, max_retries=3)
    emulator.script(model.split("/", 1)[1], ["429:0.01", "503"])
    chunks = list(m.stream(png_bytes(), PROMPT))
    assert_streamed_whole(emulator, chunks)
    assert [r.status for r in emulator.requests] == [429, 503, 200]


def test_stream_is_not_retried_once_text_has_flowed(emulator: Emulator) -> None:
    m = make(emulator, "openai/gpt-4o-mini", "openai", max_retries=3)
    emulator.script("gpt-4o-mini", ["truncate", "ok"])
    with pytest.raises(vlgate.ConnectionError):
        list(m.stream(png_bytes(), PROMPT))
    assert len(emulator.requests) == 1
