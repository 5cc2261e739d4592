"""Soak: 2,000 requests through the emulator with 30 % transient faults.

Every answer must be delivered, in input order, each one about its own image (asked for the
image's width and height as JSON, the emulator names the size of the image it received, and
every image here has a unique size), and the
attempts vlgate reports must add up to what reached the emulator (a few more under heavy load:
see the comment at the assertion).
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter

import pytest
from PIL import Image as PILImage

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY

N = 2000
SIZE_PROMPT = (
    'Reply in JSON: {"type": "object", "properties": {"width": {"type": "integer"}, '
    '"height": {"type": "integer"}}}'
)
FAULTS = ["429:0.01", "500", "502", "503", "hang:1.5", "reset"]


def sized_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), (90, 90, 90)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_soak_2000_requests_with_30_percent_transient_faults() -> None:
    sizes = [(32 + i % 64, 32 + i // 64) for i in range(N)]  # all distinct
    images = [sized_png(w, h) for w, h in sizes]
    with Emulator(api_key=KEY, seed=7, hang_seconds=5) as emu:
        model = vlgate.create(
            "openai/generic-vlm",
            api_key=KEY,
            api_base=emu.openai_base,
            max_concurrency=64,
            max_retries=12,
            backoff_base=0.001,
            backoff_max=0.05,
            timeout=1.0,
        )
        model.query(images[0], "warm up")
        emu.clear()
        emu.set_faults(rate=0.3, kinds=FAULTS, seed=11)
        started = time.perf_counter()
        answers = model.query_batch(images, SIZE_PROMPT)
        elapsed = time.perf_counter() - started
        requests = emu.requests
        model.stop()

    assert len(answers) == N
    for (w, h), answer in zip(sizes, answers, strict=True):
        assert isinstance(answer, vlgate.Answer)
        m = re.search(r'"width": (\d+), "height": (\d+)', answer)
        assert m and (int(m.group(1)), int(m.group(2))) == (w, h), answer
    assert len({str(a) for a in answers}) == N  # no answer delivered twice

    faults = Counter(r.fault for r in requests if r.fault)
    delivered = [a for a in answers if isinstance(a, vlgate.Answer)]
    attempts = sum(a.attempts for a in delivered)
    ok = sum(1 for r in requests if r.status == 200)
    print(
        f"\nsoak: {N} answers in {elapsed:.1f}s ({N / elapsed:.0f}/s); {len(requests)} requests, "
        f"{attempts} attempts reported, {ok} answered 200; faults {dict(faults)}"
    )
    # Every request that arrived was an attempt vlgate counted. The reverse can miss by a few on
    # a loaded machine: an attempt whose 1 s client timeout fires before the busy emulator has
    # read it off the socket is counted by the client but never recorded by the server.
    assert len(requests) <= attempts <= len(requests) + N // 500
    assert sum(faults.values()) >= 0.2 * len(requests)
    assert set(faults) == set(FAULTS)
    # Each request got exactly one 200 unless a slow answer lost to the client timeout (a few on
    # a quiet machine; up to 2.5 % seen at load average 10 on 2 cores; 10 % allowed). That a late
    # 200 is never delivered twice is checked above, answer by answer.
    assert N <= ok <= N + N // 10
    assert max(a.attempts for a in delivered) > 1
    assert model.usage.requests == N + 1  # plus the warm-up


@pytest.mark.parametrize("status", ["400", "401", "403", "404"])
def test_permanent_faults_fail_fast_with_one_attempt(emulator: Emulator, status: str) -> None:
    model = vlgate.create(
        "openai/generic-vlm",
        api_key=KEY,
        api_base=emulator.openai_base,
        max_retries=12,
        backoff_base=0.001,
    )
    model.query(sized_png(40, 40), "warm up")  # open the client first
    emulator.clear()
    emulator.script("generic-vlm", [status])
    started = time.perf_counter()
    with pytest.raises(vlgate.ProviderError) as info:
        model.query(sized_png(40, 40), "Describe this image.")
    assert time.perf_counter() - started < 0.5
    assert info.value.status == int(status) and info.value.attempts == 1
    assert len(emulator.requests) == 1


def test_permanent_faults_in_a_batch_fail_fast_and_the_rest_are_answered(
    emulator: Emulator,
) -> None:
    model = vlgate.create(
        "openai/generic-vlm",
        api_key=KEY,
        api_base=emulator.openai_base,
        max_retries=12,
        backoff_base=0.001,
        max_concurrency=1,
    )
    emulator.script("generic-vlm", ["ok", "400", "ok", "404", "ok"])
    images = [sized_png(40 + i, 40) for i in range(5)]
    out = model.query_batch(images, "Describe this image.", return_exceptions=True)
    errors = [o for o in out if isinstance(o, vlgate.ProviderError)]
    assert sorted(e.status or 0 for e in errors) == [400, 404]
    assert sum(isinstance(o, vlgate.Answer) for o in out) == 3
    assert len(emulator.requests) == 5
    assert [getattr(o, "attempts", None) for o in out] == [1, 1, 1, 1, 1]
