"""One fault, one error type, on every route (issue 10, "honest errors on every route").

Each fault is produced for real: a closed port (refused), an unresolvable host (DNS), the
emulator aborting the TCP connection (reset), holding the answer past the timeout (read timeout),
answering 413, or answering 200 with a body that is not JSON (malformed: retried as transient).
Routes: every native provider and the LiteLLM gateway.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes

litellm = pytest.mark.litellm

ROUTES: list[tuple[str, Callable[[Emulator], str]]] = [
    ("openai/gpt-4o-mini", lambda e: e.openai_base),
    ("qwen/qwen-vl-max", lambda e: e.openai_base),
    ("vllm/Qwen/Qwen2.5-VL-7B-Instruct", lambda e: e.openai_base),
    ("ollama/qwen2.5vl:7b", lambda e: e.ollama_base),
    ("moondream/moondream-3", lambda e: e.moondream_base),
    ("anthropic/claude-sonnet-4-5", lambda e: e.url),
    ("gemini/gemini-2.5-flash", lambda e: e.url),
    ("litellm/anthropic/claude-sonnet-4-5", lambda e: e.url),
    ("litellm/gemini/gemini-2.5-flash", lambda e: e.url),
    ("litellm/openai/gpt-4o-mini", lambda e: e.openai_base),
]
PARAMS = [
    pytest.param(m, b, id=m.split("/")[0] + ("/" + m.split("/")[1] if "litellm" in m else ""))
    if not m.startswith("litellm/")
    else pytest.param(m, b, id=m.rsplit("/", 1)[0], marks=litellm)
    for m, b in ROUTES
]


def _with_host(base: str, netloc: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(netloc=netloc))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make(model: str, base: str, **kw: object) -> vlgate.VlModel:
    kw.setdefault("max_retries", 0)
    return vlgate.create(model, api_key=KEY, api_base=base, backoff_base=0.0, **kw)


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_connection_refused_is_a_connection_error(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    url = _with_host(base(emulator), f"127.0.0.1:{_closed_port()}")
    with pytest.raises(vlgate.ConnectionError) as info:
        make(model, url, timeout=5).query(png_bytes(), "hi")
    assert info.value.retryable and not isinstance(info.value, vlgate.TimeoutError)


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_dns_failure_is_a_connection_error(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    url = _with_host(base(emulator), "vlgate-no-such-host.invalid:8000")
    with pytest.raises(vlgate.ConnectionError) as info:
        make(model, url, timeout=5).query(png_bytes(), "hi")
    assert not isinstance(info.value, vlgate.TimeoutError)


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_connection_reset_is_a_connection_error(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    emulator.script("*", ["reset"])
    with pytest.raises(vlgate.ConnectionError) as info:
        make(model, base(emulator)).query(png_bytes(), "hi")
    assert not isinstance(info.value, vlgate.TimeoutError)
    assert [r.fault for r in emulator.requests] == ["reset"]


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_read_timeout_is_a_timeout_error_naming_timeout_and_attempts(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    emulator.script("*", ["hang:5", "hang:5"])
    with pytest.raises(vlgate.TimeoutError) as info:
        make(model, base(emulator), timeout=0.4, max_retries=1).query(png_bytes(), "hi")
    assert info.value.attempts == 2 and len(emulator.requests) == 2
    text = str(info.value)
    assert "0.4" in text and "2 attempts" in text, text


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_413_is_a_provider_error_with_status_413(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    emulator.script("*", ["413"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(model, base(emulator), max_retries=2).query(png_bytes(), "hi")
    assert type(info.value) is vlgate.ProviderError
    assert info.value.status == 413 and not info.value.retryable
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_malformed_200_body_is_retried_as_transient(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    emulator.script("*", ["malformed", "ok"])
    answer = make(model, base(emulator), max_retries=1).query(png_bytes(), "hi")
    assert answer and answer.attempts == 2
    assert [r.fault for r in emulator.requests] == ["malformed", None]


@pytest.mark.parametrize(("model", "base"), PARAMS)
def test_malformed_200_body_when_retries_run_out_is_a_retryable_provider_error(
    emulator: Emulator, model: str, base: Callable[[Emulator], str]
) -> None:
    emulator.script("*", ["malformed"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(model, base(emulator)).query(png_bytes(), "hi")
    assert info.value.retryable and "malformed" in str(info.value)
