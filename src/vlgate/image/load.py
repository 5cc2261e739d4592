"""Decoding local sources: paths, bytes, data URIs, PIL images and numpy arrays.

Everything here turns a source into :class:`Decoded` pixels (upright RGB or RGBA) plus what is
known about the source bytes; :class:`~vlgate.image.Image` is built from that.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
import re
import stat
import struct
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from ..errors import ImageError
from ._lazy import LazyNumpy
from .encode import jpeg
from .mime import sniff_mime

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
else:
    np = LazyNumpy(globals())

MB = 1024 * 1024
MAX_PIXELS = 100_000_000
"""Default cap on decoded pixels (width x height); larger images are refused as likely bombs."""
MAX_FILE_BYTES = 256 * MB
"""Default cap on the size of a local image file, checked before reading."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class Decoded(NamedTuple):
    """Upright pixels (exactly one of ``pil`` / ``arr``) and what is known of their source; or,
    for a file whose header says it can be sent as it is, ``pending``: the opened, not yet
    decoded file and the name it goes by in errors (decoded on first use of the pixels)."""

    pil: PILImage.Image | None = None
    arr: NDArray[np.uint8] | None = None
    source: bytes | None = None
    source_mime: str | None = None
    source_mode: str | None = None
    exif_rotated: bool = False
    pending: tuple[PILImage.Image, str] | None = None


def is_url(text: str) -> bool:
    """Whether ``text`` looks like ``scheme://...`` (data URIs are not URLs here)."""
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


def check_in_memory(source: object, max_pixels: int) -> bool:
    """Check a numpy array or PIL image as :func:`load_local` would, without copying pixels;
    ``False`` for any other source (a file or bytes: load it, which reads only its header when
    it can be sent as it is)."""
    if isinstance(source, PILImage.Image):
        check_pixels(source.size, "PIL image", max_pixels)
        return True
    if isinstance(source, np.ndarray):
        if source.dtype == np.uint8:
            normalise_array(source, "array", max_pixels)  # shape and size only: no copy
            return True
        return False  # a conversion is a copy: leave it to the load
    return False


def load_local(source: object, max_pixels: int, max_file_bytes: int = MAX_FILE_BYTES) -> Decoded:
    """Decode any source except a URL or an ``Image``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(source), "image bytes", max_pixels)
    if isinstance(source, str):
        if source[:5].lower() == "data:":
            return from_bytes(_decode_data_uri(source), "data URI", max_pixels)
        return _from_path(source, max_pixels, max_file_bytes)
    if isinstance(source, os.PathLike):
        return _from_path(os.fspath(source), max_pixels, max_file_bytes)
    if isinstance(source, PILImage.Image):
        return _from_pil(source, "PIL image", max_pixels)
    if isinstance(source, np.ndarray):
        return from_array(normalise_array(source, "array", max_pixels), copied=False)
    from .frame import frame_format, from_frame  # frame.py builds on this module

    fmt = frame_format(source)
    if fmt is not None:
        return from_frame(source, fmt, max_pixels)
    raise ImageError(
        f"cannot load an image from {type(source).__name__}; pass a path, bytes, a data URI, "
        "an http(s) URL, a PIL image, a numpy array, a frame with numpy .data and .format "
        "(e.g. a dimos Image) or a vlgate.Image"
    )


def _from_path(path: str | bytes, max_pixels: int, max_file_bytes: int) -> Decoded:
    shown = os.fsdecode(path)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    if not path:
        raise ImageError("image path is empty")
    if "\0" in shown:
        raise ImageError(f"image path contains a NUL character: {shown!r}")
    try:
        data = _read_regular_file(path, shown, max_file_bytes)
    except IsADirectoryError:
        raise ImageError(f"image path is a directory, not a file: {shown}") from None
    except OSError as exc:
        hint = ""
        if isinstance(path, str) and len(path) > 100 and _B64ISH.fullmatch(path[:100]):
            hint = " (this looks like raw base64: pass 'data:image/jpeg;base64,...' or bytes)"
        if isinstance(exc, FileNotFoundError):
            raise ImageError(f"image file not found: {shown}{hint}") from None
        raise ImageError(f"cannot read image file {shown}: {exc.strerror or exc}{hint}") from None
    return from_bytes(data, shown, max_pixels)


def _read_regular_file(path: str | bytes, shown: str, max_file_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_file_bytes``; anything else is refused.

    Opened non-blocking so a FIFO cannot hang the open, then checked on the open descriptor
    (no swap between check and read), and read with a bound: ``/proc`` files report size 0
    and a file may grow while it is read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(
                f"image path is not a regular file ({_file_kind(st.st_mode)}): {shown}"
            )
        if st.st_size > max_file_bytes:
            raise _too_big(shown, st.st_size, max_file_bytes)
        chunks, total = [], 0
        while chunk := fh.read(min(_READ_CHUNK, max_file_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_file_bytes:
                raise _too_big(shown, None, max_file_bytes)
    return b"".join(chunks)


_READ_CHUNK = 8 * 1024 * 1024


def _too_big(shown: str, size: int | None, max_file_bytes: int) -> ImageError:
    what = f"{size} bytes" if size is not None else "still growing"
    return ImageError(
        f"image file {shown} is {what}, more than max_file_bytes={max_file_bytes} "
        "(raise max_file_bytes if it is genuine)"
    )


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO/pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


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


def from_bytes(data: bytes, where: str, max_pixels: int) -> Decoded:
    """An encoded file's bytes; ``where`` names the source in errors.

    A JPEG, PNG or WebP that is complete (its end marker is there), upright (no EXIF rotation)
    and in a mode providers take is checked from its header only: its pixels are decoded when
    first needed, which is never when it is sent as it is. Anything else is decoded now, so
    broken data fails here.
    """
    if not data:
        raise ImageError(f"{where}: empty (0 bytes)")
    sniffed = sniff_mime(data)
    with _decode_errors(where, data, sniffed), warnings.catch_warnings():
        # vlgate applies its own max_pixels below; Pillow's global warning would duplicate it.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        im = PILImage.open(io.BytesIO(data))
        check_pixels(im.size, where, max_pixels)
        if _header_is_enough(im, data, sniffed):
            return Decoded(
                source=data,
                source_mime=sniffed,
                source_mode=im.mode,
                pending=(im, where),
            )
        im.load()  # decode everything now: truncated or corrupt data fails here
    if sniffed is None:
        # Pillow knows formats without a magic vlgate recognises (e.g. TGA): re-encode them.
        sniffed = f"image/x-{(im.format or 'unknown').lower()}"
    return _from_pil(im, where, max_pixels, source=data, source_mime=sniffed)


def decode_pending(im: PILImage.Image, where: str, data: bytes, mime: str) -> Decoded:
    """Decode a file :func:`from_bytes` only checked from its header."""
    with _decode_errors(where, data, mime), warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        im.load()
    return _from_pil(im, where, 0, source=data, source_mime=mime)


def decode_draft(data: bytes, where: str, size: tuple[int, int]) -> PILImage.Image:
    """A JPEG decoded at the smallest DCT scale (1/2, 1/4, 1/8) still at least ``size``: the
    cheap first step of a large downscale. RGB, upright only if the file needs no rotation."""
    with _decode_errors(where, data, "image/jpeg"), warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        im = PILImage.open(io.BytesIO(data))
        im.draft("RGB", size)
        im.load()
    return _to_rgb_or_rgba(im, where)


_LAZY_MIME = frozenset({"image/jpeg", "image/png", "image/webp"})
_LAZY_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})


def _header_is_enough(im: PILImage.Image, data: bytes, mime: str | None) -> bool:
    """Whether ``data`` can be kept undecoded: complete, upright, a mode providers take."""
    if mime not in _LAZY_MIME or im.mode not in _LAZY_MODES:
        return False
    if mime == "image/jpeg":
        # EOI closes every complete JPEG (some cameras pad after it); APP1 EXIF is parsed.
        complete = data.rstrip(b"\x00").endswith(b"\xff\xd9")
        rotated = im.getexif().get(0x0112, 1) != 1
    elif mime == "image/png":
        # IEND closes every complete PNG; an eXIf chunk may rotate it (read it the slow way).
        complete = data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
        rotated = b"eXIf" in data
    else:
        complete = int.from_bytes(data[4:8], "little") + 8 == len(data)
        rotated = im.getexif().get(0x0112, 1) != 1
    return complete and not rotated


class _decode_errors:
    """Map Pillow's decoding failures to :class:`ImageError` naming ``where``."""

    def __init__(self, where: str, data: bytes, sniffed: str | None) -> None:
        self.where, self.data, self.sniffed = where, data, sniffed

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, exc: Any, tb: Any) -> None:
        where, sniffed = self.where, self.sniffed
        if exc is None or isinstance(exc, ImageError):
            return
        if isinstance(exc, PILImage.DecompressionBombError):
            raise ImageError(f"{where}: refused as a decompression bomb ({exc})") from None
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError(f"{where}: {_unknown_format(self.data, sniffed)}") from None
        if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)):
            kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
            raise ImageError(f"{where}: {kind} {sniffed or 'image'} data ({exc})") from None


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


def check_pixels(size: tuple[int, int], where: str, max_pixels: int) -> None:
    """Refuse empty images and ones over ``max_pixels`` (likely decompression bombs)."""
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
) -> Decoded:
    if max_pixels:
        check_pixels(im.size, where, max_pixels)
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
    return Decoded(
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


def normalise_array(array: NDArray[Any], what: str, max_pixels: int) -> NDArray[np.uint8]:
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
    check_pixels((a.shape[1], a.shape[0]), what, max_pixels)
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


def from_array(arr: NDArray[np.uint8], *, copied: bool) -> Decoded:
    """Pixels from a normalised array; ``copied`` says the array is already vlgate's own."""
    if jpeg() is None and arr.ndim == 3 and arr.shape[2] == 3:
        # Without simplejpeg, Pillow encodes; it copies RGB into its own storage anyway, so a
        # numpy copy first would only cost time.
        return Decoded(pil=PILImage.fromarray(arr))
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4 and int(arr[..., 3].min()) == 255:
        arr = np.ascontiguousarray(arr[..., :3])  # fully opaque alpha carries nothing
    elif not copied or not arr.flags.c_contiguous or not arr.flags.owndata:
        # The caller may reuse their buffer (camera ring buffers do): keep our own copy.
        arr = np.array(arr, dtype=np.uint8, order="C", copy=True)
    arr.flags.writeable = False
    return Decoded(arr=arr)
