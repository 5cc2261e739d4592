"""Every error vlgate raises, under one root.

    VlgateError
    ├── ConfigError          the caller's setup is wrong (unknown model, missing key, bad option)
    ├── ImageError           an image could not be loaded, decoded or fitted to the limits
    ├── ResponseError        the model answered, but not with something usable (empty, unparsable)
    │   └── ContentFilteredError   the provider withheld the answer (safety block, recitation,
    │                              refusal); carries the provider's ``reason``; not retried
    └── ProviderError        the provider refused or failed (carries ``status``)
        ├── AuthError            401 / 403
        ├── RateLimitError       429 (carries ``retry_after`` seconds when the provider said so)
        ├── TimeoutError         no answer within the timeout (also a ``builtins.TimeoutError``)
        └── ConnectionError      the connection failed or was reset

Caller mistakes (``ConfigError``, ``ImageError``) are raised before anything is sent.
Messages never contain API keys: provider messages are passed through ``redact()`` first.

Two flags are declared on every error (class defaults, overridable per instance):

* ``retryable`` — a transient failure worth another attempt (429, 5xx, 408, timeouts, connection
  errors, malformed or empty answers). ``runtime.retry`` retries exactly these.
* ``client_side`` — raised by vlgate itself before sending (the client-side rate limiter): no
  fault of the route, so a model with fallbacks moves on without putting the route in cooldown.
"""

from __future__ import annotations

import builtins
import re
from typing import Any

__all__ = [
    "AuthError",
    "ConfigError",
    "ConnectionError",
    "ContentFilteredError",
    "ImageError",
    "ProviderError",
    "RateLimitError",
    "ResponseError",
    "TimeoutError",
    "VlgateError",
    "redact",
]

# Shapes of common provider keys; anything that looks like one is masked in messages.
_KEY_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?<=[Bb]earer )[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{12,})"
)


def redact(text: str, *secrets: str | None) -> str:
    """Mask API keys in ``text``: the given secrets verbatim, and anything shaped like a key.

    Example:
        >>> redact("bad key sk-abcdefghijkl", None)
        'bad key ***'
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERNS.sub("***", text)


class VlgateError(Exception):
    """Root of every error vlgate raises.

    Attributes:
        retryable: whether another attempt may succeed (see the module docstring).
        client_side: raised by vlgate before anything was sent (no fault of the provider).
    """

    retryable: bool = False
    client_side: bool = False


class ConfigError(VlgateError):
    """The caller's configuration is wrong: unknown model, missing key, invalid option."""


class ImageError(VlgateError, ValueError):
    """An image could not be loaded, decoded, or made to fit the provider's limits."""


class ResponseError(VlgateError):
    """The model answered, but the answer is unusable (empty, not the JSON asked for, ...).

    Attributes:
        raw: the text the model returned, for inspection.
    """

    def __init__(self, message: str, *, raw: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.raw = raw
        self.retryable = retryable


class ContentFilteredError(ResponseError):
    """The provider withheld the answer on purpose: a safety block, a recitation stop, a refusal.

    Retrying the same request gives the same outcome, so it is never retried. ``reason`` is the
    provider's own word for it: Gemini's ``promptFeedback.blockReason`` or ``finishReason``
    (``SAFETY``, ``RECITATION``, ``PROHIBITED_CONTENT``, ...), Anthropic's ``refusal`` stop
    reason, OpenAI's ``content_filter`` finish reason. ``raw`` holds any partial text.

    Example:
        >>> err = ContentFilteredError("blocked", reason="SAFETY", provider="gemini")
        >>> (err.reason, err.retryable)
        ('SAFETY', False)
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        raw: str | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, raw=raw, retryable=False)
        self.reason = reason
        self.provider = provider
        self.model = model


class ProviderError(VlgateError):
    """The provider refused the request or failed to answer it.

    Attributes:
        status: the HTTP status code, when there was one.
        provider: the provider name (``openai``, ``litellm``, ...).
        model: the model string that was asked.
        body: the provider's error body (already redacted), when there was one.
        attempts: how many attempts were made before giving up (written by the retry layer).
        retryable: defaults to the status (408, 409, 5xx) or the class (429, timeouts,
            connection errors); ``retryable=True`` marks e.g. a malformed 200 body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        body: Any = None,
        attempts: int = 1,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.provider = provider
        self.model = model
        self.body = body
        self.attempts = attempts
        if retryable is not None:
            self.retryable = retryable
        elif status is not None and (status == 408 or status == 409 or status >= 500):
            self.retryable = True

    def __str__(self) -> str:
        base = super().__str__()
        parts = [p for p in (self.provider, self.model) if p]
        where = f" [{' '.join(parts)}]" if parts else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{base}{status}{tries}{where}"


class AuthError(ProviderError):
    """The provider rejected the credentials (401) or the permission (403)."""


class RateLimitError(ProviderError):
    """The provider is rate limiting (429). ``retry_after`` is in seconds, when given.

    ``client_side=True``: vlgate's own limiter refused to wait that long; nothing was sent, and
    it is not retried (the wait would only grow) but a model with fallbacks tries the next one.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        client_side: bool = False,
        **kwargs: Any,
    ) -> None:
        if client_side:
            kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.client_side = client_side


class TimeoutError(ProviderError, builtins.TimeoutError):
    """No answer arrived within the timeout."""

    retryable = True


class ConnectionError(ProviderError):
    """The connection could not be made (refused, DNS failure) or was reset mid-answer."""

    retryable = True
