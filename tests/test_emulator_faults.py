"""Fault injection, rate limits, latency, recording under concurrency, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vlgate.testing import Emulator
from vlgate.testing.faults import parse_fault

KEY = "emu-key"
H = {"Authorization": f"Bearer {KEY}"}


def body(model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.openai_base, headers=H, timeout=5) as c:
        yield c


def test_script_is_consumed_in_order_per_model(emulator: Emulator, client: httpx.Client) -> None:
    emulator.script("gpt-4o", ["429", "500", "503", "529", "ok"])
    statuses = [client.post("/chat/completions", json=body()).status_code for _ in range(6)]
    assert statuses == [429, 500, 503, 529, 200, 200]
    # Other models are not affected.
    emulator.script("gpt-4o", ["500"])
    assert client.post("/chat/completions", json=body("gpt-4o-mini")).status_code == 200
    assert [r.fault for r in emulator.requests][:5] == ["429", "500", "503", "529", None]


def test_429_carries_retry_after_and_protocol_body(emulator: Emulator) -> None:
    emulator.script("*", ["429:0.04", "429"])
    with httpx.Client(base_url=emulator.url) as c:
        r = c.post(
            "/v1/messages",
            json={
                "model": "claude-x",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "0.04"
        assert r.json()["error"]["type"] == "rate_limit_error"
        r = c.post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": KEY},
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "0.02"
        assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_anthropic_529_is_overloaded_error(emulator: Emulator) -> None:
    emulator.script("claude-x", ["overloaded"])
    with httpx.Client(base_url=emulator.url) as c:
        r = c.post(
            "/v1/messages",
            json={
                "model": "claude-x",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
    assert r.status_code == 529 and r.json()["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }


def test_fault_header(emulator: Emulator, client: httpx.Client) -> None:
    r = client.post("/chat/completions", json=body(), headers={"x-emulator-fault": "502"})
    assert r.status_code == 502 and r.json()["error"]["type"] == "server_error"
    assert client.post("/chat/completions", json=body()).status_code == 200


def test_random_faults_are_seeded(emulator: Emulator, client: httpx.Client) -> None:
    def run() -> list[int]:
        emulator.set_faults(rate=0.5, kinds=["429", "503"], seed=7)
        return [client.post("/chat/completions", json=body()).status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert 5 <= sum(s != 200 for s in first) <= 25 and set(first) <= {200, 429, 503}
    emulator.set_faults(rate=0.0, kinds=[])
    assert client.post("/chat/completions", json=body()).status_code == 200


def test_reset_malformed_empty_null(emulator: Emulator, client: httpx.Client) -> None:
    emulator.script("gpt-4o", ["reset", "malformed", "empty", "null"])
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=body())
    r = client.post("/chat/completions", json=body())
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    assert (
        client.post("/chat/completions", json=body()).json()["choices"][0]["message"]["content"]
        == ""
    )
    assert (
        client.post("/chat/completions", json=body()).json()["choices"][0]["message"]["content"]
        is None
    )
    recs = emulator.requests
    assert recs[0].status == 0 and recs[0].error == "connection reset (emulated)"


def test_truncated_stream_has_no_done(emulator: Emulator, client: httpx.Client) -> None:
    emulator.script("gpt-4o", ["truncate"])
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json=body(stream=True)) as r,
    ):
        for line in r.iter_lines():
            received.append(line)
    assert any(x.startswith("data: {") for x in received)
    assert "data: [DONE]" not in received


def test_hang_outlasts_client_timeout_without_blocking_others(emulator: Emulator) -> None:
    emulator.script("slowpoke", ["hang:3"])
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            httpx.post(
                emulator.openai_base + "/chat/completions",
                json=body("slowpoke"),
                headers=H,
                timeout=0.3,
            )
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=hang)
    t.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    r = httpx.post(emulator.openai_base + "/chat/completions", json=body(), headers=H, timeout=2)
    # Not queued behind the 3 s hang (a generous bound: shared CI machines are noisy).
    assert r.status_code == 200 and time.perf_counter() - t0 < 1.5
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], httpx.ReadTimeout)


def test_shutdown_ends_hanging_requests_quickly() -> None:
    emu = Emulator(api_key=KEY, hang_seconds=60).start()
    emu.script("*", ["hang"])
    t = threading.Thread(
        target=lambda: _swallow(
            lambda: httpx.post(
                emu.openai_base + "/chat/completions", json=body(), headers=H, timeout=30
            )
        )
    )
    t.start()
    while not emu.requests:
        time.sleep(0.01)
    t0 = time.perf_counter()
    emu.stop()
    assert time.perf_counter() - t0 < 3
    t.join(5)
    assert not t.is_alive()
    assert not any(th.name == "vlgate-emulator" for th in threading.enumerate())


def _swallow(fn: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        fn()


def test_latency_fixed_adjustable_and_slow_fault(emulator: Emulator, client: httpx.Client) -> None:
    emulator.latency = 0.15
    t0 = time.perf_counter()
    assert client.post("/chat/completions", json=body()).status_code == 200
    assert time.perf_counter() - t0 >= 0.15
    emulator.latency = 0.0
    emulator.script("gpt-4o", ["slow:0.2"])
    t0 = time.perf_counter()
    client.post("/chat/completions", json=body())
    assert time.perf_counter() - t0 >= 0.2


def test_random_latency_range() -> None:
    with Emulator(api_key=None, latency=(0.05, 0.1), seed=3) as emu:
        t0 = time.perf_counter()
        httpx.post(emu.openai_base + "/chat/completions", json=body())
        assert 0.05 <= time.perf_counter() - t0 < 1.0


def test_rate_limit_rpm_and_tpm(emulator: Emulator, client: httpx.Client) -> None:
    emulator.rate_limit("gpt-4o", rpm=3)
    statuses = [client.post("/chat/completions", json=body()).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = emulator.requests[-1]
    assert last.status == 429 and "Rate limit reached" in (last.error or "")
    r = client.post("/chat/completions", json=body())
    assert 0 < float(r.headers["retry-after"]) <= 60
    emulator.rate_limit("big", tpm=50)
    long_prompt = {"model": "big", "messages": [{"role": "user", "content": "x" * 400}]}
    assert client.post("/chat/completions", json=long_prompt).status_code == 429  # ~100 tokens > 50
    assert client.post("/chat/completions", json=body("big")).status_code == 200


def test_rate_limit_window_slides() -> None:
    from vlgate.testing.faults import FaultBook

    book = FaultBook()
    book.set_limit("m", rpm=2, tpm=None)
    assert book.check_limit("m", 1, now=0.0) is None
    assert book.check_limit("m", 1, now=10.0) is None
    assert book.check_limit("m", 1, now=20.0) == pytest.approx(40.0)
    assert book.check_limit("m", 1, now=60.5) is None  # the first request left the window


@pytest.mark.parametrize(
    ("spec", "kind", "status", "seconds"),
    [
        pytest.param("ok", "ok", 200, None, id="ok"),
        pytest.param("429:1.5", "status", 429, 1.5, id="429-retry"),
        pytest.param("hang:2", "hang", 200, 2.0, id="hang"),
        pytest.param("overloaded", "status", 529, None, id="overloaded"),
        pytest.param("truncate", "truncate", 200, None, id="truncate"),
    ],
)
def test_parse_fault(spec: str, kind: str, status: int, seconds: float | None) -> None:
    f = parse_fault(spec)
    assert (f.kind, f.status, f.seconds) == (kind, status, seconds)


def test_parse_fault_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("explode")
    with pytest.raises(ValueError):
        parse_fault("200")


def test_recording_is_exact_under_concurrency(emulator: Emulator) -> None:
    async def burst() -> None:
        async with httpx.AsyncClient(base_url=emulator.openai_base, headers=H) as c:
            await asyncio.gather(
                *(c.post("/chat/completions", json=body(f"m{i}")) for i in range(60))
            )

    asyncio.run(burst())
    recs = emulator.requests
    assert len(recs) == 60 and {r.model for r in recs} == {f"m{i}" for i in range(60)}
    assert all(r.status == 200 for r in recs)
    emulator.clear()
    assert emulator.requests == []


async def test_async_context_manager_in_async_test() -> None:
    async with Emulator(api_key=KEY) as emu:
        async with httpx.AsyncClient() as c:
            r = await c.post(emu.openai_base + "/chat/completions", json=body(), headers=H)
        assert r.status_code == 200 and emu.requests[0].status == 200


def test_session_fixture_is_shared(emulator_session: Emulator) -> None:
    assert emulator_session.url.startswith("http://127.0.0.1:")
    assert httpx.get(emulator_session.openai_base + "/models").status_code == 200


def test_bad_fault_header_is_a_400(emulator: Emulator, client: httpx.Client) -> None:
    r = client.post("/chat/completions", json=body(), headers={"x-emulator-fault": "explode"})
    assert r.status_code == 400 and "unknown fault" in r.json()["error"]["message"]
