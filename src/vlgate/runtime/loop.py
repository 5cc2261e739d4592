"""The background event loop behind vlgate's sync API.

Every sync method runs its async twin here, so there is one implementation. It works from plain
scripts, from threads, and from inside a running event loop (a notebook) alike.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, cast

__all__ = [
    "PerLoop",
    "close_at_exit",
    "iterate_sync",
    "run_on_background",
    "run_sync",
    "sync_twin",
]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or not (_thread and _thread.is_alive()):
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="vlgate-loop", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def _forget_loop_after_fork() -> None:
    # The loop thread does not exist in a forked child; a lock another thread held at the fork
    # would stay held forever. The child starts its own loop on first use.
    global _lock, _loop, _thread
    _lock, _loop, _thread = threading.Lock(), None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loop_after_fork)


_POLL = 0.2
"""Seconds between wake-ups of a thread waiting on the background loop, so an exception raised
into it asynchronously (a thread interrupt) is seen; results still arrive without delay."""
_CANCEL_GRACE = 2.0
"""Seconds an interrupted caller waits for the cancelled work to unwind before re-raising."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on vlgate's background loop and block until it finishes.

    When the waiting thread is interrupted (Ctrl-C's ``KeyboardInterrupt``, ``SystemExit``, or
    any exception raised into the thread), the work on the loop is cancelled too: pending
    requests are never sent and in-flight ones are abandoned, before the exception goes on.

    Example:
        >>> async def double(x: int) -> int:
        ...     return 2 * x
        >>> run_sync(double(21))
        42
    """
    loop = _background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError(
            "a sync vlgate method was called from vlgate's own loop; use the a* method"
        )
    finished = threading.Event()
    abandoned = threading.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def guarded() -> T:
        try:
            if abandoned.is_set():  # the caller gave up before this even started
                coro.close()
                raise asyncio.CancelledError
            task = asyncio.current_task()
            if task is not None:
                tasks.append(task)
            return await coro
        finally:
            finished.set()

    future: concurrent.futures.Future[T] | None = None
    try:
        # Submitted inside the try: an interrupt landing at any point still cancels the work.
        future = asyncio.run_coroutine_threadsafe(guarded(), loop)
        while not future.done():
            concurrent.futures.wait([future], timeout=_POLL)
        return future.result()
    except BaseException:
        # Both run on the loop thread in order: the task is cancelled if it has started, and
        # bails out at once if it has not.
        abandoned.set()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(_cancel_all, tasks)
        if future is not None:
            finished.wait(_CANCEL_GRACE)
        raise


def sync_twin(
    afunc: Callable[P, R], run: Callable[[R], T], doc: str, *, returns: str | None = None
) -> Callable[P, T]:
    """The blocking twin of an async method: ``afunc``'s parameters, declared once (callers are
    type-checked through ``P``; ``help()`` shows them), and ``run`` applied to what it returns
    (:func:`run_sync` for a coroutine). Named ``afunc``'s name without its leading ``a``.

    Example:
        >>> class Model:
        ...     async def aping(self, n: int = 1) -> int:
        ...         return n
        ...     ping = sync_twin(aping, run_sync, "Sync :meth:`aping`.")
        >>> Model().ping(n=2), list(inspect.signature(Model.ping).parameters)
        (2, ['self', 'n'])
    """

    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return run(afunc(*args, **kwargs))

    name = afunc.__name__.removeprefix("a")
    owner, _, _ = afunc.__qualname__.rpartition(".")
    twin.__name__, twin.__qualname__ = name, f"{owner}.{name}" if owner else name
    twin.__module__, twin.__doc__ = afunc.__module__, doc
    signature = inspect.signature(afunc)
    if returns is not None:
        signature = signature.replace(return_annotation=returns)
    cast(Any, twin).__signature__ = signature
    return twin


def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()


def iterate_sync(agen: Any) -> Any:
    """Turn an async iterator into a blocking generator driven on the background loop.

    Interrupting the consumer (Ctrl-C, or closing the generator) cancels the pending step and
    closes the async iterator, so nothing keeps running on the loop.
    """
    iterator = agen.__aiter__()
    interrupted = False
    try:
        while True:
            try:
                item = run_sync(iterator.__anext__())
            except StopAsyncIteration:
                return
            except BaseException:
                interrupted = True
                raise
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                run_sync(aclose())
            except RuntimeError:
                # Cancelled mid-step, the generator may still be unwinding ("already running"):
                # the cancellation closes it; the interrupt is what the caller should see.
                if not interrupted:
                    raise


class PerLoop(Generic[T]):
    """One value per running event loop, made on first use there.

    asyncio clients, locks and semaphores belong to the loop that made them; a model is used from
    vlgate's background loop (the sync API) and from callers' own loops alike. Values of loops
    that have closed are dropped when a new loop asks.
    """

    def __init__(
        self,
        factory: Callable[[], T],
        close: Callable[[T], Coroutine[Any, Any, Any]] | None = None,
    ) -> None:
        self._factory = factory
        self._values: dict[asyncio.AbstractEventLoop, T] = {}
        if close is not None:
            # A model dropped without stop(): close its connections on loops still running, so
            # nothing is left to warn about "unclosed" sessions later.
            weakref.finalize(self, _close_values, self._values, close)

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            for old in [lp for lp in self._values if lp.is_closed()]:
                del self._values[old]
            value = self._values[loop] = self._factory()
        return value

    def pop(self) -> T | None:
        """Forget (and return) the current loop's value, if it has one."""
        return self._values.pop(asyncio.get_running_loop(), None)


def _close_values(
    values: dict[asyncio.AbstractEventLoop, Any],
    close: Callable[[Any], Coroutine[Any, Any, Any]],
) -> None:
    for loop, value in list(values.items()):
        if loop.is_running() and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(close(value), loop)
    values.clear()


_closers: weakref.WeakSet[Any] = weakref.WeakSet()


def close_at_exit(obj: Any) -> None:
    """Have ``obj.aclose()`` run on the background loop at interpreter exit.

    Connections opened by the sync API live on the background loop; closing them there before it
    stops keeps exit quiet (no "Unclosed client session" warnings) for callers who never stop().
    """
    _closers.add(obj)


def run_on_background(coro: Coroutine[Any, Any, Any], timeout: float) -> None:
    """Run ``coro`` on the background loop if it is running (at exit: before it stops), waiting
    at most ``timeout`` seconds; otherwise close ``coro`` unrun."""
    loop = _loop
    if loop is None or loop.is_closed() or not (_thread and _thread.is_alive()):
        coro.close()
        return
    asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=timeout)


def _shutdown() -> None:
    loop = _loop
    if loop is None or loop.is_closed() or not (_thread and _thread.is_alive()):
        return

    async def close_all() -> None:
        await asyncio.gather(*(c.aclose() for c in list(_closers)), return_exceptions=True)

    # Exiting anyway: never turn shutdown into a traceback.
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=5)
    loop.call_soon_threadsafe(loop.stop)


atexit.register(_shutdown)
