"""A caller's numpy frame on the wire: what vlgate reads, when, and that it never writes to it.

On a one-route model a small frame is encoded at once and read in place (no copy); a model with
fallbacks keeps its own copy, because a fallback encodes again later, when the caller may have
overwritten the buffer (camera ring buffers do).
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image as PILImage

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY, SIZE_PROMPT, size_in


def frame(h: int = 120, w: int = 160) -> np.ndarray:
    """A bright gradient with a dark block: far from the all-black buffer it is overwritten with."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + x * 127 // w, 128 + y * 127 // h, np.full_like(x, 200)], -1)
    img[h // 4 : h // 2, w // 4 : w // 2] = (30, 30, 30)
    return img.astype(np.uint8)


def received_mean(data: bytes) -> float:
    return float(np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB")).mean())


def test_one_route_reads_the_frame_in_place_and_never_writes_it(emulator: Emulator) -> None:
    m = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emulator.openai_base)
    f = frame()
    before = f.copy()
    answer = m.query(f, SIZE_PROMPT)
    assert size_in(answer) == (160, 120)
    assert f.flags.writeable and np.array_equal(f, before)
    sent = emulator.last.images[0]
    assert sent.actual_mime == "image/jpeg" and sent.size == (160, 120)
    assert abs(received_mean(sent.data) - float(before.mean())) < 3
    # The same buffer, overwritten, asked about again: the new pixels are what is sent.
    f[:] = 0
    m.query(f, SIZE_PROMPT)
    assert received_mean(emulator.last.images[0].data) < 3
    assert len(emulator.requests) == 2


def test_a_fallback_sends_the_frame_as_it_was_when_asked(emulator: Emulator) -> None:
    """The primary hangs past its timeout; meanwhile the caller overwrites the buffer; the
    fallback (another provider: its own limits, so it encodes again) must still send the frame
    the caller asked about."""
    emulator.script("gpt-4o-mini", ["hang:2"])
    m = vlgate.create(
        "openai/gpt-4o-mini",
        api_key=KEY,
        api_base=emulator.openai_base,
        timeout=0.5,
        max_retries=0,
        fallbacks=[
            {"model": "anthropic/claude-sonnet-4-5", "api_key": KEY, "api_base": emulator.url}
        ],
    )
    f = frame()
    expected = float(f.mean())

    async def ask() -> vlgate.Answer:
        task = asyncio.create_task(m.aquery(f, SIZE_PROMPT))
        await asyncio.sleep(0.2)  # the primary's request is in flight, hanging
        f[:] = 0  # the camera reuses its buffer
        answer = await task
        await m.astop()
        return answer

    answer = asyncio.run(ask())
    assert size_in(answer) == (160, 120)
    assert [r.protocol for r in emulator.requests] == ["openai", "anthropic"]
    for request in emulator.requests:
        assert abs(received_mean(request.images[0].data) - expected) < 3
