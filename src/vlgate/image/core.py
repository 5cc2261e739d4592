"""The :class:`Image` class: one decoded image, its constructors, pixels and encoding cache."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Union

from PIL import Image as PILImage

from ..errors import ImageError
from ..registry import ImageLimits
from ._lazy import LazyNumpy
from .encode import (
    NO_LIMITS,
    EncodedImage,
    check_format,
    encode_uncached,
    fit,
    jpeg,
    target_size,
)
from .fetch import fetch_async, fetch_sync, safe_url
from .frame import Frame
from .load import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    MB,
    Decoded,
    decode_draft,
    decode_pending,
    from_array,
    from_bytes,
    is_url,
    load_local,
)
from .load import normalise_array as _normalise_array

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
else:
    np = LazyNumpy(globals())

__all__ = ["Image", "ImageInput"]

ImageInput = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    PILImage.Image,
    "NDArray[Any]",
    Frame,
    "Image",
]
"""Everything :meth:`Image.load` accepts."""

_EncodeKey = tuple[Any, ...]
_CACHE_ENTRIES = 16


def _check_cap(max_file_bytes: int) -> None:
    if (
        isinstance(max_file_bytes, bool)
        or not isinstance(max_file_bytes, int)
        or max_file_bytes < 1
    ):
        raise ImageError(f"max_file_bytes must be a positive int, got {max_file_bytes!r}")


class Image:
    """One image, decoded once, upright, at its original resolution.

    Build it with :meth:`load` (anything), :meth:`aload` (async URL fetch) or :meth:`from_bgr`
    (OpenCV frames). It is immutable; encodings are cached on the instance.

    Example:
        >>> import numpy as np
        >>> img = Image.load(np.full((10, 20, 3), 255, np.uint8))
        >>> img.size, img.has_alpha
        ((20, 10), False)
    """

    __slots__ = (
        "_arr",
        "_cache",
        "_exif_rotated",
        "_lock",
        "_pending",
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
        pending: tuple[PILImage.Image, str] | None = None,
    ) -> None:
        # Private: use Image.load(). Exactly one of pil / arr holds the upright RGB(A) pixels,
        # or neither yet: ``pending`` is a complete, upright file checked from its header only.
        if pil is None and arr is None and pending is None:
            raise ImageError("Image needs pixels; use Image.load()")
        self._pil = pil
        self._arr = arr
        self._pending = pending
        if arr is not None:
            self._size: tuple[int, int] = (int(arr.shape[1]), int(arr.shape[0]))
        elif pil is not None:
            self._size = pil.size
        else:
            assert pending is not None
            self._size = pending[0].size
        self._source = source
        self._source_mime = source_mime
        self._source_mode = source_mode
        self._exif_rotated = exif_rotated
        self._sha256: str | None = None
        self._cache: dict[_EncodeKey, EncodedImage] = {}
        self._lock = threading.Lock()

    @classmethod
    def _from_decoded(cls, decoded: Decoded) -> Image:
        return cls(**decoded._asdict())

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
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> Image:
        """Load an image from a path, bytes, data URI, http(s) URL, PIL image or numpy array.

        URLs are fetched by vlgate (timeout, size cap, redirects re-checked); hosts resolving to
        private, loopback, link-local or reserved addresses are refused unless
        ``allow_private_urls`` is ``True`` or lists the allowed addresses/networks
        (e.g. ``["192.168.1.0/24"]``). Numpy arrays are HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)
        of uint8, uint16, bool or float in [0, 1]. A frame object with a numpy ``.data`` and a
        ``.format`` (a dimos ``Image``: BGR, RGB, RGBA, BGRA, GRAY or GRAY16) is read in its own
        channel order; depth frames are refused. A path must name a regular file (not a FIFO,
        device or directory) of at most ``max_file_bytes``, checked before reading. Raises
        :class:`~vlgate.errors.ImageError`.

        Example:
            >>> import numpy as np
            >>> Image.load(np.zeros((4, 6), np.uint8)).size
            (6, 4)
        """
        if isinstance(source, Image):
            return source
        if isinstance(source, str) and is_url(source):
            data = fetch_sync(
                source,
                allow_private=allow_private_urls,
                timeout=url_timeout,
                max_bytes=max_download_bytes,
            )
            return cls._from_decoded(from_bytes(data, safe_url(source), max_pixels))
        _check_cap(max_file_bytes)
        return cls._from_decoded(load_local(source, max_pixels, max_file_bytes))

    @classmethod
    async def aload(
        cls,
        source: ImageInput,
        *,
        allow_private_urls: bool | Collection[str] = False,
        url_timeout: float = 10.0,
        max_download_bytes: int = 50 * MB,
        max_pixels: int = MAX_PIXELS,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> Image:
        """Like :meth:`load`, but fetches URLs with ``httpx.AsyncClient`` and decodes off the loop.

        Example:
            >>> import asyncio
            >>> import numpy as np
            >>> asyncio.run(Image.aload(np.zeros((4, 6), np.uint8))).size
            (6, 4)
        """
        if isinstance(source, Image):
            return source
        if isinstance(source, str) and is_url(source):
            data = await fetch_async(
                source,
                allow_private=allow_private_urls,
                timeout=url_timeout,
                max_bytes=max_download_bytes,
            )
            decoded = await asyncio.to_thread(from_bytes, data, safe_url(source), max_pixels)
        else:
            _check_cap(max_file_bytes)
            decoded = await asyncio.to_thread(load_local, source, max_pixels, max_file_bytes)
        return cls._from_decoded(decoded)

    @classmethod
    def from_bgr(cls, array: NDArray[Any], *, max_pixels: int = MAX_PIXELS) -> Image:
        """An image from an OpenCV-style BGR (HxWx3) or BGRA (HxWx4) array; grey passes through.

        Example:
            >>> import numpy as np
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
        return cls._from_decoded(from_array(arr, copied=True))

    @classmethod
    def _borrow(cls, source: object) -> Image | None:
        """``source`` read in place through a read-only view (no copy) when it is already an
        HxWx3 uint8 C-contiguous numpy array and simplejpeg encodes it; ``None`` otherwise.

        Private: :meth:`Image.load` copies arrays because a caller may reuse the buffer. Only a
        caller that encodes at once, before anything else can run, and never reads the pixels
        again, may skip that copy (``VlModel`` on a one-route model, a small frame).
        """
        numpy = sys.modules.get("numpy")
        if numpy is None or not isinstance(source, numpy.ndarray) or jpeg() is None:
            return None
        if source.dtype != numpy.uint8 or source.ndim != 3 or source.shape[2] != 3:
            return None
        if not source.flags.c_contiguous:
            return None
        view = _normalise_array(source, "array", MAX_PIXELS).view()  # shape and size checks
        view.flags.writeable = False  # the view's flag only: the caller's array stays writable
        return cls(arr=view)

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
        pending = self._pending
        if pending is not None:
            im = pending[0]
            if im.mode in ("1", "L", "RGB") and "transparency" not in im.info:
                return False
            self._materialize()
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
        self._materialize()
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
            >>> import numpy as np
            >>> Image.load(np.zeros((4, 6, 4), np.uint8)).to_pil().mode
            'RGBA'
        """
        self._materialize()
        if self._pil is not None:
            return self._pil.copy()
        return PILImage.fromarray(self._pixels_array())

    def to_numpy(self) -> NDArray[np.uint8]:
        """Upright HxWx3 (RGB) or HxWx4 (RGBA) uint8 pixels (read-only; copy to modify).

        Example:
            >>> import numpy as np
            >>> Image.load(np.zeros((4, 6), np.uint8)).to_numpy().shape
            (4, 6, 3)
        """
        return self._pixels_array()

    def fit_within(self, max_size: tuple[int, int]) -> tuple[int, int]:
        """The largest aspect-preserving size within ``max_size``; never larger than the image.

        Example:
            >>> import numpy as np
            >>> Image.load(np.zeros((1080, 1920, 3), np.uint8)).fit_within((640, 640))
            (640, 360)
        """
        return fit(self._size, max_size, upscale=False)

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
            >>> import numpy as np
            >>> img = Image.load(np.zeros((3000, 4000, 3), np.uint8))
            >>> img.encode(limits=ImageLimits(max_side=2000)).size
            (2000, 1500)
        """
        limits = limits if limits is not None else NO_LIMITS
        target = target_size(self._size, size, limits, n_images)
        fmt = check_format(format, limits)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ImageError(f"quality must be an int from 1 to 100, got {quality!r}")
        key = (target, limits, quality, fmt)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = encode_uncached(self, target, limits, quality, fmt)
        with self._lock:
            # Keep the first result so every caller shares one object (and one base64 string).
            if key not in self._cache and len(self._cache) >= _CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))  # oldest first
            result = self._cache.setdefault(key, result)
        return result

    # -- pixels --------------------------------------------------------------------------------

    def _materialize(self) -> None:
        """Decode a file that was only checked from its header (errors: ImageError)."""
        if self._pending is None:
            return
        with self._lock:
            if self._pending is None:
                return
            im, where = self._pending
            assert self._source is not None and self._source_mime is not None
            decoded = decode_pending(im, where, self._source, self._source_mime)
            self._pil = decoded.pil
            self._pending = None

    def _pil_image(self) -> PILImage.Image:
        self._materialize()
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
        pending = self._pending
        if (
            pending is not None
            and self._source is not None
            and self._source_mime == "image/jpeg"
            and 2 * size[0] <= self._size[0]
            and 2 * size[1] <= self._size[1]
        ):
            # A large downscale of a JPEG not yet decoded: decode at a reduced DCT scale (a
            # fraction of the work and of the memory) and resize the rest of the way.
            im = decode_draft(self._source, pending[1], size)
        else:
            im = self._pil_image()
        if im.size == size:
            return im
        if size[0] < im.width and size[1] < im.height:
            # Downscale: antialiased bilinear after an exact integer box reduction (reducing_gap)
            # costs ~0.6x bicubic; at these factors the two are indistinguishable to a model.
            return im.resize(size, PILImage.Resampling.BILINEAR, reducing_gap=2.0)
        return im.resize(size, PILImage.Resampling.BICUBIC)
