"""The one place provider failures become vlgate errors. Every provider calls these.

Two mappers, no SDK imported at module level (an aiohttp- or httpx-based provider uses them
without loading the openai SDK):

``error_for_status(status, body, headers=None, *, provider, model, secrets=()) -> ProviderError``
    An HTTP error answer. ``body`` is the raw bytes, text or already-parsed JSON; the message is
    read from ``{"error": {"message": ...}}``, ``{"error": "..."}``, ``{"detail": ...}`` or
    ``{"message": ...}``, else the text. 401/403 (and a 400 whose message says the key is bad)
    -> :class:`~vlgate.AuthError`; 429 -> :class:`~vlgate.RateLimitError` with ``retry_after``
    from ``retry-after-ms`` / ``Retry-After`` in ``headers``; 408 -> :class:`~vlgate.TimeoutError`;
    anything else a :class:`~vlgate.ProviderError` carrying the status (5xx, 409 retryable).

``error_for_transport(exc, *, provider, model, secrets=(), timeout=None, during="the request")``
    A failure below HTTP. The exception's cause chain is read innermost first, because
    transports re-wrap (aiohttp's refused connect surfaces through the openai SDK as a
    "connect timeout"): connection refused / reset / DNS failure / a cut-off body ->
    :class:`~vlgate.ConnectionError`; a read or connect timeout -> :class:`~vlgate.TimeoutError`
    whose message names ``timeout`` (the retry layer adds the attempt count).

``malformed_answer(detail, *, provider, model, status=None)`` is the retryable
:class:`~vlgate.ProviderError` for a 2xx body that is not what the wire format promises.

All text passes through :func:`vlgate.errors.redact` with ``secrets``. Example::

    try:
        resp = await session.post(url, json=body)
    except aiohttp.ClientError as exc:
        raise error_for_transport(exc, provider="gemini", model=m, timeout=30.0) from None
    if resp.status >= 400:
        raise error_for_status(resp.status, await resp.read(), resp.headers,
                               provider="gemini", model=m, secrets=(key,))
"""

from __future__ import annotations

import builtins
import datetime
import email.utils
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .. import errors

__all__ = [
    "error_for_status",
    "error_for_transport",
    "error_message",
    "malformed_answer",
    "map_openai_error",
    "retry_after_seconds",
]

# Services that answer a bad key with 400 rather than 401 (Gemini: 400 INVALID_ARGUMENT
# "API key not valid. Please pass a valid API key.").
# A LiteLLM Proxy with no key database takes only its master key and answers any other key with
# 400 "No connected db." (with one, an unknown virtual key is a 401).
_AUTH_MESSAGES = ("api key not valid", "api_key_invalid", "invalid api key", "no connected db")

# Class names (anywhere in an exception's MRO) that mean "timed out" in libraries that do not
# subclass the builtin TimeoutError: httpx.TimeoutException, openai.APITimeoutError.
_TIMEOUT_NAMES = frozenset({"TimeoutException", "APITimeoutError"})


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), if given.

    Example:
        >>> retry_after_seconds({"retry-after": "2"})
        2.0
    """
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def error_message(body: Any, status: int | None = None) -> tuple[str, Any]:
    """(readable message, body as JSON when it parses else the text) from an error body.

    Example:
        >>> error_message(b'{"error": {"message": "slow down"}}')[0]
        'slow down'
    """
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    text = ""
    if isinstance(body, str):
        text = body.strip()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
    message: Any = None
    if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
        body = body[0]  # Gemini may wrap its error object in a one-element list
    if isinstance(body, dict):
        message = body.get("error", body.get("detail", body.get("message")))
        if isinstance(message, dict):
            message = message.get("message", message.get("detail", json.dumps(message)))
        elif isinstance(message, list):
            message = json.dumps(message)
    if not message:
        message = text[:500] or (f"HTTP {status}" if status is not None else "error")
    return str(message), body if body is not None else (text[:2000] or None)


def _gemini_retry_delay(body: Any) -> float | None:
    """Gemini's back-off is in the body: ``error.details[].retryDelay`` (``"47s"``) of a
    ``google.rpc.RetryInfo``."""
    err = body.get("error") if isinstance(body, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for d in details if isinstance(details, list) else ():
        delay = d.get("retryDelay") if isinstance(d, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def _cleaner(secrets: Iterable[str | None]) -> Any:
    keys = tuple(secrets)

    def clean(text: str) -> str:
        return errors.redact(text, *keys)

    return clean


def _clean_body(body: Any, clean: Any) -> Any:
    if body is None:
        return None
    try:
        return json.loads(clean(json.dumps(body)))
    except (TypeError, ValueError):
        return clean(str(body))


def error_for_status(
    status: int,
    body: Any,
    headers: Mapping[str, str] | Any = None,
    *,
    provider: str | None,
    model: str | None,
    secrets: Iterable[str | None] = (),
    message: str | None = None,
) -> errors.ProviderError:
    """The vlgate error for an HTTP error answer (see the module docstring for the table).

    ``message`` overrides the one read from ``body`` (an SDK that parsed it already).

    Example:
        >>> error_for_status(429, b"{}", {"retry-after": "3"}, provider="p", model="m").retry_after
        3.0
    """
    clean = _cleaner(secrets)
    found, parsed = error_message(body, status)
    text = clean(message or found)
    kwargs: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status": status,
        "body": _clean_body(parsed, clean),
    }
    if status in (401, 403) or (status == 400 and any(m in text.lower() for m in _AUTH_MESSAGES)):
        return errors.AuthError(text, **kwargs)
    if status == 429:
        retry_after = retry_after_seconds(headers)
        if retry_after is None:
            retry_after = _gemini_retry_delay(parsed)
        # Anthropic: a spend cap you set does not lift by waiting.
        capped = parsed is not None and "enforced_spend_limit_reached" in json.dumps(parsed)
        return errors.RateLimitError(text, retry_after=retry_after, retryable=not capped, **kwargs)
    if status == 408:
        return errors.TimeoutError(text, **kwargs)
    return errors.ProviderError(text, **kwargs)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (cycle-safe, bounded)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 16:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, builtins.TimeoutError):  # asyncio, socket, aiohttp.ServerTimeoutError
        return True
    return any(cls.__name__ in _TIMEOUT_NAMES for cls in type(exc).__mro__)


def _library_error(exc: BaseException, module: str, *names: str) -> bool:
    """``isinstance(exc, module.name)`` for a library that may not be imported (then False)."""
    found = sys.modules.get(module)
    for name in names:
        cls = getattr(found, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _is_connection(exc: BaseException) -> bool:
    # Refused / reset / aborted are builtins.ConnectionError and DNS failures socket.gaierror
    # (both OSError); aiohttp's disconnects and cut-off payloads and httpx's non-timeout
    # transport errors are not OSErrors.
    if _is_timeout(exc):
        return False
    return (
        isinstance(exc, OSError)
        or _library_error(exc, "aiohttp", "ClientConnectionError", "ClientPayloadError")
        or _library_error(exc, "httpx", "TransportError")
    )


def error_for_transport(
    exc: BaseException,
    *,
    provider: str | None,
    model: str | None,
    secrets: Iterable[str | None] = (),
    timeout: float | None = None,
    during: str = "the request",
) -> errors.ProviderError:
    """The vlgate error for a failure below HTTP: ``ConnectionError`` or ``TimeoutError``.

    Example:
        >>> type(error_for_transport(ConnectionRefusedError(), provider="p", model="m")).__name__
        'ConnectionError'
    """
    clean = _cleaner(secrets)
    where: dict[str, Any] = {"provider": provider, "model": model}
    for link in reversed(_chain(exc)):
        if _is_timeout(link):
            limit = f" ({timeout:g}s)" if timeout is not None else ""
            return errors.TimeoutError(
                clean(f"no answer within the timeout{limit} ({during})"), **where
            )
        if _is_connection(link):
            break
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return errors.ConnectionError(
        clean(
            f"the connection failed or ended before the answer was complete ({during}: {detail})"
        ),
        **where,
    )


def malformed_answer(
    detail: str, *, provider: str | None, model: str | None, status: int | None = None
) -> errors.ProviderError:
    """A 2xx answer whose body is not what the wire format promises: transient, retried.

    Example:
        >>> malformed_answer("not JSON", provider="p", model="m").retryable
        True
    """
    return errors.ProviderError(
        f"malformed response body ({detail})",
        status=status,
        provider=provider,
        model=model,
        retryable=True,
    )


def _is_transport(exc: BaseException) -> bool:
    """An httpx or aiohttp transport error (checked without importing either)."""
    if isinstance(exc, OSError | builtins.TimeoutError):
        return True
    return _library_error(exc, "httpx", "RequestError") or _library_error(
        exc, "aiohttp", "ClientError"
    )


def map_openai_error(
    exc: BaseException,
    *,
    provider: str,
    model: str,
    secrets: tuple[str | None, ...],
    timeout: float | None = None,
) -> errors.VlgateError:
    """Translate one openai-SDK (or LiteLLM, whose errors subclass them) exception.

    Status errors go through :func:`error_for_status`, connection and timeout errors through
    :func:`error_for_transport`; raw transport errors the SDK lets escape while reading a body
    are mapped the same way. Needs the openai SDK loaded (its callers have it).
    """
    import openai

    where: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, openai.APIConnectionError) or _is_transport(exc):
        return error_for_transport(exc, secrets=secrets, timeout=timeout, **where)
    if isinstance(exc, openai.APIStatusError):
        message = getattr(exc, "message", None) or str(exc)
        body = getattr(exc, "body", None)
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                message = err["message"]
        return error_for_status(
            exc.status_code,
            body,
            getattr(exc.response, "headers", None),
            message=message,
            secrets=secrets,
            **where,
        )
    clean = _cleaner(secrets)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
        return malformed_answer(clean(str(exc)), **where)
    if isinstance(exc, openai.APIError):
        # e.g. an error event inside a stream, or a LiteLLM error without a status.
        code: int | None = getattr(exc, "status_code", None)
        return errors.ProviderError(
            clean(str(exc)), status=code, retryable=code is None or code >= 500, **where
        )
    return errors.ProviderError(clean(f"{type(exc).__name__}: {exc}"), **where)
