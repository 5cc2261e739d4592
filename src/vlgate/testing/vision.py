"""How the emulator "sees": find the scene shapes in received image bytes.

It decodes the image the way a real service would (EXIF orientation applied), classifies a
sampled grid of pixels (long side ~80) against the scene palette
(:data:`vlgate.testing.scenes.PALETTE`), labels connected components of every colour in one
run-length union-find (numpy only), refines each box on the full decoded image around it (so
boxes stay pixel-exact), and guesses the shape from how much of its box it fills
(square/rectangle ~1.0, circle ~0.79, triangle ~0.5). Pixels are packed in one uint32 each and
classified by one lookup of their 8x8x8 colour cell (:func:`_classes`): the per-frame work is a
few dozen numpy calls on the sampled grid and the crops around the shapes, never on the whole
frame.
Large JPEGs are decoded at a reduced DCT scale, so a 4032x3024 photo takes a few tens of ms.
Results are cached by content hash.

Example::

    >>> from vlgate.testing.scenes import make_scene
    >>> scene = make_scene(2, size=(640, 480))
    >>> sight = analyze(scene.to_jpeg_bytes())
    >>> sorted(o.label for o in sight.objects) == sorted(s.label for s in scene.shapes)
    True
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image

from .imageio import FULL_DECODE_LONG, content_key, take_pixels
from .scenes import _UPRIGHT, PALETTE

try:  # libjpeg-turbo straight into numpy: half of Pillow's decode time for a small frame
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - a core dependency of vlgate, but optional here
    _simplejpeg = None

__all__ = ["Seen", "Sight", "analyze", "looks_like_scene"]

_NAMES = list(PALETTE)
_COLOURS = np.array([PALETTE[n] for n in _NAMES], dtype=np.int32)
_MAX_DIST2 = 85 * 85  # squared RGB distance still counted as a palette colour (JPEG drift)
_MIN_CHROMA = 70  # max-min channel spread; the grey background is ~0
_COARSE_LONG = 80  # long side of the sampled grid used to find components (then refined)
_MAX_STEP_FRACTION = 0.025  # sampling step at most this share of the short side (< the gap)
_MAX_COMPONENTS = 64  # a scene has at most a few dozen shapes and specks
_MAX_GROW = 4  # crop growths for a thin tip (one is enough for a scene's triangles)
_DECODE_LONG = FULL_DECODE_LONG  # larger JPEGs: the smallest DCT scale at least this large


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
    """What one image shows: upright ``size`` (w, h), the objects, and the mean colour
    ``mean_rgb`` (of a sampled grid; each channel truncated to an int).

    ``scene`` is False when the image is not one of the synthetic scenes (a photograph, noise,
    a blank page): the emulator can name nothing in it, so ``objects`` is empty.
    """

    size: tuple[int, int]
    objects: tuple[Seen, ...]
    # The sampled pixels (packed, fourth byte clear) the mean colour comes from, or the mean
    # itself: few answers need it, so it is computed on first use, not for every frame.
    _samples: np.ndarray | tuple[int, int, int] = field(repr=False, compare=False)
    scene: bool = True

    @cached_property
    def mean_rgb(self) -> tuple[int, int, int]:
        s = self._samples
        return s if isinstance(s, tuple) else _mean_rgb(s)

    # repr, equality and hash as when the mean was a plain field between objects and scene.
    def __repr__(self) -> str:
        return (
            f"Sight(size={self.size!r}, objects={self.objects!r}, mean_rgb={self.mean_rgb!r}, "
            f"scene={self.scene!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Sight):
            return NotImplemented
        return (self.size, self.objects, self.mean_rgb, self.scene) == (
            other.size,
            other.objects,
            other.mean_rgb,
            other.scene,
        )

    def __hash__(self) -> int:
        return hash((self.size, self.objects, self.scene))


_cache: OrderedDict[str, Sight | None] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_MAX = 128


def analyze(data: bytes) -> Sight | None:
    """Look at an image; ``None`` if it cannot be decoded. Cached by SHA-1 of the bytes.

    Example:
        >>> analyze(b"garbage") is None
        True
    """
    key = content_key(data)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        sight: Sight | None = _analyze(data, take_pixels(key))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        sight = None
    with _cache_lock:
        _cache[key] = sight
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return sight


def _decode(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """Upright pixels (maybe reduced; :func:`_packed` form) and the upright full-resolution
    size."""
    with Image.open(io.BytesIO(data)) as im:
        full_w, full_h = im.size
        tag = im.getexif().get(0x0112)
        orientation = tag if isinstance(tag, int) and tag in _UPRIGHT else 1
        small: tuple[int, int] | None = None
        if im.format == "JPEG" and max(full_w, full_h) > _DECODE_LONG:
            k = max(full_w, full_h) / _DECODE_LONG
            # At least 1 px a side: Pillow divides by the requested size (a 2048x1 strip).
            small = (max(1, int(full_w / k)), max(1, int(full_h / k)))
        plain = small is None and orientation == 1 and im.mode == "RGB"
        if plain and im.format == "JPEG" and _simplejpeg is not None:
            rgbx = _simplejpeg.decode_jpeg(data, colorspace="RGBX")
            return _packed(rgbx), (full_w, full_h)
        if small is not None:
            im.draft("RGB", small)
        im.load()
        rgb = im if im.mode == "RGB" else im.convert("RGB")
    op = _UPRIGHT[orientation]
    if op is not None:
        rgb = rgb.transpose(op)
    if orientation in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    return _packed(np.asarray(rgb)), (full_w, full_h)


_U32 = np.dtype("<u4")


def _packed(pixels: np.ndarray) -> np.ndarray:
    """An ``(h, w)`` uint32 array ``r | g << 8 | b << 16 | x << 24`` of RGB(X) uint8 pixels
    (``x``: anything): one masked lookup in :data:`_CELLS` classifies a pixel,
    a shift and a mask give a channel. A contiguous RGBX array is viewed, anything else copied.
    """
    if pixels.ndim == 2 and pixels.dtype == _U32:
        return pixels
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    if pixels.shape[2] == 4 and pixels.dtype == np.uint8 and pixels.flags.c_contiguous:
        return pixels.view(_U32).reshape(h, w)
    rgbx = np.zeros((h, w, 4), np.uint8)
    rgbx[..., :3] = pixels[..., :3]
    return rgbx.view(_U32).reshape(h, w)


def _build_lut5() -> np.ndarray:
    # Palette index for every colour quantised to 5 bits per channel (32768 entries, index
    # r5 << 10 | g5 << 5 | b5): the nearest palette colour within reach, or -1.
    q = (np.arange(32, dtype=np.int32) << 3) + 4
    r, g, b = np.meshgrid(q, q, q, indexing="ij")
    p = np.stack([r, g, b], axis=-1).reshape(-1, 3)
    chroma = p.max(axis=1) - p.min(axis=1)
    d2 = ((p[:, None, :] - _COLOURS[None, :, :]) ** 2).sum(axis=-1)
    best = d2.argmin(axis=1)
    ok = (d2[np.arange(len(best)), best] <= _MAX_DIST2) & (chroma >= _MIN_CHROMA)
    return np.where(ok, best, -1).astype(np.int8)


# (The two classes that may be other than grey are the ones below _GREY: one comparison
# counts them both.)
_GREY = -1  # every colour of the cell is background grey: neutral and mid-bright
_OTHER = -2  # no colour of the cell is background grey (nor a palette colour)
_MIXED = -3  # some colours of the cell are grey, some not: each pixel is tested exactly


def _build_cells() -> np.ndarray:
    """The class of every 8x8x8 colour cell, stored at the cell's first colour (``r | g << 8 |
    b << 16`` with the low 3 bits of each channel clear), so that ``packed & 0xF8F8F8`` indexes
    it: a palette index, :data:`_GREY`, :data:`_OTHER` or :data:`_MIXED`.

    The 16 MiB table is mostly never read: its 32768 entries sit in 256 KiB of cache lines.
    A palette colour depends on the cell only; the grey test (spread of the channels < 40,
    mean in 91..234) on the exact colour, hence the mixed cells.
    """
    palette = _build_lut5()  # index r5 << 10 | g5 << 5 | b5
    cell = np.arange(32768)
    lo = np.stack([cell >> 10, (cell >> 5) & 31, cell & 31]) << 3  # each channel's range
    hi = lo + 7
    min_spread = np.maximum(0, lo.max(axis=0) - hi.min(axis=0))
    max_spread = hi.max(axis=0) - lo.min(axis=0)
    lum_lo, lum_hi = lo.sum(axis=0), hi.sum(axis=0)
    all_grey = (max_spread < 40) & (lum_lo > 3 * 90) & (lum_hi < 3 * 235)
    none_grey = (min_spread >= 40) | (lum_hi <= 3 * 90) | (lum_lo >= 3 * 235)
    kind = np.where(all_grey, _GREY, np.where(none_grey, _OTHER, _MIXED))
    table = np.zeros(0xF8F8F8 + 1, dtype=np.int8)
    table[lo[0] | lo[1] << 8 | lo[2] << 16] = np.where(palette >= 0, palette, kind)
    return table


_CELLS = _build_cells()


def _classes(packed: np.ndarray) -> np.ndarray:
    """The :data:`_CELLS` class of each :func:`_packed` pixel (a new array)."""
    # Indexing with native ints is numpy's quickest gather (take, or any other index type, has
    # a conversion or checks on the way).
    cells = packed.astype(np.intp)
    cells &= 0xF8F8F8
    return _CELLS[cells]


def _not_grey(pixels: np.ndarray) -> int:
    """How many of these :func:`_packed` pixels (fourth byte clear) are not background grey."""
    if pixels.size <= 32:  # (a scene's grid has a few: plain Python is cheaper than numpy)
        n = 0
        for v in pixels.tolist():
            r, g, b = v & 0xFF, v >> 8 & 0xFF, v >> 16
            lum3 = r + g + b
            n += not (max(r, g, b) - min(r, g, b) < 40 and 3 * 90 < lum3 < 3 * 235)
        return n
    r, g, b = pixels & 0xFF, pixels >> 8 & 0xFF, pixels >> 16
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    lum3 = r + g + b
    grey = (spread < 40) & (lum3 > 3 * 90) & (lum3 < 3 * 235)
    return int(pixels.size - np.count_nonzero(grey))


def _labelled_components(
    labels: np.ndarray, *, diagonal: bool = False
) -> list[tuple[int, int, int, int, int, int]]:
    """Connected components of equal non-negative labels, all labels in one pass (row runs +
    union-find). Returns ``(label, y0, x0, y1, x1, n_pixels)`` with inclusive bounds."""
    h, w = labels.shape
    # The rows one after another, each followed by a -1 (and one -1 first): a run of a label
    # starts where the value changes and ends at the next change, never crossing a row.
    width = w + 1
    flat = np.full(h * width + 1, -1, dtype=np.int8)
    flat[1:].reshape(h, width)[:, :w] = labels
    change = (flat[1:] != flat[:-1]).nonzero()[0]  # (a run starts at change + 1)
    vals = flat[change + 1]
    keep = (vals >= 0).nonzero()[0]
    starts = change[keep]
    run_rows, run_s = np.divmod(starts, width)
    rows: list[int] = run_rows.tolist()
    s: list[int] = run_s.tolist()
    e: list[int] = (run_s + (change[keep + 1] - starts)).tolist()
    lab: list[int] = vals[keep].tolist()
    n = len(rows)
    touch = 1 if diagonal else 0
    parent = list(range(n))
    # Runs are in row order; bounds[k]:bounds[k + 1] are the runs of one row.
    bounds = [0]
    row = rows[0] if n else 0
    for k in range(1, n):
        if rows[k] != row:
            bounds.append(k)
            row = rows[k]
    bounds.append(n)
    for k in range(1, len(bounds) - 1):
        i, i_end, j_end = bounds[k - 1], bounds[k], bounds[k + 1]
        if rows[i] + 1 != rows[i_end]:
            continue
        j = i_end
        while i < i_end and j < j_end:  # a merge sweep of this row's runs and the next row's
            if s[i] < e[j] + touch and s[j] < e[i] + touch:
                _join(parent, i, j, lab)
            if e[i] < e[j]:
                i += 1
            else:
                if touch and e[i] == e[j] and i + 1 < i_end and s[i + 1] == e[i]:
                    # Moving past j would skip the run right after i, whose first pixel
                    # touches j's last one diagonally (a ``1 1 2`` over ``1 1 .`` corner).
                    _join(parent, i + 1, j, lab)
                j += 1
    comps: dict[int, list[int]] = {}
    for i in range(n):
        root = i
        while parent[root] != root:
            root = parent[root]
        parent[i] = root
        c = comps.get(root)
        if c is None:  # (components in the order of their first run)
            comps[root] = [lab[i], rows[i], s[i], rows[i], e[i] - 1, e[i] - s[i]]
        else:
            c[3] = rows[i]  # runs come in row order: the last one seen is the lowest
            if s[i] < c[2]:
                c[2] = s[i]
            if e[i] - 1 > c[4]:
                c[4] = e[i] - 1
            c[5] += e[i] - s[i]
    return [(c[0], c[1], c[2], c[3], c[4], c[5]) for c in comps.values()]


def _join(parent: list[int], a: int, b: int, lab: list[int]) -> None:
    """Union runs ``a`` and ``b`` of :func:`_labelled_components` if their labels match."""
    if lab[a] != lab[b]:
        return
    while parent[a] != a:
        a = parent[a]
    while parent[b] != b:
        b = parent[b]
    if a != b:
        parent[b] = a


def _shape_name(fill: float, bw: float, bh: float) -> str:
    if fill >= 0.9:
        return "square" if 0.8 <= bw / max(bh, 1e-9) <= 1.25 else "rectangle"
    if fill >= 0.66:
        return "circle"
    return "triangle"


def _refine(
    arr: np.ndarray, ci: int, step: int, samples: tuple[int, int, int, int]
) -> tuple[int, int, int, int, int] | None:
    """Exact box ``(y0, x0, y1, x1)`` (exclusive ends) and pixel count of the colour-``ci``
    shape whose outermost samples are ``samples`` (inclusive pixel coordinates).

    The shape reaches less than ``step`` past its samples, except a thin tip between sample
    columns: the crop (``step`` beyond the samples) grows while the shape touches its edge. It
    stays within ``step`` of this shape's box, so it never reaches another shape of the colour
    (those are further away than that).
    """
    h, w = arr.shape
    pad = step if step > 1 else 0
    y0, x0, y1, x1 = samples
    top, left = max(0, y0 - pad), max(0, x0 - pad)
    bottom, right = min(h, y1 + pad + 1), min(w, x1 + pad + 1)
    mark = _CLASS_BYTE[ci]
    for _ in range(_MAX_GROW):
        # The crop's classes as bytes, row by row and column by column: the first and last
        # rows and columns of the shape are byte searches, its pixel count a byte count (a few
        # C calls instead of a dozen numpy reductions on a small array).
        cls = _classes(arr[top:bottom, left:right])
        by_row = cls.tobytes()
        first = by_row.find(mark)
        if first < 0:
            return None
        by_col = cls.tobytes("F")
        ch, cw = bottom - top, right - left
        fy0, fy1 = top + first // cw, top + by_row.rfind(mark) // cw + 1
        fx0, fx1 = left + by_col.find(mark) // ch, left + by_col.rfind(mark) // ch + 1
        if pad == 0 or (fy0 > top and fx0 > left and fy1 < bottom and fx1 < right):
            break  # (the shape does not touch the crop's edge: nothing to grow)
        grown = (
            max(0, fy0 - pad) if fy0 == top else top,
            max(0, fx0 - pad) if fx0 == left else left,
            min(h, fy1 + pad) if fy1 == bottom else bottom,
            min(w, fx1 + pad) if fx1 == right else right,
        )
        if grown == (top, left, bottom, right):
            break
        top, left, bottom, right = grown
    return fy0, fx0, fy1, fx1, by_row.count(mark)


_CLASS_BYTE = [bytes([i]) for i in range(len(PALETTE))]  # a palette index as an int8 byte


_SCENE_GRID = 96  # long side of the grid the scene test looks at
_MAX_OTHER = 0.12  # share of pixels neither background grey nor palette colour (scenes: < 5 %)
_MIN_TOP_COLOURS = 0.75  # share in the 16 most common coarse colours (tiny JPEG scenes 0.85+)


def _build_likely() -> np.ndarray:
    """16 coarse colours (12-bit codes, see :func:`_scene_like`) a scene is mostly made of: the
    palette and the neutral greys nearest the background's mean level (165, 0xA_). Never more
    than 16: their share is a lower bound of the 16 most common colours' share."""
    palette = [(r >> 4) << 8 | (g >> 4) << 4 | b >> 4 for r, g, b in PALETTE.values()]
    greys = [k * 0x111 for k in sorted(range(16), key=lambda k: abs(k - 0xA))]
    likely = np.zeros(4096, dtype=bool)
    likely[list(dict.fromkeys(palette + greys))[:16]] = True  # (the first 16 distinct codes)
    return likely


_LIKELY = _build_likely()


def looks_like_scene(pixels: np.ndarray) -> bool:
    """Whether an RGB array looks like a :func:`~vlgate.testing.scenes.make_scene` image: a
    neutral mid-grey background and a few flat palette shapes, and almost nothing else.

    Photographs have many distinct colours, gradients and dark or bright areas; noise has every
    colour; a blank white or black page has no grey background. None of them pass.

    Example:
        >>> from vlgate.testing.scenes import make_scene
        >>> looks_like_scene(np.asarray(make_scene(1, size=(320, 240)).image))
        True
        >>> looks_like_scene(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
        False
    """
    step = _grid_step(pixels)
    grid = _packed(pixels[::step, ::step]) & 0xFFFFFF
    return grid.size > 0 and _scene_like(grid, _classes(grid))


def _grid_step(pixels: np.ndarray) -> int:
    """The sampling step of the grid components are found on (and the scene test looks at).

    A shape spans >= 4 % of the short side and same-coloured shapes are >= 3 % apart, so with a
    step under that gap a shape is one 8-connected group of samples and two shapes never touch.
    """
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    return max(1, min(max(h, w) // _COARSE_LONG, int(_MAX_STEP_FRACTION * min(h, w))))


def _scene_like(grid: np.ndarray, classes: np.ndarray) -> bool:
    """:func:`looks_like_scene` on a sampled grid of :func:`_packed` pixels (contiguous, the
    fourth byte clear) whose ``classes`` are known."""
    limit = _MAX_OTHER * classes.size
    if np.count_nonzero(classes < _GREY) > limit:  # (else the exact grey test cannot matter)
        other = np.count_nonzero(classes == _OTHER) + _not_grey(grid[classes == _MIXED])
        if other > limit:
            return False
    # The colour quantised to 4 bits a channel as a 12-bit code: the multiplication moves the
    # three high nibbles (bits 4, 12, 20) side by side into bits 20-31 without carries.
    codes = grid & 0xF0F0F0
    codes *= 0x1001001
    codes >>= 20
    # Any 16 colours hold at most the share of the 16 most common: the likely ones of a scene
    # are almost always enough, and cheaper to count than every colour.
    if np.count_nonzero(_LIKELY.take(codes)) / codes.size >= _MIN_TOP_COLOURS:
        return True
    counts = np.bincount(codes.ravel(), minlength=4096)
    # Only the used colours sorted (np.partition or a sort of all 4096 are far slower).
    used = counts[counts > 0]
    used.sort()
    return float(used[-16:].sum()) / codes.size >= _MIN_TOP_COLOURS


def _mean_rgb(grid: np.ndarray) -> tuple[int, int, int]:
    """The mean colour of :func:`_packed` pixels whose fourth byte is clear, each channel
    truncated to an int."""
    n = grid.size
    if n == 0:
        return (0, 0, 0)
    # One channel at a time (a sum over a last axis of 3 or 4 is many times slower); green from
    # the sum of whole pixels, r + 256 g + 65536 b.
    rs = int((grid & 0xFF).sum(dtype=np.int64))
    bs = int((grid >> 16).sum(dtype=np.int64))
    gs = (int(grid.sum(dtype=np.int64)) - rs - 65536 * bs) >> 8
    return (int(rs / n), int(gs / n), int(bs / n))


def _mean_samples(grid: np.ndarray) -> np.ndarray | tuple[int, int, int]:
    """What :class:`Sight` keeps for its lazy mean: the grid (a new array, not a view of the
    frame), or the mean itself when the grid is large (an odd aspect ratio; the cache stays
    small)."""
    return grid if grid.nbytes <= 64 * 1024 else _mean_rgb(grid)


def _analyze(data: bytes, pixels: np.ndarray | None = None) -> Sight:
    # ``pixels``: what the emulator's probe already decoded (a plain colour JPEG, upright RGBX;
    # ours to reuse).
    if pixels is None:
        arr, (full_w, full_h) = _decode(data)
    else:
        arr = _packed(pixels)
        full_w, full_h = arr.shape[1], arr.shape[0]
    ah, aw = arr.shape
    # Components are found on a sampled grid, then every box is refined on the full decoded
    # image around it: the sampling costs speed, not accuracy.
    step = _grid_step(arr)
    grid = arr[::step, ::step] & 0xFFFFFF
    coarse = _classes(grid)
    if grid.size == 0 or not _scene_like(grid, coarse):
        k = max(1, max(ah, aw) // _SCENE_GRID)
        return Sight((full_w, full_h), (), _mean_samples(arr[::k, ::k] & 0xFFFFFF), scene=False)
    sx, sy = full_w / aw, full_h / ah
    found: list[Seen] = []
    boxes: dict[int, list[tuple[int, int, int, int]]] = {}
    comps = _labelled_components(coarse, diagonal=step > 1)
    if len(comps) > _MAX_COMPONENTS:
        # Not a scene (noise, a photo): its largest blobs are answer enough; refining
        # thousands of specks would only stall the emulator.
        comps = sorted(comps, key=lambda c: -c[5])[:_MAX_COMPONENTS]
    for ci, y0, x0, y1, x1, _n in sorted(comps, key=lambda c: (c[0], -c[5])):
        name = _NAMES[ci]
        seen = boxes.setdefault(ci, [])
        refined = _refine(arr, ci, step, (y0 * step, x0 * step, y1 * step, x1 * step))
        if refined is None:
            continue
        by0, bx0, by1, bx1, count = refined
        area = (by1 - by0) * (bx1 - bx0)
        if count < 4 or (
            seen and any(bx0 >= b[0] and by0 >= b[1] and bx1 <= b[2] and by1 <= b[3] for b in seen)
        ):
            continue  # a speck (JPEG ringing at an edge), or part of a shape already seen
        seen.append((bx0, by0, bx1, by1))
        fill = count / area
        shape = _shape_name(fill, bx1 - bx0, by1 - by0)
        box = (bx0 * sx, by0 * sy, bx1 * sx, by1 * sy)
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        found.append(Seen(f"{name} {shape}", name, shape, box, center))
    found.sort(key=lambda o: (round(o.center[1] / 8), o.center[0]))
    return Sight((full_w, full_h), tuple(found), _mean_samples(grid))
