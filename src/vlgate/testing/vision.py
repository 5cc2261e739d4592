"""How the emulator "sees": find the scene shapes in received image bytes.

It decodes the image the way a real service would (EXIF orientation applied), classifies a
sampled grid of pixels (long side ~80) against the scene palette
(:data:`vlgate.testing.scenes.PALETTE`), labels connected components of every colour in one
run-length union-find (numpy only), refines each box on the full decoded image around it (so
boxes stay pixel-exact), and guesses the shape from how much of its box it fills
(square/rectangle ~1.0, circle ~0.79, triangle ~0.5).
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
from dataclasses import dataclass

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
    """What one image shows: upright ``size`` (w, h), the objects, and the mean colour.

    ``scene`` is False when the image is not one of the synthetic scenes (a photograph, noise,
    a blank page): the emulator can name nothing in it, so ``objects`` is empty.
    """

    size: tuple[int, int]
    objects: tuple[Seen, ...]
    mean_rgb: tuple[int, int, int]
    scene: bool = True


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
    """Upright RGB array (maybe reduced) and the upright full-resolution size."""
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
            return _simplejpeg.decode_jpeg(data, colorspace="RGB"), (full_w, full_h)
        if small is not None:
            im.draft("RGB", small)
        im.load()
        rgb = im if im.mode == "RGB" else im.convert("RGB")
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
    return _classify_planes(pixels[..., 0], pixels[..., 1], pixels[..., 2])


def _classify_planes(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`_classify` on the three uint8 channel planes."""
    # The LUT index (5 bits per channel) by shifts; one gather (a gather per channel cost 2x).
    index = (r >> 3).astype(np.uint16) << 10
    index |= (g >> 3).astype(np.uint16) << 5
    index |= b >> 3
    result: np.ndarray = np.take(_LUT, index)
    return result


def _planes(pixels: np.ndarray, step: int) -> np.ndarray:
    """The samples every ``step`` pixels as three contiguous uint8 planes ``(3, h, w)``."""
    # One copy through a transposed view: 4x faster than copying (h, w, 3) samples.
    return np.ascontiguousarray(pixels[::step, ::step, :3].transpose(2, 0, 1))


def _labelled_components(
    labels: np.ndarray, *, diagonal: bool = False
) -> list[tuple[int, int, int, int, int, int]]:
    """Connected components of equal non-negative labels, all labels in one pass (row runs +
    union-find). Returns ``(label, y0, x0, y1, x1, n_pixels)`` with inclusive bounds."""
    h, w = labels.shape
    padded = np.full((h, w + 2), -1, dtype=np.int16)
    padded[:, 1:-1] = labels
    change = padded[:, 1:] != padded[:, :-1]  # a run starts or ends between these columns
    rr, cc = np.nonzero(change)
    vals = padded[rr, cc + 1]
    # Each change at (r, c) starts a run of vals at column c that ends at the next change.
    keep = np.flatnonzero((vals[:-1] >= 0) & (rr[1:] == rr[:-1]))
    run_rows = rr[keep]
    rows: list[int] = run_rows.tolist()
    s: list[int] = cc[keep].tolist()
    e: list[int] = cc[keep + 1].tolist()
    lab: list[int] = vals[keep].tolist()
    n = len(rows)
    touch = 1 if diagonal else 0
    parent = list(range(n))
    # Runs are in row order; bounds[k]:bounds[k + 1] are the runs of one row.
    bounds = [0, *(np.flatnonzero(run_rows[1:] != run_rows[:-1]) + 1).tolist(), n]
    for k in range(1, len(bounds) - 1):
        i, i_end, j_end = bounds[k - 1], bounds[k], bounds[k + 1]
        if rows[i] + 1 != rows[i_end]:
            continue
        j = i_end
        while i < i_end and j < j_end:  # a merge sweep of this row's runs and the next row's
            if lab[i] == lab[j] and s[i] < e[j] + touch and s[j] < e[i] + touch:
                a = i
                while parent[a] != a:
                    a = parent[a]
                b = j
                while parent[b] != b:
                    b = parent[b]
                if a != b:
                    parent[b] = a
            if e[i] < e[j]:
                i += 1
            else:
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
    h, w = arr.shape[:2]
    pad = step if step > 1 else 0
    y0, x0, y1, x1 = samples
    top, left = max(0, y0 - pad), max(0, x0 - pad)
    bottom, right = min(h, y1 + pad + 1), min(w, x1 + pad + 1)
    for _ in range(_MAX_GROW):
        fine = _classify(arr[top:bottom, left:right]) == ci
        ys = np.flatnonzero(fine.any(axis=1))
        if len(ys) == 0:
            return None
        xs = np.flatnonzero(fine.any(axis=0))
        fy0, fy1 = top + int(ys[0]), top + int(ys[-1]) + 1
        fx0, fx1 = left + int(xs[0]), left + int(xs[-1]) + 1
        if pad == 0:
            break
        grown = (
            max(0, fy0 - pad) if fy0 == top else top,
            max(0, fx0 - pad) if fx0 == left else left,
            min(h, fy1 + pad) if fy1 == bottom else bottom,
            min(w, fx1 + pad) if fx1 == right else right,
        )
        if grown == (top, left, bottom, right):
            break
        top, left, bottom, right = grown
    return fy0, fx0, fy1, fx1, int(np.count_nonzero(fine))


_SCENE_GRID = 96  # long side of the grid the scene test looks at
_MAX_OTHER = 0.12  # share of pixels neither background grey nor palette colour (scenes: < 5 %)
_MIN_TOP_COLOURS = 0.75  # share in the 16 most common coarse colours (tiny JPEG scenes 0.85+)


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
    r, g, b = _planes(pixels, _grid_step(pixels))
    return r.size > 0 and _scene_like(r, g, b, _classify_planes(r, g, b))


def _grid_step(pixels: np.ndarray) -> int:
    """The sampling step of the grid components are found on (and the scene test looks at).

    A shape spans >= 4 % of the short side and same-coloured shapes are >= 3 % apart, so with a
    step under that gap a shape is one 8-connected group of samples and two shapes never touch.
    """
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    return max(1, min(max(h, w) // _COARSE_LONG, int(_MAX_STEP_FRACTION * min(h, w))))


def _scene_like(r8: np.ndarray, g8: np.ndarray, b8: np.ndarray, classes: np.ndarray) -> bool:
    """:func:`looks_like_scene` on the channel planes of a sampled grid whose palette
    ``classes`` are known."""
    # Channel by channel: numpy reduces over a last axis of length 3 slowly, and the sum of the
    # channels compares exactly as their mean would.
    r, g, b = r8.astype(np.int16), g8.astype(np.int16), b8.astype(np.int16)
    chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    lum3 = r + g + b
    grey = (chroma < 40) & (lum3 > 3 * 90) & (lum3 < 3 * 235)
    other = ~(grey | (classes >= 0))
    if np.count_nonzero(other) > _MAX_OTHER * other.size:
        return False
    codes = ((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4)
    counts = np.bincount(codes.ravel(), minlength=4096)
    # Only the used colours sorted (np.partition or a sort of all 4096 are far slower).
    used = np.sort(counts[counts > 0])
    return float(used[-16:].sum()) / codes.size >= _MIN_TOP_COLOURS


def _analyze(data: bytes, pixels: np.ndarray | None = None) -> Sight:
    # ``pixels``: what the emulator's probe already decoded (a plain colour JPEG, upright).
    if pixels is None:
        arr, (full_w, full_h) = _decode(data)
    else:
        arr, full_w, full_h = pixels, pixels.shape[1], pixels.shape[0]
    ah, aw = arr.shape[:2]
    # Components are found on a sampled grid, then every box is refined on the full decoded
    # image around it: the sampling costs speed, not accuracy.
    step = _grid_step(arr)
    r, g, b = _planes(arr, step)
    coarse = _classify_planes(r, g, b)
    if r.size == 0 or not _scene_like(r, g, b, coarse):
        grid = arr[:: max(1, max(ah, aw) // _SCENE_GRID), :: max(1, max(ah, aw) // _SCENE_GRID)]
        m = grid.reshape(-1, 3).mean(axis=0) if grid.size else np.zeros(3)
        return Sight((full_w, full_h), (), (int(m[0]), int(m[1]), int(m[2])), scene=False)
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
        if count < 4 or any(
            bx0 >= b[0] and by0 >= b[1] and bx1 <= b[2] and by1 <= b[3] for b in seen
        ):
            continue  # a speck (JPEG ringing at an edge), or part of a shape already seen
        seen.append((bx0, by0, bx1, by1))
        fill = count / area
        shape = _shape_name(fill, bx1 - bx0, by1 - by0)
        box = (bx0 * sx, by0 * sy, bx1 * sx, by1 * sy)
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        found.append(Seen(f"{name} {shape}", name, shape, box, center))
    found.sort(key=lambda o: (round(o.center[1] / 8), o.center[0]))
    n = max(1, coarse.size)  # (channel sums: a sum over a last axis of 3 is 20x slower)
    rs, gs, bs = (int(c.sum(dtype=np.int64)) for c in (r, g, b))
    return Sight((full_w, full_h), tuple(found), (int(rs / n), int(gs / n), int(bs / n)))
