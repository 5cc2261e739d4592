"""vlgate.image: loading every input form, EXIF, alpha, sniffed MIME, limits, caching, URL fetch."""

from __future__ import annotations

import base64
import gzip
import http.server
import io
import pickle
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import ImageFile

import vlgate.image as vimage
from vlgate.errors import ImageError
from vlgate.image import MAX_PIXELS, EncodedImage, Image, sniff_mime
from vlgate.registry import SERVICES, ImageLimits

# --- helpers -------------------------------------------------------------------------------------


def encode_pil(im: PILImage.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def decode(enc: EncodedImage) -> PILImage.Image:
    im = PILImage.open(io.BytesIO(enc.data))
    im.load()
    return im


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h (a decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def exif_jpeg(orientation: int) -> bytes:
    """40x20 stored pixels, blue, with a red 8x8 block in the stored top-left corner."""
    im = PILImage.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 8, 8))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return encode_pil(im, "JPEG", exif=exif.tobytes(), quality=95)


def red_corners(arr: np.ndarray) -> list[str]:
    h, w = arr.shape[:2]
    corners = {"tl": arr[1, 1], "tr": arr[1, w - 2], "bl": arr[h - 2, 1], "br": arr[h - 2, w - 2]}
    return [k for k, px in corners.items() if px[0] > 200 and px[2] < 60]


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_sniff_real_files(fmt: str, mime: str) -> None:
    data = encode_pil(PILImage.new("RGB", (8, 8), (1, 2, 3)), fmt)
    assert sniff_mime(data) == mime
    assert sniff_mime(bytearray(data)) == mime
    assert sniff_mime(memoryview(data)) == mime


def ftyp(major: bytes, *compat: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compat)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 16


def test_sniff_heic_avif_and_others() -> None:
    assert sniff_mime(ftyp(b"heic", b"mif1", b"heic")) == "image/heic"
    assert sniff_mime(ftyp(b"avif", b"mif1", b"avif")) == "image/avif"
    assert sniff_mime(ftyp(b"mif1", b"mif1", b"avif")) == "image/avif"
    assert sniff_mime(ftyp(b"mif1", b"mif1")) == "image/heif"
    assert sniff_mime(ftyp(b"isom", b"mp41")) is None  # an MP4 video is not an image
    assert sniff_mime(b"<svg xmlns='http://www.w3.org/2000/svg'/>") == "image/svg+xml"
    assert sniff_mime(b"%PDF-1.7\n") == "application/pdf"
    assert sniff_mime(b"") is None
    assert sniff_mime(b"hello world, not an image") is None
    assert sniff_mime(b"BMx") is None  # 'BM' alone is too weak a signal


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_sniff_never_raises(data: bytes) -> None:
    assert sniff_mime(data) in {
        None,
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/avif",
        "image/jxl",
        "image/jp2",
        "image/vnd.adobe.photoshop",
        "image/qoi",
        "image/x-icon",
        "image/svg+xml",
        "application/pdf",
    }


# --- loading: every input form -------------------------------------------------------------------


def test_load_every_form_gives_same_pixels(tmp_path: Path) -> None:
    arr = noise(12, 16)
    png = encode_pil(PILImage.fromarray(arr), "PNG")
    path = tmp_path / "a.png"
    path.write_bytes(png)
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    sources: list[Any] = [
        arr,
        PILImage.fromarray(arr),
        png,
        bytearray(png),
        memoryview(png),
        str(path),
        path,
        uri,
    ]
    for src in sources:
        img = Image.load(src)
        assert img.size == (16, 12), type(src)
        assert np.array_equal(img.to_numpy(), arr), type(src)
    same = Image.load(arr)
    assert Image.load(same) is same


def test_size_width_height_and_fit_within() -> None:
    img = Image.load(np.zeros((1080, 1920, 3), np.uint8))
    assert (img.width, img.height) == img.size == (1920, 1080)
    assert img.fit_within((640, 640)) == (640, 360)
    assert img.fit_within((4000, 4000)) == (1920, 1080)  # never upscales
    assert img.fit_within((1920, 100)) == (178, 100)
    with pytest.raises(ImageError, match="positive"):
        img.fit_within((0, 10))


def test_numpy_grey_and_single_channel() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for arr in (grey, grey[:, :, None]):
        img = Image.load(arr)
        out = img.to_numpy()
        assert out.shape == (3, 4, 3)
        assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)
        assert not img.has_alpha


def test_numpy_dtypes_are_scaled() -> None:
    u16 = np.array([[0, 257, 32768, 65535]], np.uint16)
    assert Image.load(u16).to_numpy()[0, :, 0].tolist() == [0, 1, 128, 255]
    f = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert Image.load(f).to_numpy()[0, :, 0].tolist() == [0, 128, 255]
    f64 = np.array([[0.0, 0.25, 1.0]], np.float64)
    assert Image.load(f64).to_numpy()[0, :, 0].tolist() == [0, 64, 255]
    b = np.array([[True, False]])
    assert Image.load(b).to_numpy()[0, :, 0].tolist() == [255, 0]
    i64 = np.array([[0, 17, 255]], np.int64)
    assert Image.load(i64).to_numpy()[0, :, 0].tolist() == [0, 17, 255]


def test_numpy_rgba_and_opaque_alpha_dropped() -> None:
    rgba = noise(4, 5, 4)
    rgba[0, 0, 3] = 10
    img = Image.load(rgba)
    assert img.has_alpha and img.to_numpy().shape == (4, 5, 4) and img.to_pil().mode == "RGBA"
    opaque = rgba.copy()
    opaque[..., 3] = 255
    img2 = Image.load(opaque)
    assert not img2.has_alpha and img2.to_pil().mode == "RGB"
    assert np.array_equal(img2.to_numpy(), opaque[..., :3])


def test_array_is_copied_and_read_only() -> None:
    arr = noise(4, 4)
    img = Image.load(arr)
    before = img.sha256
    arr[:] = 0  # a camera ring buffer reusing its memory must not change the Image
    assert img.to_numpy().any()
    assert img.sha256 == before
    with pytest.raises(ValueError):
        img.to_numpy()[0, 0, 0] = 1


def test_non_contiguous_array() -> None:
    arr = noise(20, 20)[::2, ::3]
    img = Image.load(arr)
    assert img.size == (7, 10)
    assert np.array_equal(img.to_numpy(), arr)


def test_from_bgr() -> None:
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    assert Image.from_bgr(bgr).to_numpy()[0, 0].tolist() == [0, 0, 255]
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 2] = 200  # red
    bgra[..., 3] = 100
    out = Image.from_bgr(bgra).to_numpy()
    assert out[0, 0].tolist() == [200, 0, 0, 100]
    grey = np.full((2, 3), 7, np.uint8)
    assert Image.from_bgr(grey).to_numpy()[0, 0].tolist() == [7, 7, 7]
    with pytest.raises(ImageError, match="numpy array"):
        Image.from_bgr([[1, 2]])  # type: ignore[arg-type]


def test_pil_inputs_modes() -> None:
    pal = PILImage.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    img = Image.load(pal)
    assert img.to_numpy()[0, 0].tolist() == [255, 0, 0]
    assert img.to_numpy()[1, 1].tolist() == [0, 255, 0]
    assert Image.load(PILImage.new("L", (3, 2), 9)).to_pil().mode == "RGB"
    la = PILImage.new("LA", (3, 2), (9, 0))
    assert Image.load(la).has_alpha
    cmyk = PILImage.new("CMYK", (3, 2), (0, 255, 255, 0))
    assert Image.load(cmyk).to_numpy()[0, 0].tolist() == [255, 0, 0]
    # a PIL image given to load() is copied: drawing on it later leaves the Image alone
    mine = PILImage.new("RGB", (2, 2), (1, 2, 3))
    held = Image.load(mine)
    mine.putpixel((0, 0), (255, 255, 255))
    assert held.to_numpy()[0, 0].tolist() == [1, 2, 3]
    # to_pil hands out a copy: drawing on it leaves the Image alone
    img2 = Image.load(np.zeros((2, 2, 3), np.uint8))
    p = img2.to_pil()
    p.putpixel((0, 0), (255, 255, 255))
    assert img2.to_numpy()[0, 0].tolist() == [0, 0, 0]


def test_palette_gif_with_transparency() -> None:
    pal = PILImage.new("P", (6, 4), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(1, (0, 0, 3, 4))
    data = encode_pil(pal, "GIF", transparency=0)
    img = Image.load(data)
    assert img.has_alpha and img.source_mime == "image/gif"
    px = img.to_numpy()
    assert px[0, 0].tolist() == [255, 0, 0, 255] and px[0, 5, 3] == 0
    enc = img.encode()
    assert enc.data == data and enc.mime == "image/gif"  # sent as is where GIF is accepted
    gem = img.encode(limits=SERVICES["gemini"].limits)  # Gemini takes no GIF
    assert gem.mime == "image/png" and decode(gem).mode == "RGBA"


def test_16bit_png() -> None:
    arr = np.array([[0, 1000, 65535]], np.uint16).repeat(2, axis=0)
    data = encode_pil(PILImage.fromarray(arr), "PNG")
    img = Image.load(data)
    assert img.size == (3, 2)
    assert img.to_numpy()[0, :, 0].tolist() == [0, 4, 255]
    enc = img.encode()
    # 16-bit PNG is transcoded (not every provider decodes it)
    assert enc.data != data and enc.mime == "image/jpeg" and enc.mime == sniff_mime(enc.data)


def test_grey_png_passthrough() -> None:
    data = encode_pil(PILImage.new("L", (30, 20), 128), "PNG")
    img = Image.load(data)
    assert img.to_numpy()[0, 0].tolist() == [128, 128, 128]
    assert img.encode().data == data


# --- EXIF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [(1, (40, 20), "tl"), (3, (40, 20), "br"), (6, (20, 40), "tr"), (8, (20, 40), "bl")],
)
def test_exif_orientation(orientation: int, size: tuple[int, int], corner: str) -> None:
    data = exif_jpeg(orientation)
    img = Image.load(data)
    assert img.size == size
    assert red_corners(img.to_numpy()) == [corner]
    enc = img.encode()
    assert enc.size == size and enc.original_size == size
    assert red_corners(np.asarray(decode(enc))) == [corner]
    if orientation == 1:
        assert enc.data == data  # fast path: nothing to rotate
    else:
        assert enc.data != data  # re-encoded upright: the provider never has to apply EXIF
        assert decode(enc).getexif().get(0x0112, 1) == 1


def test_exif_on_pil_input() -> None:
    pil = PILImage.open(io.BytesIO(exif_jpeg(6)))
    img = Image.load(pil)
    assert img.size == (20, 40) and red_corners(img.to_numpy()) == ["tr"]


# --- MIME is sniffed, never guessed --------------------------------------------------------------


def test_mime_from_bytes_not_file_name(tmp_path: Path) -> None:
    png = encode_pil(PILImage.new("RGB", (10, 10), (1, 2, 3)), "PNG")
    jpg = encode_pil(PILImage.new("RGB", (10, 10), (1, 2, 3)), "JPEG")
    (tmp_path / "really_png.jpg").write_bytes(png)
    (tmp_path / "really_jpeg.png").write_bytes(jpg)
    a = Image.load(tmp_path / "really_png.jpg").encode()
    b = Image.load(tmp_path / "really_jpeg.png").encode()
    assert (a.mime, a.data) == ("image/png", png)
    assert (b.mime, b.data) == ("image/jpeg", jpg)
    assert a.data_uri.startswith("data:image/png;base64,")
    uri = "data:image/jpeg;base64," + base64.b64encode(png).decode()  # lies about its type
    assert Image.load(uri).encode().mime == "image/png"


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [("BMP", "RGB", "image/jpeg"), ("TIFF", "RGB", "image/jpeg"), ("TIFF", "RGBA", "image/png")],
)
def test_transcode_unsendable_formats(fmt: str, mode: str, mime: str) -> None:
    color = (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)
    im = PILImage.new(mode, (12, 8), color)
    data = encode_pil(im, fmt)
    img = Image.load(data)
    enc = img.encode()
    assert img.source_mime == f"image/{fmt.lower()}"
    assert enc.mime == mime == sniff_mime(enc.data)
    assert decode(enc).getpixel((0, 0))[:3] == pytest.approx((10, 200, 30), abs=4)


def test_encoded_image_invariants() -> None:
    png = encode_pil(PILImage.new("RGB", (4, 4)), "PNG")
    with pytest.raises(ImageError, match="image/png"):
        EncodedImage(png, "image/jpeg", (4, 4), (4, 4))
    bmp = encode_pil(PILImage.new("RGB", (4, 4)), "BMP")
    with pytest.raises(ImageError, match="not a type vlgate sends"):
        EncodedImage(bmp, "image/bmp", (4, 4), (4, 4))
    with pytest.raises(ImageError, match="positive"):
        EncodedImage(png, "image/png", (0, 4), (4, 4))
    enc = EncodedImage(png, "image/png", (2, 8), (4, 4))
    assert enc.scale == (0.5, 2.0) and enc.to_original(1, 4) == (2.0, 2.0)
    assert enc.nbytes == len(png) and base64.b64decode(enc.b64) == png
    assert enc.data_uri == "data:image/png;base64," + enc.b64
    assert "bytes" in repr(enc) and len(repr(enc)) < 100  # never dumps the data


# --- encoding ------------------------------------------------------------------------------------


def test_numpy_photo_encodes_jpeg_at_quality() -> None:
    arr = noise(60, 80)
    img = Image.load(arr)
    hi, lo = img.encode(quality=95), img.encode(quality=30)
    assert hi.mime == lo.mime == "image/jpeg" and hi.nbytes > lo.nbytes
    assert hi.size == hi.original_size == (80, 60) and hi.scale == (1.0, 1.0)
    smooth = np.zeros((64, 64, 3), np.uint8)
    smooth[:, :, 1] = 180
    assert np.abs(np.asarray(decode(Image.load(smooth).encode())).astype(int) - smooth).max() < 6


def test_pillow_fallback_without_simplejpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    # simplejpeg is optional: the same frame must give the same pixels, hash and geometry
    y, x = np.mgrid[0:30, 0:40]
    arr = np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.uint8)
    fast = Image.load(arr)
    monkeypatch.setattr(vimage.encode, "_simplejpeg", None)
    slow = Image.load(arr)
    arr[:] = 0  # the fallback must not share the caller's buffer either
    assert slow.sha256 == fast.sha256
    assert np.array_equal(slow.to_numpy(), fast.to_numpy())
    enc = slow.encode(quality=95)
    assert enc.mime == "image/jpeg" and enc.size == (40, 30)
    diff = np.asarray(decode(enc)).astype(int) - fast.to_numpy().astype(int)
    assert np.abs(diff).max() < 12


def test_forced_formats() -> None:
    img = Image.load(noise(10, 10))
    assert img.encode(format="png").mime == "image/png"
    assert img.encode(format="webp").mime == "image/webp"
    assert img.encode(format="jpeg").mime == "image/jpeg"
    assert img.encode(format="image/jpeg").mime == "image/jpeg"
    png_lossless = decode(img.encode(format="png"))
    assert np.array_equal(np.asarray(png_lossless), img.to_numpy())
    with pytest.raises(ImageError, match="format must be"):
        img.encode(format="gif")
    with pytest.raises(ImageError, match="format must be"):
        img.encode(format="bmp")
    with pytest.raises(ImageError, match="not accepted"):
        img.encode(format="png", limits=ImageLimits(formats=frozenset({"image/jpeg"})))
    with pytest.raises(ImageError, match="accept none"):
        img.encode(limits=ImageLimits(formats=frozenset({"image/bmp"})))
    with pytest.raises(ImageError, match="quality"):
        img.encode(quality=0)
    with pytest.raises(ImageError, match="size"):
        img.encode(size=(0, 5))
    with pytest.raises(ImageError, match="size"):
        img.encode(size=(2.5, 5))  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="n_images"):
        img.encode(n_images=0)


def test_alpha_png_and_flatten_onto_white() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, :] = (255, 0, 0, 255)  # top: opaque red; bottom: fully transparent black
    img = Image.load(rgba)
    enc = img.encode()
    assert enc.mime == "image/png" and decode(enc).mode == "RGBA"
    flat = decode(img.encode(format="jpeg"))
    assert flat.mode == "RGB"
    assert flat.getpixel((5, 8)) == pytest.approx((255, 255, 255), abs=3)  # white, not black
    assert flat.getpixel((5, 1)) == pytest.approx((255, 0, 0), abs=8)
    jpeg_only = img.encode(limits=ImageLimits(formats=frozenset({"image/jpeg"})))
    assert jpeg_only.mime == "image/jpeg"
    # Half-transparent pixels blend with white: (255, 0, 0) at alpha 128 -> (255, 127, 127)
    half = np.zeros((4, 4, 4), np.uint8)
    half[...] = (255, 0, 0, 128)
    blended = decode(Image.load(half).encode(format="jpeg")).getpixel((1, 1))
    assert blended == pytest.approx((255, 127, 127), abs=6)


def test_alpha_flatten_from_file_and_resized() -> None:
    im = PILImage.new("RGBA", (20, 20), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 20, 10))
    img = Image.load(encode_pil(im, "PNG"))
    for size in (None, (10, 10)):
        out = decode(img.encode(format="jpeg", size=size))
        w, h = out.size
        assert out.getpixel((w // 2, h - 2)) == pytest.approx((255, 255, 255), abs=3)
        assert out.getpixel((w // 2, 1)) == pytest.approx((0, 0, 255), abs=8)


def test_alpha_png_too_big_falls_back_to_jpeg() -> None:
    rgba = noise(200, 200, 4, seed=3)
    img = Image.load(rgba)
    png_size = img.encode().nbytes
    enc = img.encode(limits=ImageLimits(max_bytes=png_size // 2))
    assert enc.mime == "image/jpeg" and enc.nbytes <= png_size // 2


def test_fast_path_returns_original_bytes(tmp_path: Path) -> None:
    data = encode_pil(PILImage.fromarray(noise(30, 40)), "JPEG", quality=97)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    img = Image.load(path)
    for kwargs in (
        {},
        {"size": (40, 30)},
        {"limits": SERVICES["anthropic"].limits},
        {"format": "jpeg"},
        {"quality": 10},
    ):
        enc = img.encode(**kwargs)
        assert enc.data == data, kwargs
    assert img.encode(format="png").mime == "image/png"
    assert img.encode(size=(20, 15)).data != data
    assert img.encode(limits=ImageLimits(max_bytes=len(data) - 1)).nbytes < len(data)
    assert img.sha256 == __import__("hashlib").sha256(data).hexdigest()


def test_limits_side_cap_and_many_images() -> None:
    img = Image.load(np.zeros((1000, 3000, 3), np.uint8))
    assert img.encode(limits=ImageLimits(max_side=1500)).size == (1500, 500)
    many = ImageLimits(many_images=(20, 2000))
    assert img.encode(limits=many, n_images=20).size == (3000, 1000)
    enc = img.encode(limits=many, n_images=21)
    assert enc.size == (2000, 667) and decode(enc).size == (2000, 667)
    assert enc.scale == (2000 / 3000, 667 / 1000)
    both = ImageLimits(max_side=1200, many_images=(20, 2000))
    assert img.encode(limits=both, n_images=50).size == (1200, 400)
    # the cap applies to an explicit size too, keeping that size's aspect
    assert img.encode(size=(2400, 2400), limits=ImageLimits(max_side=1000)).size == (1000, 1000)


def test_limits_min_side_upscale_scales() -> None:
    img = Image.load(noise(10, 20))
    enc = img.encode(limits=ImageLimits(min_side=28))
    assert enc.size == (56, 28) and decode(enc).size == (56, 28)
    assert enc.scale == (2.8, 2.8) and enc.to_original(56, 28) == pytest.approx((20, 10))
    enc2 = img.encode(size=(30, 10), limits=SERVICES["dashscope"].limits)
    assert enc2.size == (84, 28) and enc2.scale == (84 / 20, 28 / 10)
    tall = Image.load(np.zeros((40, 5, 3), np.uint8))
    assert tall.encode(limits=ImageLimits(min_side=28)).size == (28, 224)
    thin = Image.load(np.zeros((10, 1000, 3), np.uint8))
    with pytest.raises(ImageError, match="aspect ratio"):
        thin.encode(limits=ImageLimits(max_side=500, min_side=28))


def test_non_uniform_scale() -> None:
    img = Image.load(noise(480, 640))
    enc = img.encode(size=(644, 476))
    sx, sy = enc.scale
    assert enc.size == (644, 476) and decode(enc).size == (644, 476)
    assert sx == 644 / 640 and sy == 476 / 480 and sx != sy
    assert enc.to_original(644, 476) == pytest.approx((640, 480))
    assert enc.to_original(322, 238) == pytest.approx((320, 240))


def test_max_bytes_quality_then_downscale() -> None:
    img = Image.load(noise(400, 600, seed=1))
    full = img.encode().nbytes
    # a little under: lower quality is enough, the size is kept
    enc = img.encode(limits=ImageLimits(max_bytes=int(full * 0.8)))
    assert enc.nbytes <= full * 0.8 and enc.size == (600, 400)
    # far under: the image shrinks too, aspect kept
    tight = img.encode(limits=ImageLimits(max_bytes=full // 20))
    assert tight.nbytes <= full // 20 and tight.size[0] < 600
    assert tight.size[0] / tight.size[1] == pytest.approx(1.5, abs=0.02)
    assert decode(tight).size == tight.size
    with pytest.raises(ImageError, match="max_bytes=200"):
        img.encode(limits=ImageLimits(max_bytes=200, min_side=300))


def test_encode_cache_returns_same_object() -> None:
    img = Image.load(noise(50, 60))
    a = img.encode(size=(30, 25))
    assert img.encode(size=(30, 25)) is a
    assert img.encode(size=(30, 25), n_images=3) is a  # same side cap: same encoding
    assert img.encode(size=(30, 25), quality=80) is not a
    assert a.data_uri is a.data_uri  # base64 computed once
    lim = ImageLimits(many_images=(2, 40))
    assert img.encode(limits=lim, n_images=3).size == (40, 33)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: img.encode(size=(20, 20)), range(32)))
    assert all(r is results[0] for r in results)


def test_encode_cache_is_bounded() -> None:
    img = Image.load(noise(20, 20))
    first = img.encode(size=(1, 1))
    for side in range(2, 40):
        img.encode(size=(side, side))
    assert img.encode(size=(39, 39)) is img.encode(size=(39, 39))
    assert img.encode(size=(1, 1)) is not first  # evicted long ago, encoded again


def test_forced_png_shrinks_to_fit() -> None:
    img = Image.load(noise(200, 300, seed=5))
    enc = img.encode(format="png", limits=ImageLimits(max_bytes=40_000))
    assert enc.mime == "image/png" and enc.nbytes <= 40_000 and enc.size[0] < 300
    assert enc.size[0] / enc.size[1] == pytest.approx(1.5, abs=0.03)


def test_sha256_stability() -> None:
    arr = noise(8, 8)
    assert Image.load(arr).sha256 == Image.load(arr.copy()).sha256
    assert Image.load(arr).sha256 != Image.load(arr[:, ::-1]).sha256
    assert Image.load(arr).sha256 != Image.load(arr.reshape(4, 16, 3)).sha256
    png = encode_pil(PILImage.fromarray(arr), "PNG")
    assert Image.load(png).sha256 == Image.load(bytearray(png)).sha256
    assert len(Image.load(png).sha256) == 64


def test_pickle_roundtrip() -> None:
    img = Image.load(noise(6, 7))
    img.encode()
    back = pickle.loads(pickle.dumps(img))
    assert back.size == img.size and back.sha256 == img.sha256
    assert back.encode().data == img.encode().data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    c=st.sampled_from([None, 1, 3, 4]),
    dtype=st.sampled_from(["uint8", "uint16", "float32", "bool"]),
    tw=st.integers(1, 64),
    th=st.integers(1, 64),
)
def test_property_any_array_encodes_consistently(
    h: int, w: int, c: int | None, dtype: str, tw: int, th: int
) -> None:
    rng = np.random.default_rng(h * 1000 + w)
    shape = (h, w) if c is None else (h, w, c)
    if dtype == "float32":
        arr: np.ndarray = rng.random(shape, dtype=np.float32)
    elif dtype == "bool":
        arr = rng.random(shape) > 0.5
    else:
        arr = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    img = Image.load(arr)
    assert img.size == (w, h)
    enc = img.encode(size=(tw, th))
    assert enc.mime == sniff_mime(enc.data)
    assert decode(enc).size == (tw, th) == enc.size
    assert enc.to_original(tw, th) == pytest.approx((w, h))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    max_side=st.one_of(st.none(), st.integers(30, 200)),
    min_side=st.one_of(st.none(), st.integers(1, 29)),
    n=st.integers(1, 30),
)
def test_property_limits_respected(
    w: int, h: int, max_side: int | None, min_side: int | None, n: int
) -> None:
    lim = ImageLimits(max_side=max_side, min_side=min_side, many_images=(20, 25))
    img = Image.load(np.zeros((h, w, 3), np.uint8))
    try:
        enc = img.encode(limits=lim, n_images=n)
    except ImageError as exc:
        assert "aspect ratio" in str(exc)  # the only legitimate refusal here
        return
    cap = lim.side_cap(n)
    assert decode(enc).size == enc.size
    if cap is not None:
        assert max(enc.size) <= cap
    if min_side is not None:
        assert min(enc.size) >= min_side
    if (cap is None or max(w, h) <= cap) and (min_side is None or min(w, h) >= min_side):
        assert enc.size == (w, h)  # nothing to fix: nothing changed
    # aspect kept to within rounding of the short side
    # (rounding moves the short side by up to half a pixel of its unrounded length)
    assert enc.size[0] / enc.size[1] == pytest.approx(
        w / h, rel=0.5 / (min(enc.size) - 0.5) + 1e-9
    ) or (min(enc.size) == 1)


# --- errors --------------------------------------------------------------------------------------


def test_error_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"not found: .*nope\.png"):
        Image.load(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="not found"):
        Image.load(str(tmp_path / "nope.png"))
    with pytest.raises(ImageError, match="directory"):
        Image.load(tmp_path)
    with pytest.raises(ImageError, match="empty"):
        Image.load("")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.*|.*empty\.jpg"):
        Image.load(tmp_path / "empty.jpg")


def test_error_raw_base64_string_hint() -> None:
    for im in (PILImage.new("RGB", (30, 30)), PILImage.fromarray(noise(30, 30))):
        raw = base64.b64encode(encode_pil(im, "PNG")).decode()  # short, then > NAME_MAX
        with pytest.raises(ImageError, match="looks like raw base64"):
            Image.load(raw)


def test_error_bad_bytes() -> None:
    with pytest.raises(ImageError, match="empty"):
        Image.load(b"")
    with pytest.raises(ImageError, match="not a recognised image"):
        Image.load(b"\x01\x02\x03 definitely not an image")
    with pytest.raises(ImageError, match="HTML"):
        Image.load(b"<!DOCTYPE html><html>login page</html>")
    with pytest.raises(ImageError, match="JSON"):
        Image.load(b'{"error": "not found"}')
    with pytest.raises(ImageError, match="heic"):
        Image.load(ftyp(b"heic", b"mif1", b"heic"))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_error_truncated(fmt: str) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = encode_pil(PILImage.fromarray(noise(64, 64, seed=7)), fmt)
    with pytest.raises(ImageError, match=r"truncated|corrupt"):
        Image.load(data[: len(data) // 2])


def test_error_decompression_bomb() -> None:
    # 20000 x 20000 header: Pillow's own bomb check or vlgate's max_pixels fires; nothing decoded
    with pytest.raises(ImageError, match="bomb"):
        Image.load(png_header_only(20000, 20000))
    # 11000 x 10000 = 110 MP: over vlgate's 100 MP default, under Pillow's error threshold
    with pytest.raises(ImageError, match=f"max_pixels={MAX_PIXELS}"):
        Image.load(png_header_only(11000, 10000))
    small = encode_pil(PILImage.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="max_pixels=5000"):
        Image.load(small, max_pixels=5000)
    assert Image.load(small, max_pixels=10000).size == (100, 100)
    with pytest.raises(ImageError, match="max_pixels"):
        Image.load(np.zeros((100, 100), np.uint8), max_pixels=100)


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((5, 0), np.uint8), "empty"),
        (np.zeros(5, np.uint8), "not an image"),
        (np.zeros((2, 2, 2), np.uint8), "not an image"),
        (np.zeros((2, 2, 5), np.uint8), "not an image"),
        (np.zeros((2, 2, 3, 1), np.uint8), "not an image"),
        (np.zeros((2, 2), np.complex64), "unsupported dtype complex64"),
        (np.zeros((2, 2), object), "unsupported dtype object"),
        (np.full((2, 2), "a"), "unsupported dtype"),
        (np.full((2, 2), 300, np.int64), r"\[300, 300\]"),
        (np.full((2, 2), -1, np.int16), r"\[-1, -1\]"),
        (np.array([[0.0, np.nan]]), "NaN or inf"),
        (np.array([[0.0, np.inf]], np.float32), "NaN or inf"),
        (np.array([[0.0, 255.0]]), r"in \[0, 1\]"),
        (np.array([[-0.5, 0.5]]), r"in \[0, 1\]"),
    ],
)
def test_error_bad_arrays(arr: np.ndarray, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        Image.load(arr)


@pytest.mark.parametrize("value", [None, 42, 3.5, [[1, 2]], {"a": 1}, object()])
def test_error_unsupported_types(value: Any) -> None:
    with pytest.raises(ImageError, match="cannot load an image from"):
        Image.load(value)


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("data:image/png;base64", "no ','"),
        ("data:image/png;base64,!!!not-base64!!!", "not valid base64"),
        ("data:image/png;base64,", "no data"),
        ("data:text/plain;base64,aGVsbG8=", "not an image type"),
        ("data:image/png;base64,aGVsbG8=", "not a recognised image"),
    ],
)
def test_error_bad_data_uris(uri: str, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        Image.load(uri)


def test_data_uri_with_whitespace_and_percent_encoding() -> None:
    png = encode_pil(PILImage.new("RGB", (3, 3)), "PNG")
    b64 = base64.b64encode(png).decode()
    wrapped = "\n".join(b64[i : i + 20] for i in range(0, len(b64), 20))
    assert Image.load(f"DATA:image/png;base64,{wrapped}").size == (3, 3)
    from urllib.parse import quote_from_bytes

    assert Image.load("data:image/png," + quote_from_bytes(png)).size == (3, 3)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/y", "s3://bucket/key"]
)
def test_error_non_http_schemes(url: str) -> None:
    with pytest.raises(ImageError, match="unsupported URL scheme"):
        Image.load(url)


# --- URL fetch against a loopback server ---------------------------------------------------------

PNG_8x6 = encode_pil(PILImage.new("RGB", (8, 6), (0, 128, 255)), "PNG")
BIG = encode_pil(PILImage.fromarray(noise(200, 200)), "PNG")  # ~120 kB


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_hosts: list[str] = []  # noqa: RUF012 - shared log, test-only

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        _Handler.seen_hosts.append(self.headers.get("Host", ""))
        path, _, query = self.path.partition("?")
        if path == "/img.png":
            self._send(200, PNG_8x6, {"Content-Type": "image/jpeg"})  # lies about the type
        elif path == "/big":
            self._send(200, BIG, {"Content-Type": "image/png"})
        elif path == "/big-unsized":
            self.protocol_version = "HTTP/1.0"  # body ends when the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(0, len(BIG), 8192):
                self.wfile.write(BIG[i : i + 8192])
            self.close_connection = True
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, PNG_8x6)
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG_8x6)))
            self.end_headers()
            for byte in PNG_8x6:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.02)
        elif path == "/gzip":
            self._send(200, gzip.compress(PNG_8x6), {"Content-Encoding": "gzip"})
        elif path == "/gzip-bomb":
            self._send(200, gzip.compress(b"\x00" * 5_000_000), {"Content-Encoding": "gzip"})
        elif path == "/html":
            self._send(200, b"<html><body>Sign in</body></html>", {"Content-Type": "image/png"})
        elif path == "/empty":
            self._send(200, b"")
        elif path == "/redirect":
            target = query.removeprefix("to=")
            self._send(302, b"", {"Location": target})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        else:
            self._send(404, b"not found")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_url_fetch_sniffs_bytes(server: str) -> None:
    img = Image.load(f"{server}/img.png", allow_private_urls=True)
    enc = img.encode()
    assert img.size == (8, 6) and enc.mime == "image/png" and enc.data == PNG_8x6
    gz = Image.load(f"{server}/gzip", allow_private_urls=True)
    assert gz.encode().data == PNG_8x6


def test_url_private_refused_by_default(server: str) -> None:
    with pytest.raises(ImageError, match=r"non-public address 127\.0\.0\.1"):
        Image.load(f"{server}/img.png")
    port = server.rsplit(":", 1)[1]
    with pytest.raises(ImageError, match="non-public"):
        Image.load(f"http://localhost:{port}/img.png")
    for url in (
        "http://10.1.2.3/a.png",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata endpoint
        "http://[::1]:1/a.png",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://0.0.0.0/a.png",
        "http://100.64.0.1/a.png",
        "http://224.0.0.1/a.png",
    ):
        with pytest.raises(ImageError, match="non-public"):
            Image.load(url)


def test_url_allow_list_pins_checked_address(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    _Handler.seen_hosts.clear()
    img = Image.load(f"http://localhost:{port}/img.png", allow_private_urls=["127.0.0.1/32"])
    assert img.size == (8, 6)
    # connected to the checked IP, but the server still saw the original Host
    assert _Handler.seen_hosts == [f"localhost:{port}"]
    with pytest.raises(ImageError, match="non-public address 127"):
        Image.load(f"{server}/img.png", allow_private_urls=["10.0.0.0/8"])
    with pytest.raises(ImageError, match="allow_private_urls"):
        Image.load(f"{server}/img.png", allow_private_urls=["not-a-network"])


def test_url_redirects_rechecked(server: str) -> None:
    ok = Image.load(f"{server}/redirect?to=/img.png", allow_private_urls=True)
    assert ok.size == (8, 6)
    allow_self = ["127.0.0.1"]
    assert Image.load(f"{server}/redirect?to=/img.png", allow_private_urls=allow_self).size
    with pytest.raises(ImageError, match=r"non-public address 10\.9\.9\.9"):
        Image.load(
            f"{server}/redirect?to=http://10.9.9.9/secret.png", allow_private_urls=allow_self
        )
    with pytest.raises(ImageError, match="unsupported URL scheme 'file'"):
        Image.load(f"{server}/redirect?to=file:///etc/passwd", allow_private_urls=True)
    with pytest.raises(ImageError, match="too many redirects"):
        Image.load(f"{server}/loop", allow_private_urls=True)


def test_url_size_cap(server: str) -> None:
    assert Image.load(f"{server}/big", allow_private_urls=True).size == (200, 200)
    with pytest.raises(ImageError, match="max_download_bytes=50000"):
        Image.load(f"{server}/big", allow_private_urls=True, max_download_bytes=50_000)
    with pytest.raises(ImageError, match="exceeded max_download_bytes=50000"):
        Image.load(f"{server}/big-unsized", allow_private_urls=True, max_download_bytes=50_000)
    with pytest.raises(ImageError, match="exceeded max_download_bytes=1000000"):
        Image.load(f"{server}/gzip-bomb", allow_private_urls=True, max_download_bytes=1_000_000)


def test_url_timeout(server: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(ImageError, match=r"timed out after 0\.3 s"):
        Image.load(f"{server}/slow", allow_private_urls=True, url_timeout=0.3)
    assert time.monotonic() - t0 < 1.2
    with pytest.raises(ImageError, match="timed out"):
        Image.load(f"{server}/drip", allow_private_urls=True, url_timeout=0.5)
    with pytest.raises(ImageError, match="url_timeout"):
        Image.load(f"{server}/img.png", url_timeout=0)


def test_url_http_errors_hide_query(server: str) -> None:
    with pytest.raises(ImageError) as info:
        Image.load(f"{server}/missing.png?token=SECRET123#frag", allow_private_urls=True)
    msg = str(info.value)
    assert "HTTP 404" in msg and "/missing.png" in msg
    assert "SECRET123" not in msg and "token" not in msg and "frag" not in msg
    with pytest.raises(ImageError) as info2:
        Image.load("http://user:hunter2@10.0.0.1/x.png?sig=abc")
    assert "hunter2" not in str(info2.value) and "sig=abc" not in str(info2.value)
    with pytest.raises(ImageError, match="HTML"):
        Image.load(f"{server}/html", allow_private_urls=True)
    with pytest.raises(ImageError, match="empty body"):
        Image.load(f"{server}/empty", allow_private_urls=True)
    closed = "http://127.0.0.1:9/a.png"  # discard port: nothing listens
    with pytest.raises(ImageError, match="cannot fetch"):
        Image.load(closed, allow_private_urls=True, url_timeout=2)


async def test_aload_url(server: str) -> None:
    img = await Image.aload(f"{server}/img.png", allow_private_urls=True)
    assert img.size == (8, 6) and img.encode().mime == "image/png"
    via_redirect = await Image.aload(f"{server}/redirect?to=/img.png", allow_private_urls=True)
    assert via_redirect.size == (8, 6)
    with pytest.raises(ImageError, match="non-public"):
        await Image.aload(f"{server}/img.png")
    with pytest.raises(ImageError, match="non-public address 10"):
        await Image.aload(
            f"{server}/redirect?to=http://10.0.0.1/", allow_private_urls=["127.0.0.1"]
        )
    with pytest.raises(ImageError, match="exceeded max_download_bytes"):
        await Image.aload(
            f"{server}/big-unsized", allow_private_urls=True, max_download_bytes=50_000
        )
    with pytest.raises(ImageError, match="timed out"):
        await Image.aload(f"{server}/drip", allow_private_urls=True, url_timeout=0.5)
    with pytest.raises(ImageError, match="HTTP 404"):
        await Image.aload(f"{server}/nope?key=zzz", allow_private_urls=True)


async def test_aload_local_forms(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG_8x6)
    assert (await Image.aload(path)).size == (8, 6)
    assert (await Image.aload(PNG_8x6)).size == (8, 6)
    with pytest.raises(ImageError, match="not found"):
        await Image.aload(tmp_path / "missing.png")
