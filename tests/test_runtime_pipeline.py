"""Streaming batches: any iterable in, O(max_concurrency) images held, answers as they finish,
CPU work off the event loop; and the adaptive concurrency limit (AIMD)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

import vlgate
from vlgate.runtime.concurrency import ConcurrencyLimit, Gate
from vlgate.runtime.pipeline import as_completed, collect
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import KEY, jpeg_bytes, png_bytes


def make(emu: Emulator, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.openai_base)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create("openai/gpt-4o-mini", **kw)


def test_query_batch_takes_a_generator_and_answers_each_image_in_order(
    emulator: Emulator,
) -> None:
    scenes = [make_scene(seed, size=(320, 240)) for seed in range(8)]
    pulled_in: set[str] = set()

    def frames() -> Iterator[np.ndarray]:
        for s in scenes:
            pulled_in.add(threading.current_thread().name)
            yield np.asarray(s.image.convert("RGB"))

    answers = make(emulator, max_concurrency=3).query_batch(frames(), "How many shapes?")
    assert len(answers) == 8 == len(emulator.requests)
    for scene, answer in zip(scenes, answers, strict=True):
        assert str(len(scene.shapes)) in str(answer)
    # A generator (a video reader) is advanced in the worker pool, not on the event loop.
    assert all(name.startswith("vlgate-cpu") for name in pulled_in), pulled_in
    sizes = {r.images[0].size for r in emulator.requests}
    assert sizes == {(320, 240)}


def test_a_generator_is_pulled_only_as_slots_free(emulator: Emulator) -> None:
    """At most max_concurrency items are pulled but unanswered: memory is O(window)."""
    emulator.latency = 0.02
    pulled = 0
    window = 4

    def images() -> Iterator[bytes]:
        nonlocal pulled
        for i in range(40):
            pulled += 1
            yield png_bytes(color=(i, 10, 10))

    model = make(emulator, max_concurrency=window)
    seen = 0
    most_ahead = 0
    for _i, answer in model.iter_batch(images(), "describe"):
        assert isinstance(answer, str)
        seen += 1
        most_ahead = max(most_ahead, pulled - seen)
    assert seen == 40 == len(emulator.requests)
    assert most_ahead <= window


def test_iter_batch_yields_every_index_once_with_its_own_answer(emulator: Emulator) -> None:
    scenes = [make_scene(seed, size=(320, 240)) for seed in range(6)]
    got = dict(make(emulator, max_concurrency=6).iter_batch([s.image for s in scenes], "Count?"))
    assert sorted(got) == list(range(6))
    for i, scene in enumerate(scenes):
        assert str(len(scene.shapes)) in str(got[i])


def test_aiter_batch_over_an_async_iterable_and_early_exit_stops_pulling(
    emulator: Emulator,
) -> None:
    emulator.latency = 0.05
    pulled = 0

    async def camera() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield jpeg_bytes()

    async def main() -> list[int]:
        model = make(emulator, max_concurrency=2)
        got = []
        async with asyncio.timeout(30):
            batch = model.aiter_batch(camera(), "describe")
            async for i, _answer in batch:
                got.append(i)
                if len(got) == 3:
                    break
            await batch.aclose()  # type: ignore[attr-defined]
        await model.astop()
        return got

    got = asyncio.run(main())
    assert len(got) == 3
    assert pulled <= 3 + 2
    assert len(emulator.requests) <= 5


def test_a_bad_image_in_a_generator_is_its_error_with_return_exceptions(
    emulator: Emulator,
) -> None:
    def items() -> Iterator[bytes]:
        yield png_bytes()
        yield b"not an image"
        yield jpeg_bytes()

    out = make(emulator).query_batch(items(), "describe", return_exceptions=True)
    assert isinstance(out[0], str) and isinstance(out[2], str)
    assert isinstance(out[1], vlgate.ImageError)
    assert len(emulator.requests) == 2


def test_a_bad_image_in_a_generator_raises_without_return_exceptions(emulator: Emulator) -> None:
    def items() -> Iterator[bytes]:
        yield b"not an image"
        yield png_bytes()

    with pytest.raises(vlgate.ImageError):
        make(emulator, max_concurrency=1).query_batch(items(), "describe")


def test_a_frame_stack_is_a_batch_but_one_image_is_not(emulator: Emulator) -> None:
    model = make(emulator)
    stack = np.zeros((3, 24, 32, 3), np.uint8)
    assert len(model.query_batch(stack, "describe")) == 3
    for one in (np.zeros((24, 32, 3), np.uint8), png_bytes(), "a.png"):
        with pytest.raises(vlgate.ConfigError):
            model.query_batch(one, "describe")  # type: ignore[arg-type]
    assert len(emulator.requests) == 3


def test_the_emulator_never_sees_more_than_max_concurrency_at_once(emulator: Emulator) -> None:
    emulator.latency = 0.05
    model = make(emulator, max_concurrency=3)
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    # Counted around the library's real requests via the async twin on our own loop.
    async def main() -> None:
        nonlocal in_flight, peak

        async def probe() -> None:
            nonlocal peak
            while True:
                with lock:
                    live = sum(1 for r in emulator.requests if r.status is None)
                    peak = max(peak, live)
                await asyncio.sleep(0.005)

        task = asyncio.create_task(probe())
        await model.aquery_batch([png_bytes()] * 12, "describe")
        task.cancel()
        await model.astop()

    asyncio.run(main())
    assert len(emulator.requests) == 12
    assert 1 <= peak <= 3


# --- the pipeline on its own ---------------------------------------------------------------------


def test_as_completed_keeps_at_most_window_tasks_and_raises_the_first_error() -> None:
    running = 0
    peak = 0

    async def work(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (x % 3))
        running -= 1
        if x == 7:
            raise ValueError("seven")
        return x

    async def main() -> None:
        got = await collect(range(20), work, window=4, return_exceptions=True)
        assert [g for g in got if not isinstance(g, BaseException)] == [
            x for x in range(20) if x != 7
        ]
        assert isinstance(got[7], ValueError)
        with pytest.raises(ValueError, match="seven"):
            await collect(range(20), work, window=4)

    asyncio.run(main())
    assert peak == 4


def test_as_completed_stop_event_starts_nothing_new() -> None:
    started: list[int] = []

    async def work(x: int) -> int:
        started.append(x)
        await asyncio.sleep(0.01)
        return x

    async def main() -> list[int]:
        stop = asyncio.Event()
        out = []
        async for i, _ in as_completed(range(100), work, window=2, stop=stop):
            out.append(i)
            if len(out) == 4:
                stop.set()
        return out

    out = asyncio.run(main())
    assert len(out) == 4
    assert len(started) <= 6


def test_a_slow_producer_does_not_hold_back_finished_results() -> None:
    # The second item exists only once the first result is out: a consumer that waited for the
    # next item before yielding what is done would deadlock here (a camera, paths on stdin).
    first_out = threading.Event()

    def frames() -> Iterator[int]:
        yield 0
        assert first_out.wait(10), "the first result was held back until the next item"
        yield 1

    async def work(x: int) -> int:
        return x * 10

    async def main() -> list[tuple[int, int | BaseException]]:
        out = []
        async for got in as_completed(frames(), work, window=4):
            out.append(got)
            first_out.set()
        return out

    assert asyncio.run(main()) == [(0, 0), (1, 10)]


def test_closing_early_with_a_pull_in_flight_closes_the_generator() -> None:
    release = threading.Event()
    closed = threading.Event()

    def frames() -> Iterator[int]:
        try:
            yield 0
            release.wait(10)
            yield 1
        finally:
            closed.set()

    async def work(x: int) -> int:
        return x

    async def main() -> None:
        agen = as_completed(frames(), work, window=4)
        assert await agen.__anext__() == (0, 0)  # the pull of item 1 is now blocked
        close = asyncio.ensure_future(agen.aclose())
        await asyncio.sleep(0.05)
        release.set()  # the blocked next() returns; the generator is then closed
        await close

    asyncio.run(main())
    assert closed.wait(5)


# --- adaptive concurrency ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_fixed_limit_never_moves() -> None:
    limit = ConcurrencyLimit(16)
    limit.record(0.1, overloaded=True, in_flight=16)
    assert limit.limit == 16


def test_aimd_slow_start_then_halves_once_per_round_trip_then_grows_additively() -> None:
    clock = Clock()
    limit = ConcurrencyLimit(64, adaptive=True, initial=8, clock=clock)
    for _ in range(8):  # one round trip at full use: +1 per answer (doubles)
        limit.record(0.1, overloaded=False, in_flight=limit.limit)
    assert limit.limit == 16
    for _ in range(5):  # one burst of 429s is one signal
        limit.record(0.1, overloaded=True, in_flight=16)
    assert limit.limit == 8
    clock.t += 0.2
    limit.record(0.1, overloaded=True, in_flight=8)
    assert limit.limit == 4
    for _ in range(5):  # congestion avoidance: about +1 per round trip
        limit.record(0.1, overloaded=False, in_flight=4)
    assert limit.limit == 5
    assert limit.decreases == 2


def test_aimd_holds_when_latency_grows_or_the_limit_is_not_used() -> None:
    limit = ConcurrencyLimit(64, adaptive=True, initial=8)
    limit.record(0.1, overloaded=False, in_flight=8)
    assert limit.limit == 9
    limit.record(0.5, overloaded=False, in_flight=9)  # 5x the fastest: hold
    limit.record(0.1, overloaded=False, in_flight=2)  # mostly idle: no evidence
    assert limit.limit == 9
    for _ in range(200):
        limit.record(0.1, overloaded=False, in_flight=limit.limit)
    assert limit.limit == 64  # never past max_concurrency


def test_gate_admits_more_waiters_when_the_limit_grows() -> None:
    limit = ConcurrencyLimit(4, adaptive=True, initial=1)

    async def main() -> int:
        gate = Gate(limit)
        await gate.acquire()
        waiter = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.record(0.1, overloaded=False)  # 1 in flight at limit 1: grows to 2
        await asyncio.sleep(0)
        assert waiter.done()
        return gate.in_flight

    assert asyncio.run(main()) == 2


def test_adaptive_concurrency_backs_off_on_429s_from_the_emulator(emulator: Emulator) -> None:
    emulator.latency = 0.02
    emulator.script("gpt-4o-mini", ["429"] * 6)
    model = make(emulator, adaptive_concurrency=True, initial_concurrency=8, max_concurrency=32)
    assert model.concurrency == 8
    out = model.query_batch([png_bytes()] * 24, "describe", return_exceptions=True)
    assert all(isinstance(a, str) for a in out)
    assert sum(1 for r in emulator.requests if r.status == 429) == 6
    assert model.concurrency < 8  # halved at least once, not yet grown back
    fixed = make(emulator, max_concurrency=32)
    assert fixed.concurrency == 32


def test_default_concurrency_is_the_providers(emulator: Emulator) -> None:
    hosted = make(emulator)
    assert hosted.max_concurrency == hosted.concurrency == 64
    ollama = vlgate.create("ollama/qwen2.5vl:7b", api_base=emulator.openai_base)
    assert ollama.max_concurrency == 4
    assert make(emulator, max_concurrency=3).max_concurrency == 3


def test_aimd_keeps_a_rate_limited_batch_from_failing(emulator: Emulator) -> None:
    """20 requests a second, 60 frames at once: fixed 64 draws a storm of 429s; AIMD backs off."""
    emulator.latency = 0.02
    frames = [png_bytes(color=(i, 0, 0)) for i in range(60)]

    def run(**kw: object) -> tuple[list[object], int]:
        emulator.clear()
        emulator.rate_limit("gpt-4o-mini", rpm=20, window=1.0)
        model = make(emulator, max_retries=6, backoff_max=2.0, **kw)
        out = model.query_batch(frames, "describe", return_exceptions=True)
        return list(out), sum(1 for r in emulator.requests if r.status == 429)

    adaptive, adaptive_429 = run(adaptive_concurrency=True, initial_concurrency=4)
    assert all(isinstance(a, str) for a in adaptive)
    default, default_429 = run(max_concurrency=64)  # adaptive by default, from 64
    assert all(isinstance(a, str) for a in default)
    _, fixed_429 = run(max_concurrency=64, adaptive_concurrency=False)
    assert adaptive_429 < fixed_429 and default_429 <= fixed_429


def test_adaptive_by_default_starts_at_the_limit_and_only_backs_off(emulator: Emulator) -> None:
    model = make(emulator, max_concurrency=16)
    assert model.config.adaptive_concurrency and model.concurrency == 16
    model.query_batch([png_bytes()] * 32, "describe")  # no 429: nothing to adapt
    assert model.concurrency == 16
    emulator.script("gpt-4o-mini", ["429"] * 4)
    model.query_batch([png_bytes()] * 8, "describe")
    assert model.concurrency < 16


def test_a_bad_array_in_a_list_raises_before_anything_is_sent(emulator: Emulator) -> None:
    good = np.zeros((24, 32, 3), np.uint8)
    with pytest.raises(vlgate.ImageError, match="not an image"):
        make(emulator).query_batch([good, np.zeros((4, 4, 5), np.uint8), good], "describe")
    assert emulator.requests == []


def test_a_large_body_is_serialised_off_the_event_loop(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1080p frame's JSON body (~0.6 MB of base64) is dumped in the worker pool; a small one
    stays inline (a thread hop would cost more than it saves)."""
    from vlgate.providers import _http

    threads: list[str] = []
    real = _http.dumps

    def spy(body: object) -> bytes:  # observes, then serialises exactly as before
        threads.append(threading.current_thread().name)
        return real(body)

    monkeypatch.setattr(_http, "dumps", spy)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (1080, 1920, 3), np.uint8)
    model = make(emulator)
    model.query(big, "describe")
    model.query(png_bytes(), "describe")
    assert threads[0].startswith("vlgate-cpu") and not threads[1].startswith("vlgate-cpu")
    sent = [r.images[0] for r in emulator.requests]
    assert sent[0].size == (1365, 768) and sent[0].actual_mime == "image/jpeg"
    assert sent[1].size == (64, 48)
