"""The native Anthropic and Gemini providers on the wire: what arrives, and every outcome typed.

``anthropic/`` and ``gemini/`` talk to the emulator directly (no LiteLLM); the same tests through
the gateway live in test_core_litellm.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

import vlgate
from vlgate.runtime.hooks import ResponseEvent
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes

CLAUDE = "anthropic/claude-sonnet-4-5"
GEMINI = "gemini/gemini-2.5-flash"


def make(emu: Emulator, model: str, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.url)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create(model, **kw)


class Count(BaseModel):
    count: int
    label: str


def test_native_routes_import_neither_litellm_nor_the_openai_sdk(emulator: Emulator) -> None:
    code = (
        "import sys, vlgate\n"
        f"for m in ({CLAUDE!r}, {GEMINI!r}, 'openai/gpt-4o-mini'):\n"
        f"    base = {emulator.url!r} + ('/v1' if m.startswith('openai') else '')\n"
        f"    m = vlgate.create(m, api_key={KEY!r}, api_base=base)\n"
        f"    assert m.query({png_bytes()!r}, 'hi')\n"
        "print(sorted(n for n in ('litellm', 'openai') if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert [r.protocol for r in emulator.requests] == ["anthropic", "gemini", "openai"]


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_anthropic_api_base_with_or_without_v1(emulator: Emulator, suffix: str) -> None:
    assert make(emulator, CLAUDE, api_base=emulator.url + suffix).query(png_bytes(), "hi")
    assert emulator.last.path == "/v1/messages" and emulator.last.status == 200


def test_anthropic_base_from_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)
    assert vlgate.create(CLAUDE, api_key=KEY).query(png_bytes(), "hi")
    assert emulator.last.headers["anthropic-version"] == "2023-06-01"


def test_anthropic_parameters_arrive_as_the_messages_api_names_them(emulator: Emulator) -> None:
    answer = make(emulator, CLAUDE).query(
        png_bytes(),
        "hi",
        stop="END",
        top_k=5,
        top_p=0.9,
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        metadata={"user_id": "robot-7"},
        seed=3,
    )
    body = emulator.last.body
    assert body["stop_sequences"] == ["END"] and body["top_k"] == 5 and body["top_p"] == 0.9
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 3000 and body["metadata"] == {"user_id": "robot-7"}
    assert "seed" not in body and answer.dropped_params == ("seed",)
    assert body["messages"][0]["content"][0]["type"] == "image"  # image before the text
    assert answer.finish_reason == "stop"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert answer.usage.cost is not None and answer.usage.cost > 0


def test_anthropic_default_max_tokens_clears_a_thinking_budget(emulator: Emulator) -> None:
    make(emulator, CLAUDE).query(
        png_bytes(), "hi", thinking={"type": "enabled", "budget_tokens": 8000}
    )
    assert emulator.last.body["max_tokens"] > 8000 and emulator.last.status == 200


def test_anthropic_structured_output_is_native(emulator: Emulator) -> None:
    got = make(emulator, CLAUDE).query_json(png_bytes(), "Count the shapes.", schema=Count)
    assert isinstance(got, Count)
    fmt = emulator.last.body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["additionalProperties"] is False
    assert set(fmt["schema"]["required"]) == {"count", "label"}
    assert "anthropic-beta" not in emulator.last.headers


def test_gemini_parameters_arrive_in_generation_config(emulator: Emulator) -> None:
    answer = make(emulator, GEMINI).query(
        png_bytes(),
        "hi",
        stop=["END"],
        top_k=4,
        max_tokens=500,
        seed=9,
        thinking_config={"thinking_budget": 0},
        media_resolution="low",
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    )
    body = emulator.last.body
    gc = body["generationConfig"]
    assert gc["stopSequences"] == ["END"] and gc["topK"] == 4 and gc["maxOutputTokens"] == 500
    assert gc["seed"] == 9 and gc["thinkingConfig"] == {"thinkingBudget": 0}
    assert gc["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert emulator.last.headers["x-goog-api-key"] == KEY and "key" not in emulator.last.query
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert answer.dropped_params == ()


def test_gemini_structured_output_is_native(emulator: Emulator) -> None:
    got = make(emulator, GEMINI).query_json(png_bytes(), "Count the shapes.", schema=Count)
    assert isinstance(got, Count)
    gc = emulator.last.body["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    assert gc["responseJsonSchema"]["properties"]["count"]["type"] == "integer"


def test_gemini_key_from_google_api_key(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    assert vlgate.create(GEMINI, api_base=emulator.url).query(png_bytes(), "hi")
    assert emulator.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_streaming_yields_the_same_text_as_query(emulator: Emulator, model: str) -> None:
    m = make(emulator, model)
    whole = str(m.query(png_bytes(), "Describe this image."))
    chunks = list(m.stream(png_bytes(), "Describe this image."))
    assert len(chunks) > 1 and "".join(chunks) == whole
    assert emulator.last.stream is True and emulator.last.status == 200
    if model == GEMINI:
        assert emulator.last.query == {"alt": "sse"}


@pytest.mark.parametrize("model", [CLAUDE, GEMINI, "openai/gpt-4o-mini"])
def test_a_stream_accounts_usage_and_cost_as_a_query_does(emulator: Emulator, model: str) -> None:
    """The counts the server sends at the end of a stream (Anthropic's message_start and
    message_delta, Gemini's usageMetadata, OpenAI's include_usage chunk) reach ``usage``, the
    cost and the response hook, equal to the same question asked without streaming."""
    base = emulator.openai_base if model.startswith("openai/") else emulator.url
    answer = make(emulator, model, api_base=base).query(png_bytes(), "Describe this image.")
    seen: list[object] = []
    m = make(emulator, model, api_base=base, hooks=[seen.append])
    text = "".join(m.stream(png_bytes(), "Describe this image."))
    assert text == str(answer) and emulator.last.stream is True and emulator.last.status == 200
    got = m.usage
    assert got.requests == 1 and answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert (got.input_tokens, got.output_tokens) == (
        answer.usage.input_tokens,
        answer.usage.output_tokens,
    )
    assert got.image_tokens == answer.usage.image_tokens
    assert answer.usage.cost is not None and got.cost == pytest.approx(answer.usage.cost)
    (event,) = [e for e in seen if isinstance(e, ResponseEvent)]
    assert (event.input_tokens, event.output_tokens) == (got.input_tokens, got.output_tokens)
    assert event.cost == pytest.approx(got.cost)


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_truncated_stream_is_a_connection_error(emulator: Emulator, model: str) -> None:
    emulator.script("*", ["truncate"])
    with pytest.raises(vlgate.ConnectionError, match="ended before"):
        list(make(emulator, model, max_retries=0).stream(png_bytes(), "Describe this image."))


def test_anthropic_overloaded_is_retried_and_then_reported(emulator: Emulator) -> None:
    emulator.script("*", ["529", "529", "529"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator, CLAUDE, max_retries=2).query(png_bytes(), "hi")
    assert info.value.status == 529 and info.value.attempts == 3
    assert info.value.body["error"]["type"] == "overloaded_error"
    assert len(emulator.requests) == 3


@pytest.mark.parametrize(
    ("model", "fault", "reason"),
    [
        (GEMINI, "blocked", "SAFETY"),
        (GEMINI, "recitation", "RECITATION"),
        (CLAUDE, "blocked", "refusal"),
        ("openai/gpt-4o-mini", "blocked", "content_filter"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["query", "stream"])
def test_withheld_answers_are_content_filtered_errors_not_retried(
    emulator: Emulator, model: str, fault: str, reason: str, stream: bool
) -> None:
    emulator.script("*", [fault, "ok"])
    base = emulator.openai_base if model.startswith("openai/") else emulator.url
    m = make(emulator, model, api_base=base, max_retries=3)
    if stream and model.startswith("openai/"):
        chunks = list(m.stream(png_bytes(), "hi"))  # an empty stream: nothing was withheld text
        assert chunks == []
        return
    with pytest.raises(vlgate.ContentFilteredError) as info:
        if stream:
            list(m.stream(png_bytes(), "hi"))
        else:
            m.query(png_bytes(), "hi")
    assert info.value.reason == reason and not info.value.retryable
    assert isinstance(info.value, vlgate.ResponseError)
    assert len(emulator.requests) == 1


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_request_too_large_is_413(emulator: Emulator, model: str) -> None:
    emulator.script("*", ["413"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator, model).query(png_bytes(), "hi")
    assert info.value.status == 413 and not info.value.retryable
    assert len(emulator.requests) == 1


def test_gemini_rate_limit_reads_retry_info_delay() -> None:
    from vlgate.providers._errors import error_for_status

    raw = (
        b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details":'
        b' [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "47s"}]}}'
    )
    err = error_for_status(429, raw, {}, provider="gemini", model="m")
    assert isinstance(err, vlgate.RateLimitError) and err.retry_after == 47.0


@pytest.mark.parametrize("model", [CLAUDE, GEMINI, "openai/gpt-4o-mini"])
def test_proxy_environment_is_honoured(
    emulator: Emulator, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY reach the shared client (as they did through the openai SDK's httpx): the
    emulator stands in for the proxy, so a host that does not resolve still gets an answer."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", emulator.url)
    base = "http://vlgate-behind-proxy.invalid" + ("/v1" if model.startswith("openai") else "")
    assert make(emulator, model, api_base=base).query(png_bytes(), "hi")
    assert emulator.last.status == 200
