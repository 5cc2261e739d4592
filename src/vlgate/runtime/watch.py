"""Live frame streams: ask about the latest camera frame at a steady rate, dropping stale ones.

A camera produces frames far faster than a model answers (30 fps against ~1 answer/s). Queueing
them would grow memory without bound and answer ever older frames, so vlgate keeps a single
"latest frame" slot: the source overwrites it, and at most ``hz`` times a second (and only while
fewer than ``max_in_flight`` requests are running) the newest frame is taken and sent. Frames
replaced before they were sent are counted as dropped. Memory holds one pending frame plus the
ones in flight, however long the stream runs.

A plain (sync) frame source is read in its own thread, so a blocking camera ``read()`` never
stalls the event loop; an async iterable is read in a task.

Example:
    >>> for ts, answer in model.watch(camera(), "Is the door open?", hz=1.0):  # doctest: +SKIP
    ...     print(ts, answer)
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import ConfigError, VlgateError
from .loop import iterate_sync

if TYPE_CHECKING:
    from ..grounding import Detections, Points
    from ..model import Answer, VlModel

    Result: TypeAlias = Answer | Detections | Points | VlgateError

# ``task=`` -> the VlModel coroutine asked about each frame (detect/point take a target).
_TASKS = {"query": "aquery", "caption": "acaption", "detect": "adetect", "point": "apoint"}

__all__ = ["FrameWatch", "SyncFrameWatch", "WatchStats"]

_DONE = object()


@dataclass
class WatchStats:
    """Counters of one watch: frames seen, frames dropped unsent, requests, answers, errors."""

    frames: int = 0
    dropped: int = 0
    sent: int = 0
    answered: int = 0
    errors: int = 0
    peak_in_flight: int = 0


def _split(item: Any) -> tuple[float, Any]:
    """``(timestamp, image)`` pairs pass through; a frame keeps its own ``.ts`` (a dimos Image);
    any other bare image is stamped with wall time now."""
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], Real)
        and not isinstance(item[0], bool)
    ):
        return float(item[0]), item[1]
    ts = getattr(item, "ts", None)
    if isinstance(ts, Real) and not isinstance(ts, bool) and hasattr(item, "format"):
        return float(ts), item
    return time.time(), item


class _LatestSlot:
    """One frame, overwritten by the producer; thread-safe; wakes the consumer on empty -> full."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stats: WatchStats) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()  # built on the loop's own thread
        self._lock = threading.Lock()
        self._item: tuple[float, Any] | None = None
        self._stats = stats
        self.ready = asyncio.Event()
        self.finished = False
        self.error: BaseException | None = None

    def _wake(self) -> None:
        try:
            if threading.get_ident() == self._loop_thread:
                self.ready.set()
            else:
                self._loop.call_soon_threadsafe(self.ready.set)
        except RuntimeError:  # the loop closed while the source was still producing
            pass

    def put(self, item: Any) -> None:
        stamped = _split(item)
        with self._lock:
            replaced = self._item is not None
            self._item = stamped
            self._stats.frames += 1
            if replaced:
                self._stats.dropped += 1
        if not replaced:
            self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        with self._lock:
            self.finished = True
            self.error = error
        self._wake()

    def take(self) -> tuple[float, Any] | None:
        with self._lock:
            item, self._item = self._item, None
            return item

    def has_frame(self) -> bool:
        with self._lock:
            return self._item is not None


class FrameWatch:
    """Async iterator of ``(frame_timestamp, answer)``; see :meth:`vlgate.VlModel.awatch`.

    ``stats`` counts frames, dropped frames and requests while it runs.
    """

    stats: WatchStats
    _model: VlModel
    _frames: Iterable[Any] | AsyncIterable[Any]
    _prompt: str
    _interval: float
    _max_in_flight: int
    _return_exceptions: bool
    _kwargs: dict[str, Any]
    _task: str

    def __init__(
        self,
        model: VlModel,
        frames: Iterable[Any] | AsyncIterable[Any],
        prompt: str,
        *,
        hz: float,
        max_in_flight: int,
        return_exceptions: bool,
        task: str,
        kwargs: dict[str, Any],
    ) -> None:
        # No defaults here: VlModel.awatch declares them, once.
        if task not in _TASKS:
            raise ConfigError(f"task must be one of {', '.join(_TASKS)}, got {task!r}")
        if task != "caption" and (not isinstance(prompt, str) or not prompt.strip()):
            raise ConfigError("prompt must be a non-empty string")
        if isinstance(hz, bool) or not isinstance(hz, Real) or not float(hz) > 0:
            raise ConfigError(f"hz must be a positive number, got {hz!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise ConfigError("max_in_flight must be a positive int")
        if max_in_flight < 1:
            raise ConfigError("max_in_flight must be a positive int")
        if not isinstance(frames, Iterable | AsyncIterable) or isinstance(frames, str | bytes):
            raise ConfigError("frames must be an iterable or async iterable of images")
        self._model = model
        self._frames = frames
        self._prompt = prompt
        self._interval = 1.0 / float(hz)
        self._max_in_flight = max_in_flight
        self._return_exceptions = return_exceptions
        self._kwargs = kwargs
        self._task = task
        self.stats = WatchStats()
        self._gen: AsyncIterator[tuple[float, Result]] | None = None

    def __aiter__(self) -> FrameWatch:
        return self

    async def __anext__(self) -> tuple[float, Result]:
        if self._gen is None:
            self._gen = self._run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop reading frames and cancel requests in flight."""
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    # -- producers ----------------------------------------------------------------------------

    def _read_sync(self, frames: Iterable[Any], slot: _LatestSlot, stop: threading.Event) -> None:
        try:
            for item in frames:
                if stop.is_set():
                    break
                slot.put(item)
        except BaseException as exc:
            slot.finish(exc)
        else:
            slot.finish()

    async def _read_async(self, frames: AsyncIterable[Any], slot: _LatestSlot) -> None:
        try:
            async for item in frames:
                slot.put(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            slot.finish(exc)
        else:
            slot.finish()

    async def _ask(self, frame: Any) -> Any:
        method = getattr(self._model, _TASKS[self._task])
        if self._task == "caption":
            return await method(frame, **self._kwargs)
        return await method(frame, self._prompt, **self._kwargs)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> AsyncIterator[tuple[float, Result]]:
        loop = asyncio.get_running_loop()
        stats = self.stats
        slot = _LatestSlot(loop, stats)
        stop = threading.Event()
        reader: asyncio.Task[None] | None = None
        if isinstance(self._frames, AsyncIterable):
            reader = asyncio.create_task(self._read_async(self._frames, slot))
        else:
            threading.Thread(
                target=self._read_sync,
                args=(self._frames, slot, stop),
                name="vlgate-watch-frames",
                daemon=True,
            ).start()
        in_flight: collections.deque[tuple[float, asyncio.Task[Any]]] = collections.deque()
        next_start = loop.time()
        try:
            while True:
                while in_flight and in_flight[0][1].done():
                    ts, task = in_flight.popleft()
                    exc = task.exception()
                    if exc is None:
                        stats.answered += 1
                        yield ts, task.result()
                    elif isinstance(exc, VlgateError) and self._return_exceptions:
                        stats.errors += 1
                        yield ts, exc
                    else:
                        stats.errors += 1
                        raise exc
                slot.ready.clear()
                if slot.finished and slot.error is not None and not slot.has_frame():
                    raise slot.error
                if slot.finished and not slot.has_frame() and not in_flight:
                    return
                delay: float | None = None
                if len(in_flight) < self._max_in_flight and slot.has_frame():
                    delay = next_start - loop.time()
                    if delay <= 0:
                        taken = slot.take()
                        if taken is not None:
                            ts, frame = taken
                            task = asyncio.create_task(self._ask(frame))
                            del frame, taken
                            in_flight.append((ts, task))
                            stats.sent += 1
                            stats.peak_in_flight = max(stats.peak_in_flight, len(in_flight))
                            next_start = loop.time() + self._interval
                        continue
                waiter = asyncio.ensure_future(slot.ready.wait())
                try:
                    await asyncio.wait(
                        [waiter, *(t for _, t in in_flight)],
                        timeout=delay,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
        finally:
            stop.set()
            if reader is not None:
                reader.cancel()
            for _, task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*(t for _, t in in_flight), return_exceptions=True)


class SyncFrameWatch:
    """Blocking iterator over a :class:`FrameWatch` run on vlgate's background loop."""

    def __init__(self, watch: FrameWatch) -> None:
        self._watch = watch
        self._iter: Iterator[tuple[float, Result]] | None = None

    @property
    def stats(self) -> WatchStats:
        return self._watch.stats

    def __iter__(self) -> SyncFrameWatch:
        return self

    def __next__(self) -> tuple[float, Result]:
        if self._iter is None:
            self._iter = iterate_sync(self._watch)
        return next(self._iter)

    def close(self) -> None:
        """Stop reading frames and cancel requests in flight."""
        if self._iter is not None:
            self._iter.close()  # type: ignore[attr-defined]
