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
    "ImageInfo",
    "LogHook",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "add_global_hook",
    "global_hooks",
    "next_call_id",
    "remove_global_hook",
]

log = logging.getLogger("vlgate")

_ids = itertools.count(1)


def next_call_id() -> int:
    """A process-unique id tying together the events of one call (all its attempts and routes)."""
    return next(_ids)


@dataclass(frozen=True)
class ImageInfo:
    """One image as sent: its size, sniffed type, byte count and a short content hash."""

    width: int
    height: int
    mime: str
    nbytes: int
    sha256: str
    """First 16 hex digits of the SHA-256 of the bytes sent: names a frame, reveals nothing."""


@dataclass(frozen=True)
class RequestEvent:
    """An attempt is about to be sent to ``model`` (``attempt`` is 1-based per route).

    ``server`` is the endpoint's base URL; ``params`` the names of the caller's request
    parameters; ``prompt`` is filled only when a hook asked for content (``add(hook,
    content=True)``).
    """

    call_id: int
    op: str
    model: str
    provider: str
    attempt: int
    images: int
    estimated_tokens: int
    server: str | None = None
    image_info: tuple[ImageInfo, ...] = ()
    params: tuple[str, ...] = ()
    prompt: str | None = None


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
    fallback_to: str | None = None
    """The model tried next, when ``fallback``."""


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
    response_model: str | None = None
    finish_reason: str | None = None
    text: str | None = None
    """The answer, only when a hook asked for content."""


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
        self._content = False

    def add(self, hook: Hook, *, content: bool = False) -> None:
        """Call ``hook`` for every later event.

        ``content=True``: the hook wants prompts and answers too (``RequestEvent.prompt``,
        ``ResponseEvent.text``); without it no event carries them.
        """
        if not callable(hook):
            raise TypeError("a hook is a callable taking one event")
        self._hooks.append(hook)
        self._content = self._content or content

    @property
    def wants_content(self) -> bool:
        """Whether some hook asked for prompts and answers."""
        return self._content or any(c for _, c in _GLOBAL)

    def __bool__(self) -> bool:
        return bool(self._hooks) or bool(_GLOBAL)

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every hook, then to the process-wide ones; a failing hook is logged,
        not raised."""
        for hook in [*self._hooks, *(h for h, _ in _GLOBAL)]:
            try:
                hook(event)
            except Exception:  # a broken exporter must not break the call it observes
                log.warning(
                    "vlgate hook %r failed on %s", hook, type(event).__name__, exc_info=True
                )


# Process-wide hooks (``vlgate.integrations.otel.instrument()``): every model calls them too.
_GLOBAL: list[tuple[Hook, bool]] = []


def add_global_hook(hook: Hook, *, content: bool = False) -> None:
    """Call ``hook`` for the events of every model in this process (tracing, metrics)."""
    if not callable(hook):
        raise TypeError("a hook is a callable taking one event")
    _GLOBAL.append((hook, content))


def remove_global_hook(hook: Hook) -> None:
    """Stop calling a hook added with :func:`add_global_hook` (no error when absent)."""
    _GLOBAL[:] = [(h, c) for h, c in _GLOBAL if h is not hook]


def global_hooks() -> list[Hook]:
    """The process-wide hooks, in call order."""
    return [h for h, _ in _GLOBAL]


class LogHook:
    """One log line per request, retry, fallback and answer (``vlgate -v``).

    ``detail=True`` (``-vv``) adds the request's shape: each image's size, type and bytes, and
    the parameter names. Lines carry no prompt, answer, image data or key.

    Example:
        >>> model.add_hook(LogHook(logging.getLogger("robot.vlm")))   # doctest: +SKIP
    """

    def __init__(self, logger: logging.Logger | None = None, *, detail: bool = False) -> None:
        self._log = logger or log
        self._detail = detail

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestEvent):
            line = f"-> {event.model} {event.op} attempt {event.attempt}"
            if self._detail:
                shapes = ", ".join(
                    f"{i.width}x{i.height} {i.mime} {i.nbytes}B" for i in event.image_info
                )
                line += f" images=[{shapes}] params=[{', '.join(event.params)}]"
                line += f" ~{event.estimated_tokens} tokens"
            self._log.info("%s", line)
        elif isinstance(event, RetryEvent):
            status = f" {event.status}" if event.status else ""
            self._log.info(
                "retry %s attempt %d failed: %s%s; next in %.2fs",
                event.model,
                event.attempt,
                event.error,
                status,
                event.delay,
            )
        elif isinstance(event, ErrorEvent):
            status = f" {event.status}" if event.status else ""
            then = f"; falling back to {event.fallback_to}" if event.fallback_to else ""
            self._log.info(
                "x  %s gave up after %d attempt(s): %s%s%s",
                event.model,
                event.attempts,
                event.error,
                status,
                then,
            )
        else:
            cost = f" ${event.cost:.6f}" if event.cost is not None else ""
            src = " (cache)" if event.cached else ""
            self._log.info(
                "<- %s %s %.3fs in=%d out=%d tokens%s%s",
                event.model,
                event.op,
                event.latency,
                event.input_tokens,
                event.output_tokens,
                cost,
                src,
            )
