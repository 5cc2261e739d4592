"""The hook point of the one attempt loop: what happened, as small frozen records.

The attempt loop (``vlgate._attempts``) is the only caller. It emits, for every call shape
(query, batch item, stream, JSON, caption, detect, point):

* :class:`RequestEvent` — an attempt is about to be sent (after the rate limiter let it go);
* :class:`RetryEvent` — an attempt failed transiently and another follows after ``delay``;
* :class:`ErrorEvent` — a route gave up (``fallback=True`` when the next route is tried);
* :class:`ResponseEvent` — an answer arrived (or came from the cache, ``cached=True``).

Events carry names, counts and timings only: never image bytes, prompts, answers or keys, so a
hook may ship them anywhere (tracing, metrics, logs). A hook is any callable taking one event;
an exception it raises is logged and swallowed, never breaking the call. Hooks run inline on
the event loop: keep them quick.

Example:
    >>> seen = []
    >>> hooks = Hooks([seen.append])
    >>> hooks.emit(RetryEvent(call_id=1, op="query", model="openai/gpt-4o", provider="openai",
    ...                       attempt=1, error="ProviderError", status=500, delay=0.5))
    >>> seen[0].attempt
    1
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

__all__ = [
    "ErrorEvent",
    "Event",
    "Hook",
    "Hooks",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "next_call_id",
]

log = logging.getLogger("vlgate")

_ids = itertools.count(1)


def next_call_id() -> int:
    """A process-unique id tying together the events of one call (all its attempts and routes)."""
    return next(_ids)


@dataclass(frozen=True)
class RequestEvent:
    """An attempt is about to be sent to ``model`` (``attempt`` is 1-based per route)."""

    call_id: int
    op: str
    model: str
    provider: str
    attempt: int
    images: int
    estimated_tokens: int


@dataclass(frozen=True)
class RetryEvent:
    """Attempt ``attempt`` failed with ``error`` (a class name); the next follows ``delay`` s on."""

    call_id: int
    op: str
    model: str
    provider: str
    attempt: int
    error: str
    status: int | None
    delay: float


@dataclass(frozen=True)
class ErrorEvent:
    """A route gave up after ``attempts``; ``fallback`` says whether another route follows."""

    call_id: int
    op: str
    model: str
    provider: str
    attempts: int
    error: str
    status: int | None
    fallback: bool


@dataclass(frozen=True)
class ResponseEvent:
    """An answer from ``model``: token counts as reported (or estimated), cost when priced."""

    call_id: int
    op: str
    model: str
    provider: str
    attempts: int
    latency: float
    input_tokens: int
    output_tokens: int
    image_tokens: int | None
    cost: float | None
    cached: bool


Event = Union[RequestEvent, RetryEvent, ErrorEvent, ResponseEvent]  # noqa: UP007 - py3.10 alias
Hook = Callable[[Event], None]


class Hooks:
    """The hooks of one model, called in order for every event.

    Example:
        >>> hooks = Hooks()
        >>> bool(hooks), hooks.add(print), bool(hooks)
        (False, None, True)
    """

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self._hooks: list[Hook] = list(hooks)

    def add(self, hook: Hook) -> None:
        """Call ``hook`` for every later event."""
        if not callable(hook):
            raise TypeError("a hook is a callable taking one event")
        self._hooks.append(hook)

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every hook; a failing hook is logged, not raised."""
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:  # a broken exporter must not break the call it observes
                log.warning(
                    "vlgate hook %r failed on %s", hook, type(event).__name__, exc_info=True
                )
