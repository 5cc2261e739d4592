"""Byte-level image helpers for the emulator: MIME sniffing, data URIs, cheap size probes.

The emulator plays the provider, so it sniffs types itself instead of trusting what the request
declares (Anthropic checks declared vs actual; coords.md Part B "Media types and magic bytes").

Example::

    >>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n....")
    'image/png'
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

try:  # libjpeg-turbo straight into numpy: the probe's check and the analysis share one decode
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - a core dependency of vlgate, but optional here
    _simplejpeg = None

__all__ = [
    "ImageInfo",
    "b64decode_strict",
    "parse_data_uri",
    "probe",
    "sniff_mime",
    "take_pixels",
]

_DATA_URI_HEAD = re.compile(r"^(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*)$")


def sniff_mime(data: bytes) -> str | None:
    """The image MIME type from magic bytes, or ``None`` if not a known image format.

    Example:
        >>> sniff_mime(b"GIF89a...")
        'image/gif'
    """
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis"):
            return "image/heic"
        if brand in (b"mif1", b"msf1"):
            return "image/heif"
        if brand in (b"avif", b"avis"):
            return "image/avif"
    return None


def b64decode_strict(text: str) -> bytes:
    """Decode base64 the way Go's decoder does: invalid characters are an error.

    Raises ``ValueError`` with Go-like wording ("illegal base64 data at input byte N").

    Example:
        >>> b64decode_strict("aGk=")
        b'hi'
    """
    cleaned = text.strip()
    if sys.version_info >= (3, 11):  # strict_mode is new in 3.11
        # One C pass for well-formed input; anything it refuses takes the path below, so
        # what is accepted and the error wording stay those of ``validate=True``.
        with contextlib.suppress(binascii.Error, ValueError):
            return binascii.a2b_base64(cleaned, strict_mode=True)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        for i, ch in enumerate(cleaned):
            if not (ch.isalnum() or ch in "+/="):
                raise ValueError(f"illegal base64 data at input byte {i}") from None
        raise ValueError(f"illegal base64 data at input byte {len(cleaned)}") from None


def parse_data_uri(uri: str) -> tuple[str | None, bool, str] | None:
    """Split ``data:<mime>[;base64],<payload>`` into (mime or None, is_base64, payload).

    Example:
        >>> parse_data_uri("data:image/png;base64,AAAA")
        ('image/png', True, 'AAAA')
    """
    if not uri.startswith("data:"):
        return None
    comma = uri.find(",")
    if comma < 0:
        return None
    m = _DATA_URI_HEAD.match(uri[5:comma])
    if m is None:
        return None
    params = [p for p in m.group("params").split(";") if p]
    return (m.group("mime") or None, "base64" in params, uri[comma + 1 :])


# The SHA-1 of the last few image byte strings, by identity: the probe, the analysis and the
# answer's seed of one request hash the same bytes object once. The entry holds the object, so
# its id is not reused while it is remembered (only small images, so little memory is held).
_keys: OrderedDict[int, tuple[bytes, str]] = OrderedDict()
_keys_lock = threading.Lock()
_KEY_MEMO_MAX_BYTES = 2 * 1024 * 1024


def content_key(data: bytes) -> str:
    """The SHA-1 hex digest of ``data`` (remembered for the last few objects hashed).

    Example:
        >>> content_key(b"hi")
        'c22b5f9178342609428d6f51b2c5af4c0bde6a42'
    """
    with _keys_lock:
        hit = _keys.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    key = hashlib.sha1(data).hexdigest()
    if len(data) > _KEY_MEMO_MAX_BYTES:
        return key
    with _keys_lock:
        _keys[id(data)] = (data, key)
        while len(_keys) > 8:
            _keys.popitem(last=False)
    return key


@dataclass(frozen=True)
class ImageInfo:
    """What a cheap header probe learns: type, upright size, EXIF orientation."""

    mime: str | None
    size: tuple[int, int] | None
    orientation: int | None


_probe_cache: OrderedDict[str, ImageInfo] = OrderedDict()
_probe_lock = threading.Lock()


def probe(data: bytes) -> ImageInfo:
    """Sniff the type and read the upright size (cached by content hash).

    Small images and JPEGs (at 1/8 scale) are decoded too, so corrupt data is noticed.

    Example:
        >>> probe(b"not an image").size is None
        True
    """
    key = content_key(data)
    with _probe_lock:
        hit = _probe_cache.get(key)
    if hit is not None:
        return hit
    info = _probe_plain_jpeg(data, key) if data[:3] == b"\xff\xd8\xff" else None
    if info is None:
        info = _probe(data)
    with _probe_lock:
        _probe_cache[key] = info
        while len(_probe_cache) > 256:
            _probe_cache.popitem(last=False)
    return info


FULL_DECODE_LONG = 1100
"""JPEGs up to this long side are decoded in full (larger ones at a reduced DCT scale)."""

# Pixels the probe decoded, kept for the analysis of the same request (vision.analyze takes them
# by content hash): one libjpeg-turbo decode per image instead of a probe decode plus another.
_pixels: OrderedDict[str, np.ndarray] = OrderedDict()
_pixels_bytes = 0
_PIXELS_MAX_BYTES = 48 * 1024 * 1024


def take_pixels(key: str) -> np.ndarray | None:
    """The upright RGB pixels :func:`probe` decoded for the image whose SHA-1 hex is ``key``
    (removed: each is used once), or ``None``.

    Example:
        >>> take_pixels("0" * 40) is None
        True
    """
    global _pixels_bytes
    with _probe_lock:
        arr = _pixels.pop(key, None)
        if arr is not None:
            _pixels_bytes -= arr.nbytes
    return arr


def _keep_pixels(key: str, arr: np.ndarray) -> None:
    global _pixels_bytes
    with _probe_lock:
        old = _pixels.pop(key, None)
        if old is not None:
            _pixels_bytes -= old.nbytes
        _pixels[key] = arr
        _pixels_bytes += arr.nbytes
        while _pixels_bytes > _PIXELS_MAX_BYTES and _pixels:
            _pixels_bytes -= _pixels.popitem(last=False)[1].nbytes


def _probe_plain_jpeg(data: bytes, key: str) -> ImageInfo | None:
    """The probe of a colour JPEG without EXIF, decoded by libjpeg-turbo (strict: truncated or
    corrupt data fails); ``None`` to take the general path (EXIF, CMYK, grey, any error)."""
    if _simplejpeg is None or _has_exif(data):
        return None
    try:
        h, w, colorspace, _ = _simplejpeg.decode_jpeg_header(data)
        cap = Image.MAX_IMAGE_PIXELS
        if colorspace != "YCbCr" or w < 1 or h < 1 or (cap is not None and w * h > cap):
            return None  # (a bomb is for Pillow to refuse, as before)
        if max(w, h) <= FULL_DECODE_LONG:
            _keep_pixels(key, _simplejpeg.decode_jpeg(data, colorspace="RGBX"))
        else:
            # At 1/8 scale: the whole entropy-coded stream is still read, so corrupt or
            # truncated data fails as in a full decode. (min_factor alone does not scale:
            # simplejpeg picks the scale from min_height/min_width.)
            _simplejpeg.decode_jpeg(data, colorspace="RGB", min_factor=8, min_height=1)
    except ValueError:
        return None
    return ImageInfo("image/jpeg", (w, h), None)


def _has_exif(data: bytes) -> bool:
    """Whether a JPEG has an ``Exif`` APP1 segment before its scan (or its markers are odd:
    then the general path decides)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return True
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no EXIF before the pixels
            return False
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            return True
        i += 2 + length
    return True


def _probe(data: bytes) -> ImageInfo:
    mime = sniff_mime(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            orientation: int | None = None
            if mime in ("image/jpeg", "image/webp", "image/png", "image/tiff"):
                tag = im.getexif().get(0x0112)
                orientation = int(tag) if isinstance(tag, int) and 1 <= tag <= 8 else None
            # A truncated or corrupt file passes the header probe; decode it (JPEG at 1/8 scale,
            # which is cheap) so "Could not process image" is answered like the real services do.
            if mime == "image/jpeg":
                im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
                im.load()
            elif w * h <= 4_000_000:
                im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return ImageInfo(mime, None, None)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return ImageInfo(mime, (w, h), orientation)
