"""One frame's JPEG encoded on several cores: horizontal strips joined by restart markers.

A baseline JPEG may carry restart markers (``RSTn``) every ``Ri`` MCUs; at each one the
decoder resets its DC predictors and re-aligns to a byte. So strips whose height is a multiple
of the MCU height (16 rows at 4:2:0), encoded on their own with the same quality, are exactly
the intervals of one restart-marked JPEG: the joined file decodes to the very pixels a single
encode gives (the coefficients are the same; only the DC differences restart), at a few bytes
more. libjpeg-turbo releases the GIL, so the strips encode in parallel.

It only pays when cores are idle: a frame asked about alone (latency) splits, while a batch
that already keeps every core busy encodes each frame whole (``_busy`` counts encodes in
flight). Anything unexpected in a strip's markers falls back to the whole-frame encode.
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

_MCU = 16  # 4:2:0 MCU height and width
_MIN_PIXELS = 400_000  # 2 strips: 480x360 1.25x slower (hand-off), 640x480 0.79x, 800x600 0.70x
_MIN_STRIP_ROWS = 128
_MAX_STRIPS = 4

_lock = threading.Lock()
_busy = 0  # JPEG encodes in flight in this process
_pool: ThreadPoolExecutor | None = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _strip_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=min(_MAX_STRIPS, _cores()) - 1, thread_name_prefix="vlgate-jpeg"
            )
        return _pool


def _forget_after_fork() -> None:
    # The child of a fork has no strip threads (the executor would queue work for no one) and
    # none of the parent's encodes in flight.
    global _pool, _busy, _lock
    _pool, _busy, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def encode_rgb(sj: Any, arr: NDArray[np.uint8], quality: int) -> bytes:
    """``arr`` (HxWx3 RGB, C-contiguous) as a 4:2:0 JPEG from simplejpeg module ``sj``, in
    strips on idle cores when the frame is large enough to gain from it.

    Example:
        >>> import numpy as np, simplejpeg
        >>> frame = np.zeros((720, 1280, 3), np.uint8)
        >>> data = encode_rgb(simplejpeg, frame, 90)
        >>> simplejpeg.decode_jpeg_header(data)[:2]
        (720, 1280)
    """
    global _busy
    with _lock:
        _busy += 1
        alone = _busy == 1
    try:
        n = _strip_count(arr.shape[0], arr.shape[1]) if alone else 1
        if n > 1:
            joined = _encode_strips(sj, arr, quality, n)
            if joined is not None:
                return joined
        return _whole(sj, arr, quality)
    finally:
        with _lock:
            _busy -= 1


def _whole(sj: Any, arr: NDArray[np.uint8], quality: int) -> bytes:
    data: bytes = sj.encode_jpeg(arr, quality=quality, colorspace="RGB", colorsubsampling="420")
    return data


def _strip_count(h: int, w: int) -> int:
    cores = _cores()
    if cores < 2 or h * w < _MIN_PIXELS:
        return 1
    return max(1, min(cores, _MAX_STRIPS, h // _MIN_STRIP_ROWS))


def _encode_strips(sj: Any, arr: NDArray[np.uint8], quality: int, n: int) -> bytes | None:
    h, w = arr.shape[:2]
    mcu_rows = -(-h // _MCU)
    rows = -(-mcu_rows // n) * _MCU  # every strip but the last: the same whole MCU rows
    interval = -(-w // _MCU) * (rows // _MCU)  # MCUs per strip = the restart interval
    if interval > 0xFFFF:
        return None
    cuts = list(range(0, h, rows))
    pool = _strip_pool()
    futures: list[Future[bytes]] = [
        pool.submit(_whole, sj, arr[top : top + rows], quality) for top in cuts[1:]
    ]
    parts = [_whole(sj, arr[:rows], quality)] + [f.result() for f in futures]
    return join_strips(parts, h, interval)


def join_strips(parts: list[bytes], height: int, interval: int) -> bytes | None:
    """The JPEGs ``parts`` (strips of one image, top to bottom, each but the last ``interval``
    MCUs) as one JPEG of ``height`` rows with a restart marker between strips; ``None`` when
    their headers differ in anything but the height or are not plain baseline JPEGs."""
    heads = []
    for data in parts:
        parsed = _split(data)
        if parsed is None:
            return None
        heads.append(parsed)
    first, _ = heads[0]
    key = _tables(parts[0], first)
    for data, (head, _) in zip(parts[1:], heads[1:], strict=True):
        if _tables(data, head) != key:
            return None
    out = bytearray(b"\xff\xd8")
    for marker, start, end in first:
        seg = parts[0][start:end]
        if marker == 0xC0:  # SOF0: precision (1 byte) then height (2) at offset 5
            seg = seg[:5] + struct.pack(">H", height) + seg[7:]
        elif marker == 0xDA:  # the restart interval must precede the scan
            out += b"\xff\xdd\x00\x04" + struct.pack(">H", interval)
        out += seg
    for i, (data, (_, scan)) in enumerate(zip(parts, heads, strict=True)):
        if i:
            out += bytes((0xFF, 0xD0 + (i - 1) % 8))
        out += data[scan:-2]
    out += b"\xff\xd9"
    return bytes(out)


_Segments = list[tuple[int, int, int]]


def _split(data: bytes) -> tuple[_Segments, int] | None:
    """The header segments (marker, start, end) up to and including SOS, and where the
    entropy-coded data starts; ``None`` for anything but a baseline JPEG without restarts."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None
    segs: _Segments = []
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        (length,) = struct.unpack_from(">H", data, i + 2)
        end = i + 2 + length
        if marker in (0xDD,) or (0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)):
            return None  # restarts already, or not baseline
        segs.append((marker, i, end))
        if marker == 0xDA:
            return (segs, end) if any(m == 0xC0 for m, _, _ in segs) else None
        i = end
    return None


def _tables(data: bytes, segs: _Segments) -> list[bytes]:
    """Everything in the header but SOF0's height: must match across strips."""
    out = []
    for marker, start, end in segs:
        seg = data[start:end]
        out.append(seg[:5] + seg[7:] if marker == 0xC0 else seg)
    return out
