"""Mapping of openai-SDK exceptions (which LiteLLM's exceptions subclass) to vlgate errors.

Imported only by the providers, after the openai SDK is loaded.
"""

from __future__ import annotations

import datetime
import email.utils
import json
from typing import Any

import openai

from .. import errors

__all__ = ["map_openai_error", "retry_after_seconds"]

# Services that answer a bad key with 400 rather than 401 (Gemini: 400 INVALID_ARGUMENT
# "API key not valid. Please pass a valid API key.").
_AUTH_MESSAGES = ("api key not valid", "api_key_invalid", "invalid api key")


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


def _status_message(exc: Any) -> tuple[str, Any]:
    body = getattr(exc, "body", None)
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message = err["message"]
    return message, body


def map_openai_error(
    exc: BaseException, *, provider: str, model: str, secrets: tuple[str | None, ...]
) -> errors.VlgateError:
    """Translate one SDK exception into the most specific vlgate error, redacting secrets."""
    where: dict[str, Any] = {"provider": provider, "model": model}

    def clean(text: str) -> str:
        return errors.redact(text, *secrets)

    def clean_body(body: Any) -> Any:
        if body is None:
            return None
        try:
            return json.loads(clean(json.dumps(body)))
        except (TypeError, ValueError):
            return clean(str(body))

    if isinstance(exc, openai.APITimeoutError):
        return errors.TimeoutError(clean(f"request timed out: {exc}"), **where)
    if isinstance(exc, openai.APIConnectionError):
        return errors.ConnectionError(clean(f"connection failed: {exc}"), **where)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message, body = _status_message(exc)
        kwargs = dict(where, status=status, body=clean_body(body))
        if status in (401, 403) or (
            status == 400 and any(m in message.lower() for m in _AUTH_MESSAGES)
        ):
            return errors.AuthError(clean(message), **kwargs)
        if status == 429:
            return errors.RateLimitError(
                clean(message),
                retry_after=retry_after_seconds(getattr(exc.response, "headers", None)),
                **kwargs,
            )
        if status == 408:
            return errors.TimeoutError(clean(message), **kwargs)
        return errors.ProviderError(clean(message), **kwargs)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        err = errors.ProviderError(clean(f"malformed response body: {exc}"), **where)
        err.retryable = True
        return err
    if isinstance(exc, openai.APIError):
        # e.g. an error event inside a stream, or a LiteLLM error without a status.
        code: int | None = getattr(exc, "status_code", None)
        err = errors.ProviderError(clean(str(exc)), status=code, **where)
        err.retryable = code is None or code >= 500
        return err
    err = errors.ProviderError(clean(f"{type(exc).__name__}: {exc}"), **where)
    return err
