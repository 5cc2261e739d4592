"""A large frame's JPEG is encoded in strips on idle cores and joined with restart markers:
the file must decode to exactly the pixels of a whole-frame encode, in every decoder."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image as PILImage

import vlgate
from vlgate.image import jpegstrips
from vlgate.testing import Emulator

from .conftest import KEY

simplejpeg = pytest.importorskip("simplejpeg")


def photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 255, y / h * 255, 128 + 100 * np.sin(x / 37 + y / 53)], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def whole(arr: np.ndarray, quality: int = 90) -> bytes:
    return bytes(
        simplejpeg.encode_jpeg(arr, quality=quality, colorspace="RGB", colorsubsampling="420")
    )


@pytest.mark.parametrize(
    ("w", "h", "n"),
    [
        (1365, 768, 2),  # gpt-4o's size for a 1080p frame
        (1921, 1081, 2),  # neither side a multiple of the 16-pixel MCU
        (1000, 700, 3),  # the last strip shorter than the others
        (640, 2000, 12),  # more strips than the 8 restart marker numbers: RST0..7 cycle
        (33, 300, 4),  # a narrow frame
    ],
)
def test_joined_strips_decode_to_the_whole_frame_encodes_pixels(w: int, h: int, n: int) -> None:
    arr = photo(w, h, seed=w)
    joined = jpegstrips._encode_strips(simplejpeg, arr, 90, n)
    assert joined is not None
    one = whole(arr)
    assert joined.count(b"\xff\xdd") == 1  # one DRI segment
    assert np.array_equal(simplejpeg.decode_jpeg(joined), simplejpeg.decode_jpeg(one))
    with PILImage.open(io.BytesIO(joined)) as im:
        assert im.size == (w, h)
        assert np.array_equal(np.asarray(im.convert("RGB")), simplejpeg.decode_jpeg(one))
    assert abs(len(joined) - len(one)) <= len(one) // 1000 + 8 * n  # a DRI, markers, DC resets


def test_strips_whose_headers_differ_are_not_joined() -> None:
    arr = photo(320, 256)
    top, bottom = whole(arr[:128], 90), whole(arr[128:], 70)  # other quantisation tables
    assert jpegstrips.join_strips([top, bottom], 256, 20 * 8) is None
    progressive = io.BytesIO()
    PILImage.fromarray(arr[128:]).save(progressive, "JPEG", quality=90, progressive=True)
    assert jpegstrips.join_strips([top, progressive.getvalue()], 256, 20 * 8) is None
    assert jpegstrips.join_strips([top, b"not a jpeg"], 256, 20 * 8) is None


def test_a_small_frame_or_a_busy_process_encodes_whole() -> None:
    small = photo(320, 240)
    assert jpegstrips.encode_rgb(simplejpeg, small, 90) == whole(small)  # no DRI, same bytes
    if jpegstrips._strip_count(768, 1365) < 2:
        pytest.skip("one core: nothing is ever split")
    large = photo(4000, 3000)  # tens of milliseconds in flight
    big = photo(1365, 768)
    first: list[bytes] = []
    worker = threading.Thread(
        target=lambda: first.append(jpegstrips.encode_rgb(simplejpeg, large, 90))
    )
    worker.start()
    while jpegstrips._busy == 0 and worker.is_alive():
        pass
    second = jpegstrips.encode_rgb(simplejpeg, big, 90)  # another encode is in flight
    worker.join()
    assert b"\xff\xdd" in first[0][:2000]  # alone: in strips
    assert second == whole(big)  # busy: whole, byte for byte


def test_a_1080p_frame_reaches_the_emulator_as_one_valid_jpeg(emulator: Emulator) -> None:
    model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emulator.openai_base)
    frame = photo(1920, 1080)
    model.query(frame, "describe")
    [sent] = emulator.requests[0].images
    assert sent.declared_mime == sent.actual_mime == "image/jpeg"
    assert sent.size == (1365, 768)
    if jpegstrips._strip_count(768, 1365) > 1:
        assert b"\xff\xdd" in sent.data[:1000]  # encoded in strips (restart interval set)
    with PILImage.open(io.BytesIO(sent.data)) as im:
        im.load()
        assert im.size == (1365, 768)
