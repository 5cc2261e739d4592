"""Image types from the bytes themselves: magic-number sniffing and the types vlgate sends."""

from __future__ import annotations

from collections.abc import Collection

from ..errors import ImageError

__all__ = ["SENDABLE_MIME", "sniff_mime"]

SENDABLE_MIME = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The only types vlgate ever sends; anything else is transcoded."""

FORMAT_MIME = {
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}

# (offset, magic, mime). Order matters where magics share a prefix.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"II+\x00", "image/tiff"),
    (0, b"MM\x00+", "image/tiff"),
    (0, b"\xff\x0a", "image/jxl"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image/jp2"),
    (0, b"8BPS", "image/vnd.adobe.photoshop"),
    (0, b"qoif", "image/qoi"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (0, b"%PDF-", "application/pdf"),
)
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def sniff_mime(data: bytes | bytearray | memoryview) -> str | None:
    """The image type of ``data`` from its magic bytes, or ``None`` when unknown.

    Only the content counts, never a file name or a declared type.

    Example:
        >>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
        'image/png'
        >>> sniff_mime(b"hello") is None
        True
    """
    head = bytes(data[:64])
    for offset, magic, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM" and len(head) >= 26 and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"  # BM + size + two reserved zero words
    if head[4:8] == b"ftyp":
        box = int.from_bytes(head[:4], "big")
        major = head[8:12]
        brands = {major} | {head[i : i + 4] for i in range(16, min(box, len(head)) - 3, 4)}
        if brands & _AVIF_BRANDS and major not in _HEIC_BRANDS:
            return "image/avif"
        if brands & _HEIC_BRANDS:
            return "image/heic"
        if brands & _HEIF_BRANDS:
            return "image/heif"
    text = head.lstrip()[:5].lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "image/svg+xml"
    return None


def sniff_sendable(data: bytes) -> str:
    """The sniffed type of bytes already known to be an image."""
    mime = sniff_mime(data)
    if mime is None:  # pragma: no cover - source bytes were sniffed at load
        raise ImageError("encoded bytes have no recognisable type")
    return mime


def fmt_list(items: Collection[str]) -> str:
    """``items`` sorted and comma-joined, for messages."""
    return ", ".join(sorted(items))
