"""Fast frames: files that fit are sent as they are after a header-only check; large JPEG
downscales decode at a reduced DCT scale; the pixels, when needed, are the same as ever."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image as PILImage

import vlgate
from vlgate import Image
from vlgate.errors import ImageError
from vlgate.registry import ImageLimits
from vlgate.testing import Emulator

from .conftest import KEY


def photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=-1)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def encoded(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_fitting_file_is_sent_byte_for_byte_without_decoding(fmt: str) -> None:
    data = encoded(photo(320, 240), fmt)
    img = Image.load(data)
    assert img.size == (320, 240) and not img.has_alpha
    enc = img.encode(limits=ImageLimits(max_side=2048))
    assert enc.data is data and enc.mime == f"image/{fmt.lower()}"
    assert img._pil is None and img._arr is None  # header only: nothing was decoded


def test_the_pixels_of_a_header_checked_file_are_the_eager_ones() -> None:
    data = encoded(photo(64, 48), "PNG")
    lazy = Image.load(data)
    assert np.array_equal(lazy.to_numpy(), np.asarray(PILImage.open(io.BytesIO(data))))
    again = pickle.loads(pickle.dumps(Image.load(data)))
    assert np.array_equal(again.to_numpy(), lazy.to_numpy())


def test_an_opaque_rgba_png_has_no_alpha_once_looked_at() -> None:
    rgba = np.dstack([photo(32, 24), np.full((24, 32), 255, np.uint8)])
    img = Image.load(encoded(rgba, "PNG"))
    assert img.has_alpha is False
    assert img.to_numpy().shape == (24, 32, 3)


def test_a_file_corrupt_inside_fails_typed_when_its_pixels_are_needed(emulator: Emulator) -> None:
    data = bytearray(encoded(photo(640, 480), "JPEG"))
    data[len(data) // 2 : len(data) // 2 + 400] = b"\x00" * 400  # entropy data, EOI kept
    data[600:700] = b"\xff" * 100
    model = vlgate.create(
        "openai/gpt-4o-mini", api_key=KEY, api_base=emulator.openai_base, auto_resize=(320, 320)
    )
    with pytest.raises(ImageError):
        model.query(bytes(data), "describe")
    assert emulator.requests == []


def test_a_large_jpeg_is_downscaled_from_a_draft_decode_and_stays_exact_in_size() -> None:
    arr = photo(4032, 3024)
    data = encoded(arr, "JPEG", quality=90)
    img = Image.load(data)
    enc = img.encode(size=(1568, 1176))
    assert enc.size == (1568, 1176) and enc.mime == "image/jpeg"
    assert img._pil is None  # the full-resolution pixels were never decoded
    got = np.asarray(PILImage.open(io.BytesIO(enc.data)).convert("RGB"), dtype=np.int16)
    want = np.asarray(PILImage.fromarray(arr).resize((1568, 1176)), dtype=np.int16)
    assert float(np.abs(got - want).mean()) < 4.0


def test_a_fitting_jpeg_reaches_the_wire_unchanged(emulator: Emulator) -> None:
    data = encoded(photo(512, 384), "JPEG", quality=85)
    model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emulator.openai_base)
    model.query(data, "describe")
    [req] = emulator.requests
    [sent] = req.images
    assert sent.data == data
    assert sent.declared_mime == sent.actual_mime == "image/jpeg"


def test_a_frame_downscale_matches_pillows_whichever_resizer_runs() -> None:
    arr = photo(1920, 1080)
    enc = Image.load(arr).encode(size=(1365, 768))
    assert enc.size == (1365, 768)
    got = np.asarray(PILImage.open(io.BytesIO(enc.data)).convert("RGB"), dtype=np.int16)
    want = np.asarray(PILImage.fromarray(arr).resize((1365, 768)), dtype=np.int16)
    assert float(np.abs(got - want).mean()) < 4.0


def test_boxes_on_a_resized_1080p_frame_map_back_exactly(emulator: Emulator) -> None:
    from vlgate.testing.scenes import make_scene

    scene = make_scene(3, size=(1920, 1080))
    model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emulator.openai_base)
    target = scene.shapes[0]
    dets = model.detect(np.asarray(scene.image.convert("RGB")), target.label)
    assert emulator.requests[0].images[0].size == (1365, 768)
    best = max(dets, key=lambda d: _iou(d.xyxy, target.box))
    assert _iou(best.xyxy, target.box) > 0.95


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
