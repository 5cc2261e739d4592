"""The one retry layer: exponential backoff with full jitter, honouring Retry-After.

Retried: anything vlgate marks ``retryable`` — 429, 5xx, 408, timeouts, connection errors, malformed
bodies, empty answers. Never retried: 400/401/403/404 and every caller mistake.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ..errors import RateLimitError

__all__ = ["is_retryable", "with_retries"]

log = logging.getLogger("vlgate")
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a transient failure worth another attempt."""
    return bool(getattr(exc, "retryable", False))


class _Backoff:
    """Retry-After when the provider gave one (capped), otherwise full-jitter exponential."""

    def __init__(self, base: float, cap: float) -> None:
        self._cap = cap
        self._exp = wait_random_exponential(multiplier=base, max=cap) if base > 0 else None

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return min(exc.retry_after, self._cap)
        return self._exp(state) if self._exp else 0.0


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[T, int]:
    """Run ``call`` until it succeeds or fails permanently; return (result, attempts).

    The error raised after the last attempt carries ``attempts``.

    Example:
        >>> async def ok() -> str:
        ...     return "hi"
        >>> asyncio.run(with_retries(ok, max_retries=3))
        ('hi', 1)
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.debug(
            "attempt %d failed (%s); retrying in %.2fs",
            state.attempt_number,
            type(exc).__name__,
            state.upcoming_sleep,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=_Backoff(backoff_base, backoff_max),
        retry=retry_if_exception(is_retryable),
        reraise=True,
        sleep=sleep,
        before_sleep=before_sleep,
    )
    attempt = 0
    try:
        async for attempt_ctx in retrying:
            with attempt_ctx:
                attempt = attempt_ctx.retry_state.attempt_number
                result = await call()
        return result, attempt
    except BaseException as exc:
        if hasattr(exc, "attempts"):
            exc.attempts = attempt
        raise
