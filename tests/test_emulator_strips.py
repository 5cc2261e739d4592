"""Issue 9 item 10: extreme strips (1x100000, 100000x1) get an answer from the emulator, not 500."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

import vlgate
from vlgate.testing import Emulator

KEY = "emu-key"


def strip(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1)])
def test_extreme_strip_is_answered(emulator: Emulator, size: tuple[int, int]) -> None:
    # gpt-4o caps the long side at 2048, so vlgate sends a 2048x1 (or 1x2048) JPEG strip.
    model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emulator.openai_base)
    try:
        answer = model.query(strip(*size), "Describe this image.", max_retries=0)
    finally:
        model.stop()
    assert [r.status for r in emulator.requests] == [200]
    sent = emulator.last.images[0]
    assert sent.actual_mime == sent.declared_mime == "image/jpeg"
    assert sent.size is not None and max(sent.size) == 2048 and min(sent.size) == 1
    # The caption of the strip that arrived: its orientation and the one red shape filling it.
    frame = "tall" if size[1] > size[0] else "wide"
    assert answer == emulator.last.response_text
    assert answer.startswith(f"A {frame} image of 1 shape") and "red" in answer
