"""Streaming batches: a window of work items over any iterable, results as they finish.

A batch of 50,000 frames must not hold 50,000 decoded images. :func:`as_completed` pulls the
next input only when one of at most ``window`` items in progress has finished, so loading,
resizing, encoding and the request of an item all happen inside that window and memory stays
O(window). CPU work (decode, resize, JPEG) runs in :func:`worker_pool`, a thread pool sized to
the cores, never on the event loop: a robot's other coroutines keep running during a batch.

Example:
    >>> async def double(x: int) -> int:
    ...     return 2 * x
    >>> async def main() -> list[tuple[int, int]]:
    ...     return sorted([r async for r in as_completed(range(3), double, window=2)])
    >>> asyncio.run(main())
    [(0, 0), (1, 2), (2, 4)]
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["as_completed", "collect", "cpu_bound", "encodes_inline", "offload", "worker_pool"]

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def worker_pool() -> ThreadPoolExecutor:
    """The process-wide pool for image CPU work, one thread per core.

    Pillow and simplejpeg release the GIL while they decode, resize and encode, so one thread per
    core uses the machine; more threads would only hold more images in memory at once.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            _pool = ThreadPoolExecutor(
                max_workers=max(2, cores or os.cpu_count() or 2), thread_name_prefix="vlgate-cpu"
            )
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child has none of the parent's threads, but the executor would still count them
    # and queue work for no one: the child starts its own pool on first use.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


async def offload(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in :func:`worker_pool` and await the result.

    Example:
        >>> asyncio.run(offload(sum, [1, 2, 3]))
        6
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(worker_pool(), call)


# Up to this many pixels (or bytes of an encoded file) the work is cheaper than a trip through the
# pool: decoding or JPEG-encoding 320x240 takes well under a millisecond, while a thread hop on a
# busy machine can take several. Anything larger goes to the pool.
_INLINE_PIXELS = 100_000
_INLINE_BYTES = 48 * 1024


def _small(obj: Any) -> bool:
    shape = getattr(obj, "shape", None)
    if isinstance(shape, tuple) and len(shape) >= 2:
        return int(shape[0]) * int(shape[1]) <= _INLINE_PIXELS
    size = getattr(obj, "size", None)
    if isinstance(size, tuple) and len(size) == 2:  # a PIL or vlgate image
        return int(size[0]) * int(size[1]) <= _INLINE_PIXELS
    if isinstance(obj, bytes | bytearray | memoryview):
        return len(obj) <= _INLINE_BYTES
    return False  # a path (file I/O) or anything unknown


def encodes_inline(subject: Any) -> bool:
    """Whether :func:`cpu_bound` works on ``subject`` inline, on the calling thread (a small
    image), rather than in the worker pool.

    Example:
        >>> encodes_inline(b"tiny"), encodes_inline("photo.jpg")
        (True, False)
    """
    return _small(subject)


async def cpu_bound(fn: Callable[..., T], subject: Any, /, *args: Any) -> T:
    """``fn(subject, *args)``: inline when ``subject`` is a small image (cheaper than a thread
    hop), else in :func:`worker_pool`. Either way the event loop never waits long.

    Example:
        >>> asyncio.run(cpu_bound(len, b"tiny"))
        4
    """
    if _small(subject):
        return fn(subject, *args)
    return await offload(fn, subject, *args)


_DONE = object()


def _next_or_done(iterator: Any) -> Any:
    return next(iterator, _DONE)


async def _pull(source: Iterable[T] | AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """The items of ``source``, one at a time, without blocking the loop on a slow producer:
    an iterable (a generator reading a video, a directory walk) is advanced in the worker pool,
    one ``next()`` at a time, so it never runs concurrently with itself.
    """
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
        return
    iterator = iter(source)
    try:
        while True:
            item = await offload(_next_or_done, iterator)
            if item is _DONE:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # A pull still running in the pool when we were cancelled: it cannot be closed now.
            with contextlib.suppress(ValueError):
                close()


async def as_completed(
    source: Iterable[T] | AsyncIterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    window: int | Callable[[], int],
    return_exceptions: bool = False,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[tuple[int, R | BaseException], None]:
    """Run ``fn`` on every item of ``source``, at most ``window`` at once; yield
    ``(index, result)`` in completion order.

    ``window`` may be a callable, read each time a slot frees (an adaptive concurrency limit).
    With ``return_exceptions`` an item's exception (an ``Exception``, not a cancellation) is
    yielded as its result; otherwise the first one cancels the items in progress and is raised.
    Setting ``stop`` starts no new item and cancels the ones in progress. Closing the iterator
    early cancels the items in progress too.
    """
    width = window if callable(window) else (lambda: window)
    # An in-memory sequence is read in place; anything else is pulled off the loop, and that
    # pull races the items in flight, so a slow producer (a camera, paths piped in) never holds
    # back the results already done.
    listed = iter(source) if isinstance(source, Sequence) else None
    items = _pull(source) if listed is None else None
    pull: asyncio.Future[T] | None = None
    pending: dict[asyncio.Future[R], int] = {}
    index = 0
    exhausted = False
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        while True:
            while not exhausted and pull is None and len(pending) < max(1, width()):
                if stop is not None and stop.is_set():
                    exhausted = True
                    break
                if items is not None:
                    pull = asyncio.ensure_future(items.__anext__())
                    break
                assert listed is not None
                try:
                    item = next(listed)
                except StopIteration:
                    exhausted = True
                    break
                pending[asyncio.ensure_future(fn(item))] = index
                index += 1
                del item  # the task holds it; this frame must not keep the last one alive
            if not pending and pull is None:
                return
            waiting: set[asyncio.Future[Any]] = set(pending)
            for extra in (pull, stopper):
                if extra is not None:
                    waiting.add(extra)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if stopper is not None and stopper in done:
                return
            if pull is not None and pull in done:
                got, pull = pull, None
                try:
                    pending[asyncio.ensure_future(fn(got.result()))] = index
                except StopAsyncIteration:
                    exhausted = True
                else:
                    index += 1
                del got
            for task in done:
                i = pending.pop(task, None)
                if i is None:
                    continue  # the pull or the stopper
                exc = task.exception()
                if exc is None:
                    yield i, task.result()
                elif return_exceptions and isinstance(exc, Exception):
                    yield i, exc
                else:
                    raise exc
    finally:
        if stopper is not None:
            stopper.cancel()
        for task in pending:
            task.cancel()
        if pull is not None:
            pull.cancel()
            await asyncio.gather(pull, return_exceptions=True)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if items is not None:
            await items.aclose()


async def collect(
    source: Iterable[T] | AsyncIterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    window: int | Callable[[], int],
    return_exceptions: bool = False,
) -> list[R | BaseException]:
    """:func:`as_completed`, gathered back into input order.

    Example:
        >>> async def neg(x: int) -> int:
        ...     return -x
        >>> asyncio.run(collect([1, 2, 3], neg, window=2))
        [-1, -2, -3]
    """
    out: dict[int, R | BaseException] = {}
    async for i, result in as_completed(
        source, fn, window=window, return_exceptions=return_exceptions
    ):
        out[i] = result
    return [out[i] for i in range(len(out))]
