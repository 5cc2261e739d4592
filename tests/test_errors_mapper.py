"""The one status mapper and the one transport mapper, alone and on the wire."""

from __future__ import annotations

import itertools
import socket

import aiohttp
import httpx
import pytest

import vlgate
from vlgate import errors
from vlgate.providers._errors import error_for_status, error_for_transport, malformed_answer
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes

WHERE = {"provider": "p", "model": "m"}


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (401, b'{"error": {"message": "bad key"}}', errors.AuthError, False),
        (403, b"forbidden", errors.AuthError, False),
        (400, b'{"error": {"message": "API key not valid."}}', errors.AuthError, False),
        (400, b'{"detail": "bad image"}', errors.ProviderError, False),
        (413, b"too large", errors.ProviderError, False),
        (408, b"", errors.TimeoutError, True),
        (429, b'{"error": "slow down"}', errors.RateLimitError, True),
        (500, b"boom", errors.ProviderError, True),
        (503, None, errors.ProviderError, True),
    ],
)
def test_status_table(status: int, body: bytes | None, kind: type, retryable: bool) -> None:
    err = error_for_status(status, body, {}, **WHERE)
    assert type(err) is kind
    assert err.status == status and err.retryable is retryable
    assert err.provider == "p" and err.model == "m"


def test_status_message_and_retry_after_and_redaction() -> None:
    secret = "sk-supersecretvalue123"
    err = error_for_status(
        429,
        b'{"error": {"message": "key sk-supersecretvalue123 over quota"}}',
        {"retry-after-ms": "1500"},
        secrets=(secret,),
        **WHERE,
    )
    assert isinstance(err, errors.RateLimitError)
    assert err.retry_after == 1.5
    assert secret not in str(err) and secret not in repr(err.body)
    assert "over quota" in str(err)


def test_flags_are_declared_on_the_classes() -> None:
    assert errors.VlgateError.retryable is False and errors.VlgateError.client_side is False
    assert errors.ConnectionError.retryable and errors.TimeoutError.retryable
    assert errors.RateLimitError("x").retryable and not errors.RateLimitError("x").client_side
    local = errors.RateLimitError("x", client_side=True)
    assert local.client_side and not local.retryable
    assert errors.ResponseError("x", retryable=True).retryable
    assert malformed_answer("not JSON", **WHERE).retryable


def _chained(outer: BaseException, *inner: BaseException) -> BaseException:
    """``outer`` raised ``from`` each of ``inner`` in turn (innermost last)."""
    chain = [outer, *inner]
    for a, b in itertools.pairwise(chain):
        a.__cause__ = b
    return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "refused"), errors.ConnectionError),
        (ConnectionResetError(104, "reset"), errors.ConnectionError),
        (socket.gaierror(-2, "Name or service not known"), errors.ConnectionError),
        (httpx.ReadTimeout("slow"), errors.TimeoutError),
        (httpx.ConnectError("refused"), errors.ConnectionError),
        (aiohttp.ServerDisconnectedError(), errors.ConnectionError),
        # The openai SDK's aiohttp transport re-raises a refused connect as a connect timeout;
        # the cause chain still says what happened.
        (
            _chained(httpx.ConnectTimeout("t"), ConnectionRefusedError(111, "refused")),
            errors.ConnectionError,
        ),
        (
            _chained(httpx.ConnectTimeout("t"), aiohttp.ServerDisconnectedError()),
            errors.ConnectionError,
        ),
        (_chained(httpx.ReadTimeout("t"), aiohttp.SocketTimeoutError()), errors.TimeoutError),
    ],
)
def test_transport_table(exc: BaseException, kind: type) -> None:
    err = error_for_transport(exc, timeout=7.5, **WHERE)
    assert type(err) is kind and err.retryable
    if kind is errors.TimeoutError:
        assert "7.5s" in str(err)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_on_the_openai_route_is_a_connection_error() -> None:
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=base, max_retries=0)
    with pytest.raises(vlgate.ConnectionError):
        model.query(png_bytes(), "hi")


def test_read_timeout_names_the_timeout_and_the_attempts(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["hang", "hang"])
    model = vlgate.create(
        "openai/gpt-4o-mini",
        api_key=KEY,
        api_base=emulator.openai_base,
        timeout=0.3,
        max_retries=1,
        backoff_base=0.0,
    )
    with pytest.raises(vlgate.TimeoutError) as info:
        model.query(png_bytes(), "hi")
    assert info.value.attempts == 2
    assert "0.3s" in str(info.value) and "after 2 attempts" in str(info.value)
    assert len(emulator.requests) == 2
