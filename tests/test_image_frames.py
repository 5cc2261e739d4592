"""``Image.load`` reads robot-framework frames (numpy ``.data`` + ``.format``) by duck typing.

The frames here are plain stand-ins with dimos's attribute names and its enum shape; the real
dimos ``Image`` goes through the same path in tests/test_dimos.py.
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

import vlgate
from vlgate import Image, ImageError
from vlgate.testing import Emulator

from .conftest import KEY

RGB = (240, 210, 20)  # yellow; read as BGR by mistake it would be (20, 210, 240), a cyan blue


class Fmt(enum.Enum):
    BGR = "BGR"
    RGB = "RGB"
    RGBA = "RGBA"
    BGRA = "BGRA"
    GRAY = "GRAY"
    GRAY16 = "GRAY16"
    DEPTH = "DEPTH"
    DEPTH16 = "DEPTH16"


@dataclass
class Frame:
    data: Any
    format: Any = Fmt.BGR
    ts: float = field(default=1234.5)


def pixels(fmt: str) -> np.ndarray[Any, Any]:
    """A 6x4 frame of the yellow RGB colour laid out in ``fmt``'s channel order."""
    r, g, b = RGB
    layout = {
        "RGB": [r, g, b],
        "BGR": [b, g, r],
        "RGBA": [r, g, b, 128],
        "BGRA": [b, g, r, 128],
    }[fmt]
    return np.tile(np.array(layout, np.uint8), (4, 6, 1))


@pytest.mark.parametrize("fmt", ["RGB", "BGR", "RGBA", "BGRA"])
@pytest.mark.parametrize("as_enum", [True, False], ids=["enum", "str"])
def test_colour_frames_are_read_in_their_channel_order(fmt: str, as_enum: bool) -> None:
    img = Image.load(Frame(pixels(fmt), Fmt[fmt] if as_enum else fmt.lower()))
    px = img.to_numpy()[0, 0].tolist()
    assert px[:3] == list(RGB)
    assert img.has_alpha == fmt.endswith("A")
    if img.has_alpha:
        assert px[3] == 128


def test_gray_and_gray16_frames_become_grey_rgb() -> None:
    gray = np.full((4, 6), 77, np.uint8)
    assert Image.load(Frame(gray, Fmt.GRAY)).to_numpy()[0, 0].tolist() == [77, 77, 77]
    assert Image.load(Frame(gray[..., None], Fmt.GRAY)).size == (6, 4)
    gray16 = np.full((4, 6), 77 * 257, np.uint16)  # 16-bit full scale maps to 8-bit full scale
    assert Image.load(Frame(gray16, Fmt.GRAY16)).to_numpy()[0, 0].tolist() == [77, 77, 77]


@pytest.mark.parametrize("fmt", [Fmt.DEPTH, Fmt.DEPTH16])
def test_depth_frames_are_refused(fmt: Fmt) -> None:
    with pytest.raises(ImageError, match="depth map"):
        Image.load(Frame(np.zeros((4, 6), np.float32), fmt))


@pytest.mark.parametrize(
    ("data", "fmt", "match"),
    [
        (np.zeros((4, 6), np.uint8), Fmt.BGR, "has 1 channel"),
        (np.zeros((4, 6, 3), np.uint8), Fmt.BGRA, "has 3 channel"),
        (np.zeros((4, 6, 4), np.uint8), Fmt.GRAY, "has 4 channel"),
        (np.zeros((4, 6), np.uint8), Fmt.GRAY16, "uint16"),
        (np.zeros((4, 6, 3), np.uint8), "YUV", "unknown frame format"),
        (np.zeros((0, 6, 3), np.uint8), Fmt.BGR, "empty"),
    ],
)
def test_malformed_frames_are_image_errors(data: Any, fmt: Any, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        Image.load(Frame(data, fmt))


def test_objects_that_only_look_a_little_like_frames_are_refused() -> None:
    class NotAFrame:
        format = "BGR"
        data = b"not pixels"

    with pytest.raises(ImageError, match="cannot load an image from NotAFrame"):
        Image.load(NotAFrame())


def test_caller_buffer_is_not_aliased() -> None:
    data = pixels("RGB")
    img = Image.load(Frame(data, Fmt.RGB))
    data[:] = 0  # a camera ring buffer reused for the next frame
    assert img.to_numpy()[0, 0].tolist() == list(RGB)


def test_bgr_frame_arrives_at_the_service_in_rgb(emulator: Emulator) -> None:
    model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emulator.openai_base)
    model.query(Frame(pixels("BGR")), "What colour is it?")
    sent = emulator.requests[0].images[0]
    px = PILImage.open(io.BytesIO(sent.data)).convert("RGB").getpixel((2, 2))
    assert isinstance(px, tuple)
    assert all(abs(a - b) <= 6 for a, b in zip(px, RGB, strict=True)), px


def test_depth_frame_sends_nothing(emulator: Emulator) -> None:
    model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emulator.openai_base)
    with pytest.raises(ImageError):
        model.query(Frame(np.zeros((4, 6), np.uint16), Fmt.DEPTH16), "hi")
    assert emulator.requests == []


def test_watch_keeps_the_frame_timestamp(emulator: Emulator) -> None:
    model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emulator.openai_base)
    frames = [Frame(pixels("BGR"), ts=100.0 + i) for i in range(3)]
    seen = [ts for ts, _ in model.watch(frames, "hi", hz=1000, max_in_flight=3)]
    assert seen and set(seen) <= {100.0, 101.0, 102.0}
