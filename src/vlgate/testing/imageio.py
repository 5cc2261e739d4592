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
import hashlib
import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

__all__ = ["ImageInfo", "b64decode_strict", "parse_data_uri", "probe", "sniff_mime"]

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
    key = hashlib.sha1(data).hexdigest()
    with _probe_lock:
        hit = _probe_cache.get(key)
    if hit is not None:
        return hit
    info = _probe(data)
    with _probe_lock:
        _probe_cache[key] = info
        while len(_probe_cache) > 256:
            _probe_cache.popitem(last=False)
    return info


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
