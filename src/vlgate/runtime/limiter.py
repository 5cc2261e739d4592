"""Client-side rate limits: requests per minute and tokens per minute, per model route.

Each limit is a token bucket that holds one minute of budget and refills continuously (the model
Anthropic and OpenAI describe for their own limits). It is kept as a "theoretical arrival time"
(GCRA): taking ``cost`` pushes that time forward by ``cost / rate``; a caller may go once the time
is at most one minute ahead of now. Taking is a reservation under a ``threading.Lock``, so one
limiter is shared safely by every event loop and thread; the waiting itself is an ``asyncio.sleep``
in the caller's loop. Token reservations are estimates, corrected once the real usage is known.

Example:
    >>> limiter = RateLimiter(rpm=60, tpm=None)
    >>> asyncio.run(limiter.acquire(0)).waited
    0.0
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RateLimitError

__all__ = ["RateLimiter", "Reservation"]

_WINDOW = 60.0


class _Bucket:
    """One per-minute limit. Not thread-safe on its own: :class:`RateLimiter` locks around it."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / _WINDOW
        self.tat = now  # when the bucket would be full again

    def delay(self, cost: float, now: float) -> float:
        # A request larger than the whole budget waits only for a full bucket, never forever.
        step = min(cost, self.capacity) / self.rate
        return max(0.0, max(self.tat, now) + step - _WINDOW - now)

    def take(self, cost: float, now: float) -> None:
        self.tat = max(self.tat, now) + cost / self.rate

    def give_back(self, cost: float) -> None:
        self.tat -= cost / self.rate


@dataclass
class Reservation:
    """What :meth:`RateLimiter.acquire` took: settle it with the real token count."""

    limiter: RateLimiter | None
    tokens: int
    waited: float = 0.0

    def settle(self, actual_tokens: int | None) -> None:
        """Replace the token estimate with the real count (``None``: the request failed)."""
        if self.limiter is not None:
            self.limiter.adjust(self.tokens, actual_tokens)
            self.limiter = None


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits for one model route.

    ``clock`` is injectable for tests (``time.monotonic`` by default).

    Example:
        >>> limiter = RateLimiter(rpm=2, tpm=None)
        >>> [limiter.reserve(0) for _ in range(3)]   # the third waits 30 s
        [0.0, 0.0, 30.0]
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._requests = _Bucket(rpm, now) if rpm else None
        self._tokens = _Bucket(tpm, now) if tpm else None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def reserve(self, tokens: int, *, max_wait: float | None = None) -> float | None:
        """Take one request and ``tokens``; return the seconds to wait before sending.

        With ``max_wait`` set, nothing is taken and ``None`` is returned when the wait would
        be longer.
        """
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self._requests is not None:
                wait = self._requests.delay(1, now)
            if self._tokens is not None and tokens > 0:
                wait = max(wait, self._tokens.delay(tokens, now))
            if max_wait is not None and wait > max_wait:
                return None
            if self._requests is not None:
                self._requests.take(1, now)
            if self._tokens is not None and tokens > 0:
                self._tokens.take(tokens, now)
            return wait

    def adjust(self, estimated: int, actual: int | None) -> None:
        """Correct a token reservation: the real usage, or a refund when ``actual`` is None.

        A failed request keeps its request slot (providers count rejected requests too).
        """
        if self._tokens is None:
            return
        delta = (actual if actual is not None else 0) - estimated
        if delta:
            with self._lock:
                self._tokens.give_back(-delta)

    async def acquire(self, tokens: int, *, timeout: float | None = None) -> Reservation:
        """Wait until one request of about ``tokens`` tokens may be sent.

        Raises:
            RateLimitError: the wait would exceed ``timeout``; nothing is taken. Not retried,
                but marked ``client_side`` so a model with fallbacks tries the next one.
        """
        if not self.active:
            return Reservation(None, tokens)
        wait = self.reserve(tokens, max_wait=timeout)
        if wait is None:
            raise RateLimitError(
                f"client-side rate limit: the next slot is further away than timeout={timeout}s",
                retry_after=self.reserve_delay(tokens),
                client_side=True,
            )
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                self._release(tokens)
                raise
        return Reservation(self, tokens, waited=wait)

    def _release(self, tokens: int) -> None:
        # A caller cancelled while waiting: its slot goes back to the others.
        with self._lock:
            if self._requests is not None:
                self._requests.give_back(1)
            if self._tokens is not None and tokens > 0:
                self._tokens.give_back(tokens)

    def reserve_delay(self, tokens: int) -> float:
        """The wait a request of ``tokens`` would have now, without taking anything."""
        with self._lock:
            now = self._clock()
            wait = self._requests.delay(1, now) if self._requests else 0.0
            if self._tokens is not None and tokens > 0:
                wait = max(wait, self._tokens.delay(tokens, now))
            return wait
