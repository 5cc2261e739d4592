"""How many requests one model has in flight: a fixed cap, or one that adapts (AIMD).

:class:`ConcurrencyLimit` holds the limit, shared by every event loop and thread using the model;
:class:`Gate` is the per-loop waiting room in front of it. With ``adaptive=True`` the limit starts
at ``initial`` and moves within ``[1, maximum]``:

- *slow start*: +1 per answered request while the limit is in use (it doubles per round trip),
  until the first sign of overload;
- *additive increase*: afterwards, +1 per round trip (``+1/limit`` per answer) while latency
  holds (an answer slower than ``latency_factor`` x the fastest seen holds the limit still);
- *multiplicative decrease*: a 429 or an overload status (503, 529) halves the limit, at most
  once per round trip, so one burst of rejections counts as one signal.

The limit only grows while it is the bottleneck (most slots taken): a caller sending one request
at a time gives no evidence that 64 would be welcome.

Example:
    >>> limit = ConcurrencyLimit(64, adaptive=True, initial=8)
    >>> limit.record(0.2, overloaded=False, in_flight=8); limit.limit
    9
    >>> limit.record(0.2, overloaded=True, in_flight=9); limit.limit
    4
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from ..errors import ProviderError, RateLimitError

__all__ = ["ConcurrencyLimit", "Gate", "is_overload"]

_OVERLOAD_STATUS = frozenset({503, 529})


def is_overload(exc: BaseException) -> bool:
    """Whether ``exc`` says the provider wants less traffic (429, 503, 529)."""
    if isinstance(exc, RateLimitError):
        return not exc.client_side
    return isinstance(exc, ProviderError) and exc.status in _OVERLOAD_STATUS


class ConcurrencyLimit:
    """The number of requests allowed in flight, fixed or adapted to the provider's answers.

    Thread-safe: one instance serves every loop the model is used from. ``clock`` is injectable
    for tests.
    """

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool = False,
        initial: int | None = None,
        latency_factor: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = max(1, int(maximum))
        self.adaptive = adaptive
        start = self.maximum if not adaptive or initial is None else int(initial)
        self._limit = float(min(self.maximum, max(1, start)))
        self._slow_start = True
        self._fastest: float | None = None
        self._last_decrease = float("-inf")
        self._latency_factor = latency_factor
        self._clock = clock
        self._lock = threading.Lock()
        self.decreases = 0
        self.peak = int(self._limit)

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return int(self._limit)

    def record(self, latency: float, *, overloaded: bool, in_flight: int) -> None:
        """Feed one finished attempt: its ``latency`` and whether the provider was overloaded."""
        if not self.adaptive:
            return
        with self._lock:
            now = self._clock()
            if overloaded:
                # One halving per round trip: the rejections of one burst are one signal.
                window = self._fastest if self._fastest is not None else latency
                if now - self._last_decrease >= window:
                    self._limit = max(1.0, self._limit / 2)
                    self._last_decrease = now
                    self._slow_start = False
                    self.decreases += 1
                return
            if self._fastest is None or latency < self._fastest:
                self._fastest = latency
            slow = latency > self._latency_factor * self._fastest
            busy = in_flight >= self._limit - 1
            if slow or not busy or self._limit >= self.maximum:
                return
            step = 1.0 if self._slow_start else 1.0 / self._limit
            self._limit = min(float(self.maximum), self._limit + step)
            self.peak = max(self.peak, int(self._limit))


class Gate:
    """Per-event-loop admission to a :class:`ConcurrencyLimit` (a semaphore whose size moves).

    Example:
        >>> async def one(gate: Gate) -> int:
        ...     async with gate.slot():
        ...         return gate.in_flight
        >>> asyncio.run(one(Gate(ConcurrencyLimit(4))))
        1
    """

    def __init__(self, limit: ConcurrencyLimit) -> None:
        self._limit = limit
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._slot = _Slot(self)

    async def acquire(self) -> None:
        if self.in_flight < self._limit.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over as we were cancelled: pass it on
            else:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self._limit.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def record(self, latency: float, *, overloaded: bool) -> None:
        """Report one attempt to the limit, then admit waiters if it grew."""
        self._limit.record(latency, overloaded=overloaded, in_flight=self.in_flight)
        self._wake()

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the body of the ``async with``."""
        return self._slot


class _Slot(AbstractAsyncContextManager[None]):
    # A plain class, not @asynccontextmanager: a generator-based one costs an async generator,
    # its finalizer registration and a wrapper object on every request.
    __slots__ = ("_gate",)

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def __aenter__(self) -> None:
        await self._gate.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._gate.release()
