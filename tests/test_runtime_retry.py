"""The retry layer alone, with an injected sleep: what is retried, how long it waits, attempts."""

from __future__ import annotations

import pytest

from vlgate.errors import AuthError, ProviderError, RateLimitError
from vlgate.runtime.retry import backoff_delay, with_retries


class Script:
    """A call that fails with the given errors, in order, then answers "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_first_success_needs_no_sleep() -> None:
    sleep = Sleeps()
    assert await with_retries(Script(), max_retries=3, sleep=sleep) == ("ok", 1)
    assert sleep.delays == []


async def test_retry_after_is_honoured_and_capped() -> None:
    sleep = Sleeps()
    call = Script(RateLimitError("slow", retry_after=2.0), RateLimitError("x", retry_after=99))
    result = await with_retries(call, max_retries=3, backoff_max=10.0, sleep=sleep)
    assert result == ("ok", 3)
    assert sleep.delays == [2.0, 10.0]


async def test_server_errors_exhaust_retries_and_report_attempts() -> None:
    sleep = Sleeps()
    call = Script(*(ProviderError("boom", status=503) for _ in range(5)))
    with pytest.raises(ProviderError) as info:
        await with_retries(call, max_retries=2, backoff_base=0.5, sleep=sleep)
    assert call.calls == 3 and info.value.attempts == 3
    # full jitter: attempt n waits uniform in [0, base * 2**(n-1)]
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.5 and 0 <= sleep.delays[1] <= 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_permanent_errors_are_raised_at_once(status: int) -> None:
    error = (
        AuthError("no", status=status)
        if status in (401, 403)
        else ProviderError("no", status=status)
    )
    call = Script(error)
    with pytest.raises(ProviderError) as info:
        await with_retries(call, max_retries=5, sleep=Sleeps())
    assert call.calls == 1 and info.value.attempts == 1


def test_backoff_grows_and_is_capped() -> None:
    highs = [max(backoff_delay(None, n, 1.0, 8.0) for _ in range(400)) for n in (1, 2, 3, 6)]
    assert highs[0] <= 1.0 < highs[1] <= 2.0 < highs[2] <= 4.0
    assert highs[3] <= 8.0


def test_retry_after_header_forms() -> None:
    import email.utils
    import time

    from vlgate.providers._errors import retry_after_seconds

    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds({"retry-after": date}) or 0) <= 31
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
