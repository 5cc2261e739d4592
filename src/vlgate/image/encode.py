"""Encoding for sending: :class:`EncodedImage`, target sizes, formats and fitting a byte cap.

The functions here work on an :class:`~vlgate.image.Image`'s pixels; ``Image.encode`` validates
its arguments, caches results and calls :func:`encode_uncached`.
"""

from __future__ import annotations

import base64
import importlib
import io
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image as PILImage

from ..errors import ImageError
from ..registry import ImageLimits
from . import jpegstrips
from ._lazy import LazyNumpy
from .mime import FORMAT_MIME, SENDABLE_MIME, fmt_list, sniff_mime, sniff_sendable

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from .core import Image
else:
    np = LazyNumpy(globals())

__all__ = ["EncodedImage"]

# Modes a decoded file may be in and still be sent byte-for-byte (others, e.g. CMYK or 16-bit,
# are transcoded because not every provider decodes them).
PASSTHROUGH_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
_JPEG_QUALITY_STEPS = (85, 75, 65, 55, 45, 35)
_MAX_SHRINK_STEPS = 12
NO_LIMITS = ImageLimits()

_UNSET: Any = object()
_simplejpeg: Any = _UNSET  # resolved on first JPEG encode; None when not installed


def jpeg() -> Any:
    """simplejpeg (libjpeg-turbo straight from a numpy buffer), or None to use Pillow."""
    global _simplejpeg
    if _simplejpeg is _UNSET:
        try:
            _simplejpeg = importlib.import_module("simplejpeg")
        except ImportError:  # pragma: no cover - optional speed-up
            _simplejpeg = None
    return _simplejpeg


_cv2: Any = _UNSET  # resolved on first array downscale; None when the `fast` extra is absent


def cv2_module() -> Any:
    """OpenCV (the ``fast`` extra), whose SIMD bilinear resize of a 1080p frame costs a fraction
    of Pillow's antialiased resample; None to use Pillow."""
    global _cv2
    if _cv2 is _UNSET:
        try:
            _cv2 = importlib.import_module("cv2")
        except ImportError:
            _cv2 = None
    return _cv2


def resize_array(arr: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8] | None:
    """``arr`` downscaled to ``size`` with OpenCV: an exact integer box reduction first (2x, 3x,
    ... when the sides divide), then bilinear for the remaining factor under 2, so it stays
    antialiased. None without OpenCV, or for anything but a downscale."""
    cv = cv2_module()
    h, w = arr.shape[:2]
    if cv is None or size[0] >= w or size[1] >= h:
        return None
    k = min(w // size[0], h // size[1])
    if k >= 2 and w % k == 0 and h % k == 0:
        arr = cv.resize(arr, (w // k, h // k), interpolation=cv.INTER_AREA)
    out: NDArray[np.uint8] = cv.resize(arr, size, interpolation=cv.INTER_LINEAR)
    return out


@dataclass(frozen=True)
class EncodedImage:
    """The bytes of one image exactly as sent, with the geometry needed to map answers back.

    ``mime`` must be the type sniffed from ``data`` and one vlgate sends (JPEG, PNG, GIF, WebP);
    the constructor raises :class:`~vlgate.errors.ImageError` otherwise.

    Example:
        >>> import numpy as np
        >>> from vlgate import Image
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
            raise ImageError(f"{sniffed!r} is not a type vlgate sends ({fmt_list(SENDABLE_MIME)})")
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
            >>> import numpy as np
            >>> from vlgate import Image
            >>> enc = Image.load(np.zeros((100, 200, 3), np.uint8)).encode(size=(100, 50))
            >>> enc.to_original(50, 25)
            (100.0, 50.0)
        """
        sx, sy = self.scale
        return (x / sx, y / sy)


class _Attempt(NamedTuple):
    data: bytes | None
    size: tuple[int, int]
    nbytes: int
    mime: str


def target_size(
    image_size: tuple[int, int],
    size: tuple[int, int] | None,
    limits: ImageLimits,
    n_images: int,
) -> tuple[int, int]:
    """The (w, h) to encode at: ``size`` (default the image's), capped and floored by ``limits``."""
    if size is None:
        w, h = image_size
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
        w, h = fit((w, h), (cap, cap), upscale=False)
    low = limits.min_side
    if low is not None and min(w, h) < low:
        f = low / min(w, h)
        w, h = (low, max(low, round(h * f))) if w <= h else (max(low, round(w * f)), low)
        if cap is not None and max(w, h) > cap:
            iw, ih = image_size
            raise ImageError(
                f"image {iw}x{ih} cannot meet both min_side={low} and "
                f"max side {cap}: its aspect ratio is too extreme; crop it first"
            )
    return (w, h)


def encode_uncached(
    img: Image, target: tuple[int, int], limits: ImageLimits, quality: int, fmt: str | None
) -> EncodedImage:
    """Encode ``img`` at ``target``: the source bytes as they are when they fit, else re-encoded."""
    allowed = limits.formats & SENDABLE_MIME
    src = img._source
    if (
        src is not None
        and img._source_mime in allowed
        and fmt in (None, img._source_mime)
        and not img._exif_rotated
        and img._source_mode in PASSTHROUGH_MODES
        and target == img.size
        and (limits.max_bytes is None or len(src) <= limits.max_bytes)
    ):
        return EncodedImage(src, sniff_sendable(src), img.size, img.size)

    if fmt is not None:
        order = [fmt]
    elif img.has_alpha:
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
        got = _encode_fitting(
            img, mime, target, quality, max_bytes, low, shrink=i == len(order) - 1
        )
        if got.data is not None:
            return EncodedImage(got.data, mime, got.size, img.size)
        if best is None or got.nbytes < best.nbytes:
            best = got
    assert best is not None
    raise ImageError(
        f"cannot fit image {img.width}x{img.height} into max_bytes={max_bytes}: the "
        f"smallest attempt ({best.mime} {best.size[0]}x{best.size[1]}) was {best.nbytes} "
        f"bytes (min_side={low})"
    )


def _encode_fitting(
    img: Image,
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
            data = _encode_pixels(img, mime, size, q, compact=max_bytes is not None)
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
    img: Image, mime: str, size: tuple[int, int], quality: int, compact: bool
) -> bytes:
    if mime == "image/jpeg":
        arr = img._arr if size == img.size else None
        if jpeg() is not None:
            if arr is None and img._arr is not None:
                arr = resize_array(img._arr, size)  # a frame: OpenCV when installed
            if arr is None:
                # Resized (or a file's pixels): simplejpeg still beats Pillow's encoder.
                arr = np.asarray(flatten_pil(img._resized(size)))
            if arr.shape[2] == 4:
                arr = flatten_array(arr)
            return jpegstrips.encode_rgb(jpeg(), arr, quality)
        im = flatten_pil(img._resized(size))
        return save(im, "JPEG", quality=quality, optimize=False, subsampling=2)
    im = img._resized(size)
    if mime == "image/png":
        # Level 1 is several times faster than the default 6; go tight only under a byte cap.
        return save(im, "PNG", compress_level=9 if compact else 1)
    if mime == "image/webp":
        return save(im, "WEBP", quality=quality, method=4 if compact else 0)
    if mime == "image/gif":
        return save(im.convert("RGBA" if im.mode == "RGBA" else "RGB").quantize(), "GIF")
    raise ImageError(f"vlgate cannot encode {mime!r}")  # pragma: no cover - guarded above


def flatten_array(arr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """RGBA pixels composited onto white, as RGB."""
    rgb = arr[..., :3].astype(np.uint16)
    alpha = arr[..., 3:4].astype(np.uint16)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(out.astype(np.uint8))


def flatten_pil(im: PILImage.Image) -> PILImage.Image:
    """An RGBA image composited onto white (other modes unchanged)."""
    if im.mode != "RGBA":
        return im
    white = PILImage.new("RGB", im.size, (255, 255, 255))
    white.paste(im, mask=im.getchannel("A"))
    return white


def save(im: PILImage.Image, fmt: str, **params: Any) -> bytes:
    """``im`` encoded by Pillow as ``fmt``."""
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def check_format(fmt: str | None, limits: ImageLimits) -> str | None:
    """The MIME type a ``format=`` argument names, checked against ``limits``."""
    allowed = limits.formats & SENDABLE_MIME
    if not allowed:
        raise ImageError(
            f"limits accept none of the types vlgate sends ({fmt_list(limits.formats)}); "
            f"vlgate sends {fmt_list(SENDABLE_MIME)}"
        )
    if fmt is None:
        return None
    key = fmt.lower().removeprefix("image/")
    mime = FORMAT_MIME.get(key)
    if mime is None or mime == "image/gif":
        raise ImageError(f"format must be 'jpeg', 'png' or 'webp', got {fmt!r}")
    if mime not in allowed:
        raise ImageError(f"format {fmt!r} is not accepted here (accepted: {fmt_list(allowed)})")
    return mime


def fit(size: tuple[int, int], box: tuple[int, int], *, upscale: bool) -> tuple[int, int]:
    """The largest aspect-preserving size of ``size`` within ``box``."""
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
