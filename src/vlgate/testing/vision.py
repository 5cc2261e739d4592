"""How the emulator "sees": find the scene shapes in received image bytes.

It decodes the image the way a real service would (EXIF orientation applied), classifies pixels
against the scene palette (:data:`vlgate.testing.scenes.PALETTE`), labels connected components
with a run-length union-find (numpy only), refines each box on the decoded image, and guesses
the shape from how much of its box it fills (square/rectangle ~1.0, circle ~0.79, triangle
~0.5). JPEGs are decoded at a reduced DCT scale, so a 4032x3024 photo takes a few tens of ms.
Results are cached by content hash.

Example::

    >>> from vlgate.testing.scenes import make_scene
    >>> scene = make_scene(2, size=(640, 480))
    >>> sight = analyze(scene.to_jpeg_bytes())
    >>> sorted(o.label for o in sight.objects) == sorted(s.label for s in scene.shapes)
    True
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .scenes import _UPRIGHT, PALETTE

__all__ = ["Seen", "Sight", "analyze"]

_NAMES = list(PALETTE)
_COLOURS = np.array([PALETTE[n] for n in _NAMES], dtype=np.int32)
_MAX_DIST2 = 85 * 85  # squared RGB distance still counted as a palette colour (JPEG drift)
_MIN_CHROMA = 70  # max-min channel spread; the grey background is ~0
_COARSE_LONG = 320  # long side of the grid used to find components
_DECODE_LONG = 1100  # JPEGs are decoded at the smallest DCT scale at least this large


@dataclass(frozen=True)
class Seen:
    """One object found: label ``"<colour> <shape>"``, box ``(x1, y1, x2, y2)`` in upright pixels
    of the received image (x2/y2 exclusive edges), and its centre."""

    label: str
    colour: str
    shape: str
    box: tuple[float, float, float, float]
    center: tuple[float, float]


@dataclass(frozen=True)
class Sight:
    """What one image shows: upright ``size`` (w, h), the objects, and the mean colour."""

    size: tuple[int, int]
    objects: tuple[Seen, ...]
    mean_rgb: tuple[int, int, int]


_cache: OrderedDict[str, Sight | None] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_MAX = 128


def analyze(data: bytes) -> Sight | None:
    """Look at an image; ``None`` if it cannot be decoded. Cached by SHA-1 of the bytes.

    Example:
        >>> analyze(b"garbage") is None
        True
    """
    key = hashlib.sha1(data).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        sight: Sight | None = _analyze(data)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        sight = None
    with _cache_lock:
        _cache[key] = sight
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return sight


def _decode(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """Upright RGB array (maybe reduced) and the upright full-resolution size."""
    with Image.open(io.BytesIO(data)) as im:
        full_w, full_h = im.size
        tag = im.getexif().get(0x0112)
        orientation = tag if isinstance(tag, int) and tag in _UPRIGHT else 1
        if im.format == "JPEG" and max(full_w, full_h) > _DECODE_LONG:
            k = max(full_w, full_h) / _DECODE_LONG
            # At least 1 px a side: Pillow divides by the requested size (a 2048x1 strip).
            im.draft("RGB", (max(1, int(full_w / k)), max(1, int(full_h / k))))
        rgb = im.convert("RGB")
    op = _UPRIGHT[orientation]
    if op is not None:
        rgb = rgb.transpose(op)
    if orientation in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    return np.asarray(rgb), (full_w, full_h)


def _build_lut() -> np.ndarray:
    # Palette index for every colour quantised to 5 bits per channel (32768 entries), so that
    # classifying a pixel is one table lookup instead of seven distance computations.
    q = (np.arange(32, dtype=np.int32) << 3) + 4
    r, g, b = np.meshgrid(q, q, q, indexing="ij")
    p = np.stack([r, g, b], axis=-1).reshape(-1, 3)
    chroma = p.max(axis=1) - p.min(axis=1)
    d2 = ((p[:, None, :] - _COLOURS[None, :, :]) ** 2).sum(axis=-1)
    best = d2.argmin(axis=1)
    ok = (d2[np.arange(len(best)), best] <= _MAX_DIST2) & (chroma >= _MIN_CHROMA)
    return np.where(ok, best, -1).astype(np.int8)


_LUT = _build_lut()


def _classify(pixels: np.ndarray) -> np.ndarray:
    """Palette index per pixel, -1 for background. ``pixels``: (..., 3) uint8."""
    r = pixels[..., 0].astype(np.uint16) >> 3
    g = pixels[..., 1].astype(np.uint16) >> 3
    b = pixels[..., 2].astype(np.uint16) >> 3
    result: np.ndarray = _LUT[(r << 10) | (g << 5) | b]
    return result


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Connected components (4-neighbour) of a boolean mask via row runs + union-find.

    Returns ``(y0, x0, y1, x1, n_pixels)`` with inclusive bounds.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    starts = np.argwhere(d == 1)
    ends = np.argwhere(d == -1)
    if len(starts) == 0:
        return []
    rows = starts[:, 0].tolist()
    s = starts[:, 1].tolist()
    e = ends[:, 1].tolist()  # exclusive
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Runs are sorted by row then column: sweep pairs of consecutive rows with two pointers.
    row_start: dict[int, int] = {}
    for i, r in enumerate(rows):
        row_start.setdefault(r, i)
    row_end = {r: i for i, r in enumerate(rows)}
    for r, i0 in row_start.items():
        if r + 1 not in row_start:
            continue
        i, i_end = i0, row_end[r]
        j, j_end = row_start[r + 1], row_end[r + 1]
        while i <= i_end and j <= j_end:
            if s[i] < e[j] and s[j] < e[i]:
                a, b = find(i), find(j)
                if a != b:
                    parent[b] = a
            if e[i] < e[j]:
                i += 1
            else:
                j += 1
    comps: dict[int, list[int]] = {}
    for i in range(len(rows)):
        root = find(i)
        c = comps.get(root)
        n = e[i] - s[i]
        if c is None:
            comps[root] = [rows[i], s[i], rows[i], e[i] - 1, n]
        else:
            c[0] = min(c[0], rows[i])
            c[1] = min(c[1], s[i])
            c[2] = max(c[2], rows[i])
            c[3] = max(c[3], e[i] - 1)
            c[4] += n
    return [(c[0], c[1], c[2], c[3], c[4]) for c in comps.values()]


def _shape_name(fill: float, bw: float, bh: float) -> str:
    if fill >= 0.9:
        return "square" if 0.8 <= bw / max(bh, 1e-9) <= 1.25 else "rectangle"
    if fill >= 0.66:
        return "circle"
    return "triangle"


def _analyze(data: bytes) -> Sight:
    arr, (full_w, full_h) = _decode(data)
    ah, aw = arr.shape[:2]
    sx, sy = full_w / aw, full_h / ah
    step = max(1, max(ah, aw) // _COARSE_LONG)
    coarse = _classify(arr[::step, ::step])
    found: list[Seen] = []
    for ci, name in enumerate(_NAMES):
        mask = coarse == ci
        if not mask.any():
            continue
        for y0, x0, y1, x1, n in _components(mask):
            if n < 4:
                continue
            # Refine on the decoded image: crop around the coarse box, re-classify, take extents.
            ry0, rx0 = max(0, (y0 - 1) * step), max(0, (x0 - 1) * step)
            ry1, rx1 = min(ah, (y1 + 2) * step), min(aw, (x1 + 2) * step)
            fine = _classify(arr[ry0:ry1, rx0:rx1]) == ci
            ys = np.flatnonzero(fine.any(axis=1))
            xs = np.flatnonzero(fine.any(axis=0))
            if len(ys) == 0:
                continue
            by0, by1 = ry0 + int(ys[0]), ry0 + int(ys[-1]) + 1
            bx0, bx1 = rx0 + int(xs[0]), rx0 + int(xs[-1]) + 1
            area = (by1 - by0) * (bx1 - bx0)
            fill = float(fine.sum()) / area if area else 0.0
            shape = _shape_name(fill, bx1 - bx0, by1 - by0)
            box = (bx0 * sx, by0 * sy, bx1 * sx, by1 * sy)
            center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            found.append(Seen(f"{name} {shape}", name, shape, box, center))
    found.sort(key=lambda o: (round(o.center[1] / 8), o.center[0]))
    mean = arr[::step, ::step].reshape(-1, 3).mean(axis=0)
    mean_rgb = (int(mean[0]), int(mean[1]), int(mean[2]))
    return Sight((full_w, full_h), tuple(found), mean_rgb)
