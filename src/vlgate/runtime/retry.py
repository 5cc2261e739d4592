"""The one retry layer: exponential backoff with full jitter, honouring Retry-After.

Retried: anything vlgate marks ``retryable`` — 429, 5xx, 408, timeouts, connection errors, malformed
bodies, empty answers. Never retried: 400/401/403/404 and every caller mistake.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..errors import ProviderError, RateLimitError, VlgateError

__all__ = ["is_retryable", "with_retries"]

log = logging.getLogger("vlgate")
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a transient failure worth another attempt (its ``retryable`` flag)."""
    return isinstance(exc, VlgateError) and exc.retryable


def backoff_delay(exc: BaseException | None, attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): Retry-After when the provider gave one
    (capped), otherwise full jitter, uniform in [0, min(cap, base * 2**(attempt - 1))]."""
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return min(exc.retry_after, cap)
    return random.uniform(0.0, min(cap, base * 2 ** (attempt - 1))) if base > 0 else 0.0


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
    # The first attempt runs bare: most calls succeed, and tenacity's bookkeeping costs ~0.2 ms.
    try:
        return await call(), 1
    except BaseException as exc:
        if max_retries <= 0 or not is_retryable(exc):
            if isinstance(exc, ProviderError):
                exc.attempts = 1
            raise
        first = exc

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_delay(exc, state.attempt_number + 1, backoff_base, backoff_max)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.debug(
            "attempt %d failed (%s); retrying in %.2fs",
            state.attempt_number + 1,
            type(exc).__name__,
            state.upcoming_sleep,
        )

    delay = backoff_delay(first, 1, backoff_base, backoff_max)
    log.debug("attempt 1 failed (%s); retrying in %.2fs", type(first).__name__, delay)
    await sleep(delay)
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries),
        wait=wait,
        retry=retry_if_exception(is_retryable),
        reraise=True,
        sleep=sleep,
        before_sleep=before_sleep,
    )
    attempt = 1
    try:
        async for attempt_ctx in retrying:
            with attempt_ctx:
                attempt = attempt_ctx.retry_state.attempt_number + 1
                result = await call()
        return result, attempt
    except BaseException as exc:
        if isinstance(exc, ProviderError):
            exc.attempts = attempt
        raise
