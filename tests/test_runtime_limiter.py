"""Client-side rate limits: the token buckets on a fake clock, then on the wire."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import vlgate
from vlgate.runtime.limiter import RateLimiter
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rpm_bucket_bursts_one_minute_then_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=3, clock=clock)
    waits = [limiter.reserve(0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 20.0, 40.0]
    clock.now += 40.0  # two slots refilled, both already promised to the waiting callers
    assert limiter.reserve(0) == pytest.approx(20.0)


def test_tpm_bucket_is_corrected_by_real_usage() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=1000, clock=clock)
    assert limiter.reserve(1000) == 0.0
    assert limiter.reserve_delay(500) == pytest.approx(30.0)
    limiter.adjust(1000, 200)  # the request really used 200 tokens
    assert limiter.reserve_delay(500) == 0.0
    limiter.adjust(0, None)  # a refund of nothing changes nothing
    assert limiter.reserve(800) == 0.0
    assert limiter.reserve_delay(1) == pytest.approx(0.06)


def test_request_larger_than_the_budget_waits_for_a_full_bucket_only() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=100, clock=clock)
    assert limiter.reserve(5000) == 0.0  # would never fit; it goes when the bucket is full
    assert (limiter.reserve(10) or 0.0) > 60.0


def test_max_wait_takes_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=1, clock=clock)
    assert limiter.reserve(0) == 0.0
    assert limiter.reserve(0, max_wait=5) is None
    assert limiter.reserve_delay(0) == pytest.approx(60.0)


def test_reservations_are_exact_under_threads() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            w = limiter.reserve(0)
            assert w is not None
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 60 go at once, then exactly one per second: no slot handed out twice.
    assert sorted(waits) == pytest.approx([0.0] * 60 + [float(i) for i in range(1, 141)])


async def test_cancelled_waiter_gives_its_slot_back() -> None:
    limiter = RateLimiter(rpm=60)
    for _ in range(60):
        await limiter.acquire(0)
    task = asyncio.create_task(limiter.acquire(0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.reserve_delay(0) == pytest.approx(1.0, abs=0.05)


def make(emu: Emulator, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.openai_base)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create("openai/gpt-4o", **kw)


def test_rpm_spaces_requests_on_the_wire(emulator: Emulator) -> None:
    make(emulator).query(png_bytes(), "warm up")  # SDK imports, first connection
    emulator.clear()
    model = make(emulator, rpm=60, max_concurrency=64)
    started = time.time()
    answers = model.query_batch([png_bytes()] * 62, "Describe this image.")
    assert len(answers) == 62
    arrivals = sorted(r.t_received - started for r in emulator.requests)
    assert len(arrivals) == 62
    # 60 go at once (one minute of budget); then one a second.
    assert arrivals[59] < 0.9
    assert 0.95 <= arrivals[60] < 1.9
    assert arrivals[61] >= 1.95


def test_tpm_correction_lets_more_requests_through(emulator: Emulator) -> None:
    # The estimate (255 image + text + 256 output) is ~520 tokens; the emulator bills ~270.
    # Without the correction the 4th request would wait ~2 s for a 2000-token budget.
    model = make(emulator, tpm=2000)
    started = time.perf_counter()
    for _ in range(6):
        model.query(png_bytes(), "Describe this image.")
    assert time.perf_counter() - started < 1.5
    assert all(r.status == 200 for r in emulator.requests)


def test_wait_longer_than_the_timeout_raises_and_sends_nothing(emulator: Emulator) -> None:
    model = make(emulator, rpm=1, timeout=2)
    model.query(png_bytes(), "hi")
    started = time.perf_counter()
    with pytest.raises(vlgate.RateLimitError, match="client-side rate limit") as info:
        model.query(png_bytes(), "hi")
    assert time.perf_counter() - started < 0.5
    assert info.value.retry_after is not None and info.value.retry_after > 50
    assert len(emulator.requests) == 1


def test_limiter_is_shared_across_event_loops(emulator: Emulator) -> None:
    model = make(emulator, rpm=2, timeout=1)
    model.query(png_bytes(), "hi")  # vlgate's background loop
    asyncio.run(model.aquery(png_bytes(), "hi"))  # a second loop, same budget
    with pytest.raises(vlgate.RateLimitError):
        asyncio.run(model.aquery(png_bytes(), "hi"))
    with pytest.raises(vlgate.RateLimitError):
        model.query(png_bytes(), "hi")
    assert len(emulator.requests) == 2


def test_client_limit_avoids_provider_429s(emulator: Emulator) -> None:
    emulator.rate_limit("gpt-4o", rpm=10)
    model = make(emulator, rpm=10, timeout=1, max_retries=0)
    out = model.query_batch([png_bytes()] * 12, "hi", return_exceptions=True)
    sent = emulator.requests
    # Ten answered; the two over the limit were refused client-side, never sent.
    assert sum(isinstance(a, str) for a in out) == 10
    assert all(isinstance(a, vlgate.RateLimitError) for a in out if not isinstance(a, str))
    assert len(sent) == 10 and all(r.status == 200 for r in sent)
