"""The one retry layer: exponential backoff with full jitter, honouring Retry-After.

Retried: anything vlgate marks ``retryable`` — 429, 5xx, 408, timeouts, connection errors, malformed
bodies, empty answers. Never retried: 400/401/403/404 and every caller mistake.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..errors import ProviderError, RateLimitError, VlgateError

__all__ = ["RetryPolicy", "is_retryable", "with_retries"]

if TYPE_CHECKING:
    from ..config import ModelConfig

log = logging.getLogger("vlgate")
T = TypeVar("T")

OnRetry = Callable[[BaseException, int, float], None]
"""Called before each wait with (the error, the failed attempt's number, the delay in s)."""


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
    on_retry: OnRetry | None = None,
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

    def announce(exc: BaseException, attempt: int, delay: float) -> None:
        log.debug("attempt %d failed (%s); retrying in %.2fs", attempt, type(exc).__name__, delay)
        if on_retry is not None:
            on_retry(exc, attempt, delay)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            announce(exc, state.attempt_number + 1, state.upcoming_sleep)

    delay = backoff_delay(first, 1, backoff_base, backoff_max)
    announce(first, 1, delay)
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


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently to retry: the one policy, built from a model's config.

    Example:
        >>> policy = RetryPolicy(max_retries=3, backoff_base=0.0)
        >>> async def ok() -> str:
        ...     return "hi"
        >>> asyncio.run(policy.run(ok))
        ('hi', 1)
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    @classmethod
    def from_config(cls, config: ModelConfig) -> RetryPolicy:
        """The policy of ``config`` (``max_retries``, ``backoff_base``, ``backoff_max``)."""
        return cls(config.max_retries, config.backoff_base, config.backoff_max)

    async def run(
        self, call: Callable[[], Awaitable[T]], *, on_retry: OnRetry | None = None
    ) -> tuple[T, int]:
        """:func:`with_retries` under this policy; returns (result, attempts)."""
        return await with_retries(
            call,
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            on_retry=on_retry,
        )
