"""Images in, bytes out: :class:`Image` loads anything once, :class:`EncodedImage` is what is sent.

``Image.load`` accepts a path, bytes, a data URI, an http(s) URL, a PIL image, a numpy array or an
``Image``. It decodes eagerly (so broken files fail at load, before anything is sent), applies the
EXIF orientation and keeps the original resolution. ``Image.encode`` produces the bytes for one
request: resized, fitted to a service's :class:`~vlgate.registry.ImageLimits`, and labelled with a
MIME type sniffed from the bytes themselves.

Example:
    >>> import numpy as np
    >>> img = Image.load(np.zeros((480, 640, 3), np.uint8))
    >>> enc = img.encode(size=(320, 240))
    >>> enc.mime, enc.size, enc.scale
    ('image/jpeg', (320, 240), (0.5, 0.5))
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import importlib
import io
import ipaddress
import math
import os
import re
import socket
import struct
import threading
import urllib.parse
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, Union, cast

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from .errors import ImageError
from .registry import ImageLimits

if TYPE_CHECKING:
    import httpx
    import numpy as np
    from numpy.typing import NDArray
else:

    class _LazyNumpy:
        """numpy costs ~0.3 s to import here; only arrays and encoders need it, so load on use."""

        def __getattr__(self, name: str) -> Any:
            numpy = importlib.import_module("numpy")
            globals()["np"] = numpy
            return getattr(numpy, name)

    np = _LazyNumpy()

_UNSET: Any = object()
_simplejpeg: Any = _UNSET  # resolved on first JPEG encode; None when not installed


def _jpeg() -> Any:
    """simplejpeg (libjpeg-turbo straight from a numpy buffer), or None to use Pillow."""
    global _simplejpeg
    if _simplejpeg is _UNSET:
        try:
            _simplejpeg = importlib.import_module("simplejpeg")
        except ImportError:  # pragma: no cover - optional speed-up
            _simplejpeg = None
    return _simplejpeg


__all__ = [
    "MAX_PIXELS",
    "SENDABLE_MIME",
    "EncodedImage",
    "Image",
    "ImageInput",
    "sniff_mime",
]

MB = 1024 * 1024
MAX_PIXELS = 100_000_000
"""Default cap on decoded pixels (width x height); larger images are refused as likely bombs."""

SENDABLE_MIME = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The only types vlgate ever sends; anything else is transcoded."""

_FORMAT_MIME = {
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}
_MIME_PIL = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
# Modes a decoded file may be in and still be sent byte-for-byte (others, e.g. CMYK or 16-bit,
# are transcoded because not every provider decodes them).
_PASSTHROUGH_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_JPEG_QUALITY_STEPS = (85, 75, 65, 55, 45, 35)
_MAX_SHRINK_STEPS = 12
_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_CACHE_ENTRIES = 16

# --- MIME sniffing ------------------------------------------------------------------------------

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


# --- the encoded result --------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedImage:
    """The bytes of one image exactly as sent, with the geometry needed to map answers back.

    ``mime`` must be the type sniffed from ``data`` and one vlgate sends (JPEG, PNG, GIF, WebP);
    the constructor raises :class:`~vlgate.errors.ImageError` otherwise.

    Example:
        >>> enc = Image.load(np.zeros((480, 640, 3), np.uint8)).encode(size=(644, 476))
        >>> enc.scale[0] != enc.scale[1], enc.to_original(644, 476)
        (True, (640.0, 480.0))
    """

    data: bytes = field(repr=False)
    mime: str
    size: tuple[int, int]
    """(w, h) of the image as sent."""
    original_size: tuple[int, int]
    """(w, h) of the upright original image."""

    def __post_init__(self) -> None:
        sniffed = sniff_mime(self.data)
        if sniffed != self.mime:
            raise ImageError(
                f"EncodedImage labelled {self.mime!r} but its bytes are {sniffed or 'unknown'!r}"
            )
        if sniffed not in SENDABLE_MIME:
            raise ImageError(f"{sniffed!r} is not a type vlgate sends ({_fmt(SENDABLE_MIME)})")
        for name, wh in (("size", self.size), ("original_size", self.original_size)):
            if len(wh) != 2 or min(wh) < 1:
                raise ImageError(f"EncodedImage.{name} must be a positive (w, h), got {wh!r}")

    def __repr__(self) -> str:
        w, h = self.size
        ow, oh = self.original_size
        return f"EncodedImage({self.mime}, {w}x{h} from {ow}x{oh}, {self.nbytes} bytes)"

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)``: sent size over original size, separately for x and y."""
        return (self.size[0] / self.original_size[0], self.size[1] / self.original_size[1])

    @property
    def nbytes(self) -> int:
        """Length of ``data`` (raw, before base64)."""
        return len(self.data)

    @cached_property
    def b64(self) -> str:
        """``data`` in standard base64."""
        return base64.b64encode(self.data).decode("ascii")

    @cached_property
    def data_uri(self) -> str:
        """``data:<mime>;base64,<b64>``, as OpenAI-style ``image_url`` parts take it."""
        return f"data:{self.mime};base64,{self.b64}"

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """Map a point in the sent image's pixels back to the original image's pixels.

        Example:
            >>> enc = Image.load(np.zeros((100, 200, 3), np.uint8)).encode(size=(100, 50))
            >>> enc.to_original(50, 25)
            (100.0, 50.0)
        """
        sx, sy = self.scale
        return (x / sx, y / sy)


# --- the image ------------------------------------------------------------------------------------

ImageInput = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    PILImage.Image,
    "NDArray[Any]",
    "Image",
]
"""Everything :meth:`Image.load` accepts."""

_EncodeKey = tuple[Any, ...]


class _Attempt(NamedTuple):
    data: bytes | None
    size: tuple[int, int]
    nbytes: int
    mime: str


class Image:
    """One image, decoded once, upright, at its original resolution.

    Build it with :meth:`load` (anything), :meth:`aload` (async URL fetch) or :meth:`from_bgr`
    (OpenCV frames). It is immutable; encodings are cached on the instance.

    Example:
        >>> img = Image.load(np.full((10, 20, 3), 255, np.uint8))
        >>> img.size, img.has_alpha
        ((20, 10), False)
    """

    __slots__ = (
        "_arr",
        "_cache",
        "_exif_rotated",
        "_lock",
        "_pil",
        "_sha256",
        "_size",
        "_source",
        "_source_mime",
        "_source_mode",
    )

    def __init__(
        self,
        *,
        pil: PILImage.Image | None = None,
        arr: NDArray[np.uint8] | None = None,
        source: bytes | None = None,
        source_mime: str | None = None,
        source_mode: str | None = None,
        exif_rotated: bool = False,
    ) -> None:
        # Private: use Image.load(). Exactly one of pil / arr holds the upright RGB(A) pixels.
        if pil is None and arr is None:
            raise ImageError("Image needs pixels; use Image.load()")
        self._pil = pil
        self._arr = arr
        if arr is not None:
            self._size: tuple[int, int] = (int(arr.shape[1]), int(arr.shape[0]))
        else:
            assert pil is not None
            self._size = pil.size
        self._source = source
        self._source_mime = source_mime
        self._source_mode = source_mode
        self._exif_rotated = exif_rotated
        self._sha256: str | None = None
        self._cache: dict[_EncodeKey, EncodedImage] = {}
        self._lock = threading.Lock()

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        source: ImageInput,
        *,
        allow_private_urls: bool | Collection[str] = False,
        url_timeout: float = 10.0,
        max_download_bytes: int = 50 * MB,
        max_pixels: int = MAX_PIXELS,
    ) -> Image:
        """Load an image from a path, bytes, data URI, http(s) URL, PIL image or numpy array.

        URLs are fetched by vlgate (timeout, size cap, redirects re-checked); hosts resolving to
        private, loopback, link-local or reserved addresses are refused unless
        ``allow_private_urls`` is ``True`` or lists the allowed addresses/networks
        (e.g. ``["192.168.1.0/24"]``). Numpy arrays are HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)
        of uint8, uint16, bool or float in [0, 1]. Raises :class:`~vlgate.errors.ImageError`.

        Example:
            >>> Image.load(np.zeros((4, 6), np.uint8)).size
            (6, 4)
        """
        if isinstance(source, Image):
            return source
        if isinstance(source, str) and _is_url(source):
            data = _fetch_sync(
                source,
                allow_private=allow_private_urls,
                timeout=url_timeout,
                max_bytes=max_download_bytes,
            )
            return _from_bytes(data, _safe_url(source), max_pixels)
        return _load_local(source, max_pixels)

    @classmethod
    async def aload(
        cls,
        source: ImageInput,
        *,
        allow_private_urls: bool | Collection[str] = False,
        url_timeout: float = 10.0,
        max_download_bytes: int = 50 * MB,
        max_pixels: int = MAX_PIXELS,
    ) -> Image:
        """Like :meth:`load`, but fetches URLs with ``httpx.AsyncClient`` and decodes off the loop.

        Example:
            >>> import asyncio
            >>> asyncio.run(Image.aload(np.zeros((4, 6), np.uint8))).size
            (6, 4)
        """
        if isinstance(source, Image):
            return source
        if isinstance(source, str) and _is_url(source):
            data = await _fetch_async(
                source,
                allow_private=allow_private_urls,
                timeout=url_timeout,
                max_bytes=max_download_bytes,
            )
            return await asyncio.to_thread(_from_bytes, data, _safe_url(source), max_pixels)
        return await asyncio.to_thread(_load_local, source, max_pixels)

    @classmethod
    def from_bgr(cls, array: NDArray[Any], *, max_pixels: int = MAX_PIXELS) -> Image:
        """An image from an OpenCV-style BGR (HxWx3) or BGRA (HxWx4) array; grey passes through.

        Example:
            >>> bgr = np.zeros((2, 2, 3), np.uint8); bgr[..., 0] = 255   # blue in BGR
            >>> Image.from_bgr(bgr).to_numpy()[0, 0].tolist()
            [0, 0, 255]
        """
        if not isinstance(array, np.ndarray):
            raise ImageError(f"from_bgr needs a numpy array, got {type(array).__name__}")
        arr = _normalise_array(array, "BGR array", max_pixels)
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            order = [2, 1, 0] if arr.shape[2] == 3 else [2, 1, 0, 3]
            arr = np.ascontiguousarray(arr[..., order])
        return _from_array(arr, copied=True)

    # -- properties ----------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright image at its original resolution."""
        return self._size

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self._size[0]

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self._size[1]

    @property
    def has_alpha(self) -> bool:
        """Whether the image has an alpha channel that is not fully opaque."""
        if self._arr is not None:
            return self._arr.ndim == 3 and self._arr.shape[2] == 4
        assert self._pil is not None
        return self._pil.mode == "RGBA"

    @property
    def source_mime(self) -> str | None:
        """The sniffed type of the encoded bytes this image was loaded from, if any."""
        return self._source_mime

    @property
    def sha256(self) -> str:
        """Hex SHA-256 for cache keys: of the source bytes when loaded from an encoded file,
        else of the pixel buffer and its shape."""
        if self._sha256 is None:
            h = hashlib.sha256()
            if self._source is not None:
                h.update(self._source)
            else:
                arr = self._pixels_array()
                h.update(b"vlgate-pixels:%d:%d:%d:" % (arr.shape[1], arr.shape[0], arr.shape[2]))
                h.update(arr.data.cast("B"))
            self._sha256 = h.hexdigest()
        return self._sha256

    def __repr__(self) -> str:
        mode = "RGBA" if self.has_alpha else "RGB"
        src = f" from {self._source_mime}" if self._source_mime else ""
        return f"<vlgate.Image {self.width}x{self.height} {mode}{src}>"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "pil": self._pil,
            "arr": self._arr,
            "source": self._source,
            "source_mime": self._source_mime,
            "source_mode": self._source_mode,
            "exif_rotated": self._exif_rotated,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Image.__init__(self, **state)
        if self._arr is not None:
            self._arr.flags.writeable = False

    # -- conversions ---------------------------------------------------------------------------

    def to_pil(self) -> PILImage.Image:
        """A new upright PIL image in mode ``RGB`` or ``RGBA`` (a copy: safe to modify).

        Example:
            >>> Image.load(np.zeros((4, 6, 4), np.uint8)).to_pil().mode
            'RGBA'
        """
        if self._pil is not None:
            return self._pil.copy()
        return PILImage.fromarray(self._pixels_array())

    def to_numpy(self) -> NDArray[np.uint8]:
        """Upright HxWx3 (RGB) or HxWx4 (RGBA) uint8 pixels (read-only; copy to modify).

        Example:
            >>> Image.load(np.zeros((4, 6), np.uint8)).to_numpy().shape
            (4, 6, 3)
        """
        return self._pixels_array()

    def fit_within(self, max_size: tuple[int, int]) -> tuple[int, int]:
        """The largest aspect-preserving size within ``max_size``; never larger than the image.

        Example:
            >>> Image.load(np.zeros((1080, 1920, 3), np.uint8)).fit_within((640, 640))
            (640, 360)
        """
        return _fit(self._size, max_size, upscale=False)

    # -- encoding ------------------------------------------------------------------------------

    def encode(
        self,
        *,
        size: tuple[int, int] | None = None,
        limits: ImageLimits | None = None,
        n_images: int = 1,
        quality: int = 90,
        format: str | None = None,
    ) -> EncodedImage:
        """Encode for sending: at ``size`` (default: original), within ``limits``.

        ``limits`` decides the accepted formats, the side cap for ``n_images`` per request,
        the minimum side (upscales) and the byte cap (lower JPEG quality, then smaller). When the
        source file is already acceptable as is, its original bytes are sent unchanged. Photos
        become JPEG, images with alpha PNG; ``format`` ("jpeg", "png", "webp") forces one.
        Results are cached per argument set.

        Example:
            >>> img = Image.load(np.zeros((3000, 4000, 3), np.uint8))
            >>> img.encode(limits=ImageLimits(max_side=2000)).size
            (2000, 1500)
        """
        limits = limits if limits is not None else _NO_LIMITS
        target = self._target_size(size, limits, n_images)
        fmt = _check_format(format, limits)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ImageError(f"quality must be an int from 1 to 100, got {quality!r}")
        key = (target, limits, quality, fmt)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = self._encode_uncached(target, limits, quality, fmt)
        with self._lock:
            # Keep the first result so every caller shares one object (and one base64 string).
            if key not in self._cache and len(self._cache) >= _CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))  # oldest first
            result = self._cache.setdefault(key, result)
        return result

    def _target_size(
        self, size: tuple[int, int] | None, limits: ImageLimits, n_images: int
    ) -> tuple[int, int]:
        if size is None:
            w, h = self._size
        else:
            try:
                w, h = (int(v) for v in size)
                ok = all(int(v) == v for v in size)
            except (TypeError, ValueError):
                ok = False
            if not ok or w < 1 or h < 1:
                raise ImageError(f"size must be a (width, height) of positive ints, got {size!r}")
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
            raise ImageError(f"n_images must be a positive int, got {n_images!r}")
        cap = limits.side_cap(n_images)
        if cap is not None and max(w, h) > cap:
            w, h = _fit((w, h), (cap, cap), upscale=False)
        low = limits.min_side
        if low is not None and min(w, h) < low:
            f = low / min(w, h)
            w, h = (low, max(low, round(h * f))) if w <= h else (max(low, round(w * f)), low)
            if cap is not None and max(w, h) > cap:
                raise ImageError(
                    f"image {self.width}x{self.height} cannot meet both min_side={low} and "
                    f"max side {cap}: its aspect ratio is too extreme; crop it first"
                )
        return (w, h)

    def _encode_uncached(
        self, target: tuple[int, int], limits: ImageLimits, quality: int, fmt: str | None
    ) -> EncodedImage:
        allowed = limits.formats & SENDABLE_MIME
        src = self._source
        if (
            src is not None
            and self._source_mime in allowed
            and fmt in (None, self._source_mime)
            and not self._exif_rotated
            and self._source_mode in _PASSTHROUGH_MODES
            and target == self._size
            and (limits.max_bytes is None or len(src) <= limits.max_bytes)
        ):
            return EncodedImage(src, _sniff_sendable(src), self._size, self._size)

        if fmt is not None:
            order = [fmt]
        elif self.has_alpha:
            # PNG keeps the alpha; JPEG (flattened onto white) is the fallback when PNG is not
            # accepted or too big. WebP/GIF only when neither is allowed.
            order = [m for m in ("image/png", "image/jpeg", "image/webp") if m in allowed]
        else:
            order = [m for m in ("image/jpeg", "image/webp", "image/png") if m in allowed]
        if not order:
            order = sorted(allowed)
        max_bytes = limits.max_bytes
        low = limits.min_side or 1
        best: _Attempt | None = None
        for i, mime in enumerate(order):
            # Try the target size in every format before shrinking in the last one.
            got = self._encode_fitting(
                mime, target, quality, max_bytes, low, shrink=i == len(order) - 1
            )
            if got.data is not None:
                return EncodedImage(got.data, mime, got.size, self._size)
            if best is None or got.nbytes < best.nbytes:
                best = got
        assert best is not None
        raise ImageError(
            f"cannot fit image {self.width}x{self.height} into max_bytes={max_bytes}: the "
            f"smallest attempt ({best.mime} {best.size[0]}x{best.size[1]}) was {best.nbytes} "
            f"bytes (min_side={low})"
        )

    def _encode_fitting(
        self,
        mime: str,
        target: tuple[int, int],
        quality: int,
        max_bytes: int | None,
        low: int,
        *,
        shrink: bool,
    ) -> _Attempt:
        """Bytes that fit ``max_bytes`` (lower quality, then smaller), or the smallest miss."""
        lossy = mime in ("image/jpeg", "image/webp")
        qualities = [quality]
        if lossy and max_bytes is not None:
            qualities += [q for q in _JPEG_QUALITY_STEPS if q < quality]
        smallest: _Attempt | None = None
        size = target
        for step in range(_MAX_SHRINK_STEPS + 1):
            for q in qualities if step == 0 else qualities[-1:]:
                data = self._encode_pixels(mime, size, q, compact=max_bytes is not None)
                if max_bytes is None or len(data) <= max_bytes:
                    return _Attempt(data, size, len(data), mime)
                if smallest is None or len(data) < smallest.nbytes:
                    smallest = _Attempt(None, size, len(data), mime)
            assert smallest is not None and max_bytes is not None
            if not shrink:
                break
            # Bytes grow roughly with the pixel count: aim just under the cap in one step.
            f = min(0.9, max(0.5, 0.95 * math.sqrt(max_bytes / smallest.nbytes)))
            w, h = size
            new = (max(1, round(w * f)), max(1, round(h * f)))
            if min(new) < low:
                break
            size = new
        assert smallest is not None
        return smallest

    def _encode_pixels(
        self, mime: str, size: tuple[int, int], quality: int, compact: bool
    ) -> bytes:
        if mime == "image/jpeg":
            arr = self._arr if size == self._size else None
            if arr is not None and _jpeg() is not None:
                if arr.shape[2] == 4:
                    arr = _flatten_array(arr)
                return bytes(
                    _jpeg().encode_jpeg(
                        arr, quality=quality, colorspace="RGB", colorsubsampling="420"
                    )
                )
            im = _flatten_pil(self._resized(size))
            return _save(im, "JPEG", quality=quality, optimize=False, subsampling=2)
        im = self._resized(size)
        if mime == "image/png":
            # Level 1 is several times faster than the default 6; go tight only under a byte cap.
            return _save(im, "PNG", compress_level=9 if compact else 1)
        if mime == "image/webp":
            return _save(im, "WEBP", quality=quality, method=4 if compact else 0)
        if mime == "image/gif":
            return _save(im.convert("RGBA" if im.mode == "RGBA" else "RGB").quantize(), "GIF")
        raise ImageError(f"vlgate cannot encode {mime!r}")  # pragma: no cover - guarded above

    # -- pixels --------------------------------------------------------------------------------

    def _pil_image(self) -> PILImage.Image:
        if self._pil is None:
            assert self._arr is not None
            self._pil = PILImage.fromarray(self._arr)
        return self._pil

    def _pixels_array(self) -> NDArray[np.uint8]:
        if self._arr is None:
            arr = np.asarray(self._pil_image())
            arr.flags.writeable = False
            self._arr = arr
        return self._arr

    def _resized(self, size: tuple[int, int]) -> PILImage.Image:
        im = self._pil_image()
        if im.size == size:
            return im
        shrinking = size[0] < im.width and size[1] < im.height
        return im.resize(size, PILImage.Resampling.BICUBIC, reducing_gap=2.0 if shrinking else None)


_NO_LIMITS = ImageLimits()


# --- loading helpers ------------------------------------------------------------------------------


def _fmt(items: Collection[str]) -> str:
    return ", ".join(sorted(items))


def _is_url(text: str) -> bool:
    head = text[:16].lower()
    if head.startswith("data:"):
        return False
    scheme, sep, _ = text.partition("://")
    return (
        bool(sep)
        and scheme.isascii()
        and scheme.replace("+", "").replace(".", "").replace("-", "").isalnum()
        and len(scheme) > 1
    )


def _load_local(source: ImageInput, max_pixels: int) -> Image:
    if isinstance(source, Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), "image bytes", max_pixels)
    if isinstance(source, str):
        if source[:5].lower() == "data:":
            return _from_bytes(_decode_data_uri(source), "data URI", max_pixels)
        return _from_path(source, max_pixels)
    if isinstance(source, os.PathLike):
        return _from_path(os.fspath(source), max_pixels)
    if isinstance(source, PILImage.Image):
        return _from_pil(source, "PIL image", max_pixels)
    if isinstance(source, np.ndarray):
        return _from_array(_normalise_array(source, "array", max_pixels), copied=False)
    raise ImageError(
        f"cannot load an image from {type(source).__name__}; pass a path, bytes, a data URI, "
        "an http(s) URL, a PIL image, a numpy array or a vlgate.Image"
    )


def _from_path(path: str | bytes, max_pixels: int) -> Image:
    shown = os.fsdecode(path)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    if not path:
        raise ImageError("image path is empty")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise ImageError(f"image path is a directory, not a file: {shown}") from None
    except OSError as exc:
        hint = ""
        if isinstance(path, str) and len(path) > 100 and _B64ISH.fullmatch(path[:100]):
            hint = " (this looks like raw base64: pass 'data:image/jpeg;base64,...' or bytes)"
        if isinstance(exc, FileNotFoundError):
            raise ImageError(f"image file not found: {shown}{hint}") from None
        raise ImageError(f"cannot read image file {shown}: {exc.strerror or exc}{hint}") from None
    return _from_bytes(data, shown, max_pixels)


_B64ISH = re.compile(r"[A-Za-z0-9+/=\s]+")


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageError("malformed data URI: no ',' between header and data")
    params = header[5:].split(";")
    if params[0] and not params[0].lower().startswith("image/"):
        raise ImageError(f"data URI declares {params[0]!r}, not an image type")
    if any(p.strip().lower() == "base64" for p in params[1:]):
        compact = "".join(payload.split())
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("malformed data URI: the payload is not valid base64") from None
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if not data:
        raise ImageError("data URI holds no data")
    return data


def _from_bytes(data: bytes, where: str, max_pixels: int) -> Image:
    if not data:
        raise ImageError(f"{where}: empty (0 bytes)")
    sniffed = sniff_mime(data)
    try:
        with warnings.catch_warnings():
            # vlgate applies its own max_pixels below; Pillow's global warning would duplicate it.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data))
            _check_pixels(im.size, where, max_pixels)
            im.load()  # decode everything now: truncated or corrupt data fails here
    except ImageError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"{where}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{where}: {_unknown_format(data, sniffed)}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageError(f"{where}: {kind} {sniffed or 'image'} data ({exc})") from None
    if sniffed is None:
        # Pillow knows formats without a magic vlgate recognises (e.g. TGA): re-encode them.
        sniffed = f"image/x-{(im.format or 'unknown').lower()}"
    return _from_pil(im, where, max_pixels, source=data, source_mime=sniffed)


def _unknown_format(data: bytes, sniffed: str | None) -> str:
    if sniffed in ("image/heic", "image/heif"):
        return f"{sniffed} is not supported by this Pillow; install pillow-heif or convert to JPEG"
    if sniffed is not None:
        return f"{sniffed} cannot be decoded by Pillow"
    head = data[:32].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<")):
        return "not an image (looks like HTML/XML text)"
    if head.startswith((b"{", b"[")):
        return "not an image (looks like JSON)"
    return f"not a recognised image format (starts with {data[:8].hex(' ')})"


def _check_pixels(size: tuple[int, int], where: str, max_pixels: int) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{where}: image has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            f"{where}: image is {w}x{h} = {w * h} pixels, more than max_pixels={max_pixels} "
            "(possible decompression bomb; raise max_pixels if it is genuine)"
        )


def _from_pil(
    im: PILImage.Image,
    where: str,
    max_pixels: int,
    *,
    source: bytes | None = None,
    source_mime: str | None = None,
) -> Image:
    _check_pixels(im.size, where, max_pixels)
    if source is None:
        try:
            im.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{where}: cannot decode ({exc})") from None
    mode = im.mode
    orientation = im.getexif().get(0x0112, 1) if source is not None or im.format else 1
    rotated = orientation in (2, 3, 4, 5, 6, 7, 8)
    if rotated:
        im = ImageOps.exif_transpose(im)
    converted = _to_rgb_or_rgba(im, where)
    if converted is im and source is None:
        converted = im.copy()  # the caller's PIL image stays theirs to draw on
    return Image(
        pil=converted,
        source=source,
        source_mime=source_mime,
        source_mode=mode,
        exif_rotated=rotated,
    )


def _to_rgb_or_rgba(im: PILImage.Image, where: str) -> PILImage.Image:
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        if mode == "I" and arr.size and int(arr.max()) <= 255 and int(arr.min()) >= 0:
            arr8 = arr.astype(np.uint8)
        else:
            arr8 = _scale16(np.clip(arr, 0, 65535).astype(np.uint16))
        return PILImage.fromarray(arr8).convert("RGB")
    if mode == "F":
        arr = np.asarray(im)
        if not np.isfinite(arr).all():
            raise ImageError(f"{where}: float image contains NaN or inf")
        hi = 1.0 if arr.size and float(arr.max()) <= 1.0 else 255.0
        arr8 = (np.clip(arr / hi, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return PILImage.fromarray(arr8).convert("RGB")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in _ALPHA_MODES or (mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
    elif mode != "RGB":
        im = im.convert("RGB")
    if im.mode == "RGBA" and cast(Any, im.getchannel("A")).getextrema()[0] == 255:
        im = im.convert("RGB")  # a fully opaque alpha channel carries nothing
    return im


def _scale16(arr: NDArray[np.uint16]) -> NDArray[np.uint8]:
    # Round to nearest: 65535 -> 255, 32768 -> 128.
    out: NDArray[np.uint8] = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return out


def _normalise_array(array: NDArray[Any], what: str, max_pixels: int) -> NDArray[np.uint8]:
    """Validate an array and turn it into HxW / HxWxC uint8 (C in 1, 3, 4)."""
    a = array
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(
            f"{what} of shape {a.shape} is not an image: expected HxW, HxWx1, HxWx3 or HxWx4"
        )
    if a.size == 0:
        raise ImageError(f"{what} of shape {array.shape} is empty")
    _check_pixels((a.shape[1], a.shape[0]), what, max_pixels)
    kind = a.dtype.kind
    if a.dtype == np.uint8:
        return cast("NDArray[np.uint8]", a)
    if kind == "b":
        out: NDArray[np.uint8] = a.astype(np.uint8) * np.uint8(255)
        return out
    if a.dtype == np.uint16:
        return _scale16(a)
    if kind == "f":
        if not np.isfinite(a).all():
            raise ImageError(f"{what} of dtype {a.dtype} contains NaN or inf")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"{what} of dtype {a.dtype} has values in [{lo:g}, {hi:g}]; float images must be "
                "in [0, 1] (divide by 255 first for 0-255 data)"
            )
        return (a.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ImageError(
                f"{what} of dtype {a.dtype} has values in [{lo}, {hi}]; integer images other "
                "than uint16 must be in [0, 255]"
            )
        return a.astype(np.uint8)
    raise ImageError(
        f"{what} has unsupported dtype {a.dtype}; use uint8, uint16, bool or float in [0, 1]"
    )


def _from_array(arr: NDArray[np.uint8], *, copied: bool) -> Image:
    if _jpeg() is None and arr.ndim == 3 and arr.shape[2] == 3:
        # Without simplejpeg, Pillow encodes; it copies RGB into its own storage anyway, so a
        # numpy copy first would only cost time.
        return Image(pil=PILImage.fromarray(arr))
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4 and int(arr[..., 3].min()) == 255:
        arr = np.ascontiguousarray(arr[..., :3])  # fully opaque alpha carries nothing
    elif not copied or not arr.flags.c_contiguous or not arr.flags.owndata:
        # The caller may reuse their buffer (camera ring buffers do): keep our own copy.
        arr = np.array(arr, dtype=np.uint8, order="C", copy=True)
    arr.flags.writeable = False
    return Image(arr=arr)


def _flatten_array(arr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    rgb = arr[..., :3].astype(np.uint16)
    alpha = arr[..., 3:4].astype(np.uint16)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(out.astype(np.uint8))


def _flatten_pil(im: PILImage.Image) -> PILImage.Image:
    if im.mode != "RGBA":
        return im
    white = PILImage.new("RGB", im.size, (255, 255, 255))
    white.paste(im, mask=im.getchannel("A"))
    return white


def _save(im: PILImage.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _sniff_sendable(data: bytes) -> str:
    mime = sniff_mime(data)
    if mime is None:  # pragma: no cover - source bytes were sniffed at load
        raise ImageError("encoded bytes have no recognisable type")
    return mime


def _check_format(fmt: str | None, limits: ImageLimits) -> str | None:
    allowed = limits.formats & SENDABLE_MIME
    if not allowed:
        raise ImageError(
            f"limits accept none of the types vlgate sends ({_fmt(limits.formats)}); "
            f"vlgate sends {_fmt(SENDABLE_MIME)}"
        )
    if fmt is None:
        return None
    key = fmt.lower().removeprefix("image/")
    mime = _FORMAT_MIME.get(key)
    if mime is None or mime == "image/gif":
        raise ImageError(f"format must be 'jpeg', 'png' or 'webp', got {fmt!r}")
    if mime not in allowed:
        raise ImageError(f"format {fmt!r} is not accepted here (accepted: {_fmt(allowed)})")
    return mime


def _fit(size: tuple[int, int], box: tuple[int, int], *, upscale: bool) -> tuple[int, int]:
    w, h = size
    try:
        bw, bh = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ImageError(f"max size must be (width, height), got {box!r}") from None
    if bw < 1 or bh < 1:
        raise ImageError(f"max size must be positive, got {box!r}")
    f = min(bw / w, bh / h)
    if not upscale:
        f = min(f, 1.0)
    return (min(bw, max(1, round(w * f))), min(bh, max(1, round(h * f))))


# --- URL fetching ---------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to put in messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0][:200]


def _allowed_networks(
    allow: bool | Collection[str],
) -> bool | list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(allow, bool):
        return allow
    items = [allow] if isinstance(allow, str) else list(allow)
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError as exc:
        raise ImageError(f"allow_private_urls: {exc}") from None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


@dataclass
class _Hop:
    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]
    shown: str


def _parse_url(url: str | httpx.URL, shown: str) -> httpx.URL:
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ImageError(f"invalid image URL: {shown}") from None
    if parsed.scheme not in ("http", "https"):
        raise ImageError(f"unsupported URL scheme {parsed.scheme!r} in {shown}: use http or https")
    if not parsed.host:
        raise ImageError(f"image URL has no host: {shown}")
    return parsed


def _plan_hops(
    url: httpx.URL,
    addresses: list[str],
    allow: bool | list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    shown: str,
) -> list[_Hop]:
    """Check every address ``url``'s host resolves to; one connection plan per address."""
    if allow is True:
        return [_Hop(url, {}, {}, shown)]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        permitted = _is_public(ip) or (
            allow is not False and any(ip.version == n.version and ip in n for n in allow)
        )
        if not permitted:
            raise ImageError(
                f"refusing to fetch {shown}: host {url.host!r} resolves to non-public address "
                f"{ip} (pass allow_private_urls=True, or a list of allowed networks, to permit)"
            )
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise ImageError(f"cannot resolve host {url.host!r} of {shown}")
    # Connect to the addresses just checked, not to a second DNS answer (DNS rebinding).
    headers = {"Host": url.netloc.decode("ascii")}
    extensions: dict[str, Any] = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return [_Hop(url.copy_with(host=str(ip)), headers, extensions, shown) for ip in ips]


def _literal_ip(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


async def _resolve_async(url: httpx.URL, shown: str) -> list[str]:
    literal = _literal_ip(url.host)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(url.host, url.port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageError(f"cannot resolve host {url.host!r} of {shown}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def _client_kwargs(timeout: float, allow: object) -> dict[str, Any]:
    # With address checks on, an environment proxy would resolve the host itself and defeat them.
    return {
        "timeout": timeout,
        "follow_redirects": False,
        "trust_env": allow is True,
        "headers": {"User-Agent": "vlgate", "Accept": "image/*", "Accept-Encoding": "identity"},
    }


def _check_fetch_args(timeout: float, max_bytes: int) -> None:
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ImageError(f"url_timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ImageError(f"max_download_bytes must be a positive int, got {max_bytes!r}")


def _next_location(response: httpx.Response, url: httpx.URL, shown: str) -> httpx.URL | None:
    """The redirect target, ``None`` for a usable 2xx, or an error for anything else."""
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = response.headers.get("location")
        if not location:
            raise ImageError(f"HTTP {status} redirect without Location fetching {shown}")
        return url.join(location)
    if status >= 400 or status < 200 or status >= 300:
        raise ImageError(f"HTTP {status} fetching {shown}")
    return None


def _check_length(response: httpx.Response, max_bytes: int, shown: str) -> None:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ImageError(
            f"{shown} is {int(declared)} bytes, more than max_download_bytes={max_bytes}"
        )


def _over_cap(shown: str, max_bytes: int) -> ImageError:
    return ImageError(f"download of {shown} exceeded max_download_bytes={max_bytes}; stopped")


def _fetch_sync(
    source: str, *, allow_private: bool | Collection[str], timeout: float, max_bytes: int
) -> bytes:
    """The sync facade of :func:`_fetch_async`, run on vlgate's background loop."""
    from .runtime.loop import run_sync

    return run_sync(
        _fetch_async(source, allow_private=allow_private, timeout=timeout, max_bytes=max_bytes)
    )


async def _fetch_async(
    source: str, *, allow_private: bool | Collection[str], timeout: float, max_bytes: int
) -> bytes:
    import httpx

    _check_fetch_args(timeout, max_bytes)
    allow = _allowed_networks(allow_private)
    shown = _safe_url(source)
    url = _parse_url(source, shown)

    async def run() -> bytes:
        nonlocal url, shown
        async with httpx.AsyncClient(**_client_kwargs(timeout, allow)) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                addresses = [] if allow is True else await _resolve_async(url, shown)
                hops = _plan_hops(url, addresses, allow, shown)
                for i, hop in enumerate(hops):
                    request = client.build_request(
                        "GET", hop.url, headers=hop.headers, extensions=hop.extensions
                    )
                    try:
                        response = await client.send(request, stream=True)
                        break
                    except httpx.ConnectError:
                        if i == len(hops) - 1:
                            raise
                try:
                    nxt = _next_location(response, url, shown)
                    if nxt is None:
                        _check_length(response, max_bytes, shown)
                        chunks, total = [], 0
                        async for chunk in response.aiter_raw(_CHUNK):
                            total += len(chunk)
                            if total > max_bytes:
                                raise _over_cap(shown, max_bytes)
                            chunks.append(chunk)
                        return _decoded(response, b"".join(chunks), max_bytes, shown)
                finally:
                    await response.aclose()
                shown = _safe_url(str(nxt))
                url = _parse_url(nxt, shown)
        raise ImageError(f"too many redirects (> {_MAX_REDIRECTS}) fetching {_safe_url(source)}")

    try:
        # One deadline for the whole fetch: a server dripping bytes cannot stretch it.
        return await asyncio.wait_for(run(), timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException):
        raise _timed_out(timeout, shown) from None
    except httpx.HTTPError as exc:
        raise _fetch_failed(exc, shown) from None


def _timed_out(timeout: float, shown: str) -> ImageError:
    return ImageError(f"timed out after {timeout:g} s fetching {shown}")


def _fetch_failed(exc: Exception, shown: str) -> ImageError:
    detail = str(exc)
    # httpx messages rarely hold a URL, but one with a query string could carry a token.
    detail = "" if "://" in detail or not detail else f": {detail[:200]}"
    return ImageError(f"cannot fetch {shown}: {type(exc).__name__}{detail}")


def _decoded(response: httpx.Response, raw: bytes, max_bytes: int, shown: str) -> bytes:
    """Undo a Content-Encoding (gzip, ...) with the same size cap, so a zip bomb cannot pass."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        data = raw
    else:
        import zlib

        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise ImageError(f"unsupported Content-Encoding {encoding!r} from {shown}")
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        try:
            d = zlib.decompressobj(wbits)
            data = d.decompress(raw, max_bytes + 1)
        except zlib.error:
            raise ImageError(f"corrupt {encoding} body from {shown}") from None
        if len(data) > max_bytes:
            raise _over_cap(shown, max_bytes)
    if not data:
        raise ImageError(f"{shown} returned an empty body")
    return data
