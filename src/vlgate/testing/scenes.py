"""Synthetic test scenes with exact ground truth: coloured shapes on a textured grey background.

The palette is small and saturated, the background is neutral, shapes never overlap, so the
emulator's :mod:`vlgate.testing.vision` can find them again and tests know the true answer.

Example::

    >>> s = make_scene(3, size=(640, 480))
    >>> s.image.size
    (640, 480)
    >>> all(0 <= sh.box[0] < sh.box[2] <= 640 for sh in s.shapes)
    True
    >>> jpeg = s.to_jpeg_bytes(exif_orientation=6)   # stored rotated, tagged to look upright

Boxes are ``(x1, y1, x2, y2)`` pixel edges of the upright image: ``x2``/``y2`` are exclusive, so
``x2 - x1`` is the width in pixels.
"""

from __future__ import annotations

import base64
import io
import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["PALETTE", "SCENE_SIZES", "SHAPE_KINDS", "Scene", "Shape", "make_scene"]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 80, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 180),
    "orange": (250, 130, 20),
    "cyan": (20, 200, 210),
}
"""Colour name -> RGB. Well separated hues, all strongly saturated (the background is grey)."""

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "rectangle", "triangle")

SCENE_SIZES: tuple[tuple[int, int], ...] = (
    (640, 480),
    (480, 640),
    (800, 600),
    (1024, 768),
    (1280, 720),
    (720, 1280),
    (1920, 1080),
    (1080, 1920),
    (2048, 1536),
    (3024, 4032),
    (4032, 3024),
)
"""Sizes ``make_scene`` picks from when ``size`` is not given (landscape and portrait)."""

# EXIF Orientation k -> the transpose that turns the stored pixels upright (as exif_transpose
# does), and the inverse used to write stored pixels from the upright image.
_UPRIGHT: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_STORE: dict[int, Image.Transpose | None] = {
    **_UPRIGHT,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Shape:
    """One shape in a scene.

    Attributes:
        label: ``"<colour> <shape>"``, e.g. ``"red circle"``.
        colour: palette name. shape: one of :data:`SHAPE_KINDS`.
        box: ``(x1, y1, x2, y2)`` pixel edges in the upright image (x2/y2 exclusive).
        center: ``(x, y)`` centre of the box.
    """

    label: str
    colour: str
    shape: str
    box: tuple[int, int, int, int]
    center: tuple[float, float]


@dataclass
class Scene:
    """A generated scene: the upright image, its shapes, and counts.

    ``counts`` maps each colour, each shape kind and each label to how many shapes have it,
    e.g. ``{"red": 2, "circle": 1, "red circle": 1, ...}``.
    """

    seed: int
    image: Image.Image
    shapes: list[Shape]
    counts: dict[str, int] = field(default_factory=dict)
    exif_orientation: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(w, h)`` of the upright image."""
        w, h = self.image.size
        return (w, h)

    def to_jpeg_bytes(self, exif_orientation: int | None = None, quality: int = 92) -> bytes:
        """JPEG bytes. With an orientation k in 2..8 the stored pixels are transposed and tagged
        so that an EXIF-aware viewer shows exactly :attr:`image`.

        Example:
            >>> make_scene(0, size=(640, 480)).to_jpeg_bytes(exif_orientation=6)[:3]
            b'\\xff\\xd8\\xff'
        """
        k = self.exif_orientation if exif_orientation is None else exif_orientation
        stored = self.image
        exif_bytes = b""
        if k is not None:
            if k not in _STORE:
                raise ValueError(f"EXIF orientation must be 1..8, got {k}")
            op = _STORE[k]
            if op is not None:
                stored = stored.transpose(op)
            exif = Image.Exif()
            exif[0x0112] = k
            exif_bytes = exif.tobytes()
        buf = io.BytesIO()
        stored.save(buf, format="JPEG", quality=quality, exif=exif_bytes)
        return buf.getvalue()

    def to_png_bytes(self) -> bytes:
        """Lossless PNG bytes of the upright image (no EXIF)."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def to_data_uri(self, fmt: str = "jpeg", exif_orientation: int | None = None) -> str:
        """A ``data:image/...;base64,`` URI (``fmt`` ``"jpeg"`` or ``"png"``)."""
        if fmt == "png":
            return "data:image/png;base64," + base64.b64encode(self.to_png_bytes()).decode()
        data = self.to_jpeg_bytes(exif_orientation=exif_orientation)
        return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _background(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    # Low-resolution grey noise upscaled: textured but never saturated, and cheap at 12 MP.
    small = rng.normal(165.0, 9.0, size=(max(2, h // 16), max(2, w // 16))).clip(120, 210)
    grey = Image.fromarray(small.astype(np.uint8), mode="L").resize(
        (w, h), Image.Resampling.BILINEAR
    )
    return Image.merge("RGB", (grey, grey, grey))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    return not (
        a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]
    )


def make_scene(
    seed: int,
    size: tuple[int, int] | None = None,
    n_shapes: int | None = None,
    exif_orientation: int | None = None,
) -> Scene:
    """Generate a deterministic scene for ``seed``.

    Args:
        seed: everything (size when not given, shapes, colours, positions) follows from it.
        size: ``(w, h)`` of the upright image; default: one of :data:`SCENE_SIZES`.
        n_shapes: number of shapes (default 2-6). Fewer may fit on tiny images.
        exif_orientation: default orientation used by :meth:`Scene.to_jpeg_bytes`.

    Example:
        >>> s = make_scene(1, size=(800, 600), n_shapes=3)
        >>> len(s.shapes), s.counts[s.shapes[0].label] >= 1
        (3, True)
    """
    rng = random.Random(seed)
    w, h = size if size is not None else SCENE_SIZES[rng.randrange(len(SCENE_SIZES))]
    n = n_shapes if n_shapes is not None else rng.randint(2, 6)
    image = _background(w, h, np.random.default_rng(seed))
    draw = ImageDraw.Draw(image)
    short = min(w, h)
    gap = max(2, round(0.03 * short))
    margin = max(1, round(0.02 * short))
    colours = list(PALETTE)
    shapes: list[Shape] = []
    boxes: list[tuple[int, int, int, int]] = []
    tries = 0
    while len(shapes) < n and tries < 400:
        tries += 1
        kind = rng.choice(SHAPE_KINDS)
        # Rectangles start larger so their short side also stays >= 5 % of the image's.
        s = rng.uniform(0.12 if kind == "rectangle" else 0.06, 0.30) * short
        if kind == "rectangle":
            aspect = rng.uniform(1.6, 2.4)
            bw, bh = (s, s / aspect) if rng.random() < 0.5 else (s / aspect, s)
        elif kind == "triangle":
            bw, bh = s, s * 0.9
        else:
            bw = bh = s
        bw_i, bh_i = max(6, round(bw)), max(6, round(bh))
        if bw_i + 2 * margin >= w or bh_i + 2 * margin >= h:
            continue
        x1 = rng.randint(margin, w - margin - bw_i)
        y1 = rng.randint(margin, h - margin - bh_i)
        box = (x1, y1, x1 + bw_i, y1 + bh_i)
        if any(_overlaps(box, b, gap) for b in boxes):
            continue
        colour = rng.choice(colours)
        rgb = PALETTE[colour]
        x2, y2 = box[2] - 1, box[3] - 1  # PIL draws inclusive coordinates
        if kind == "circle":
            draw.ellipse((x1, y1, x2, y2), fill=rgb)
        elif kind == "triangle":
            draw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)], fill=rgb)
        else:
            draw.rectangle((x1, y1, x2, y2), fill=rgb)
        boxes.append(box)
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        shapes.append(Shape(f"{colour} {kind}", colour, kind, box, center))
    counts: Counter[str] = Counter()
    for sh in shapes:
        counts[sh.colour] += 1
        counts[sh.shape] += 1
        counts[sh.label] += 1
    return Scene(seed, image, shapes, dict(counts), exif_orientation)
