"""Drawing boxes and points on an image, readable at any count (``Detections.annotate``).

Line widths, point radii and label sizes follow the image's size. Up to
:data:`LABEL_LIMIT` results, each is labelled where it is; past that, per-result labels would
pile up into an unreadable block, so each label is drawn once, in a legend in the image's
top-left corner (colour, label, count), and the results keep their label's colour. The image
keeps its size, so the output lines up with the original pixel for pixel.

Example:
    >>> from PIL import Image
    >>> from vlgate.grounding import Detection
    >>> out = annotate(Image.new("RGB", (64, 48)), boxes=[Detection("cup", (4, 4, 30, 30))])
    >>> out.size
    (64, 48)
"""

from __future__ import annotations

import colorsys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    from .types import Detection, Point

__all__ = ["LABEL_LIMIT", "LEGEND_ROWS", "annotate", "colour_of_index"]

LABEL_LIMIT = 12
"""Above this many results, labels go into a legend instead of next to each result."""

LEGEND_ROWS = 12
"""Rows of the legend; further labels are summed up in a last "+N more" row."""

RGB = tuple[int, int, int]


def colour_of_index(index: int) -> RGB:
    """The ``index``-th label colour: golden-ratio hue steps keep neighbours far apart."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _to_pil(image: Any) -> PILImage.Image:
    import numpy as np
    from PIL import Image as PILImageModule

    if isinstance(image, PILImageModule.Image):
        from PIL import ImageOps

        return ImageOps.exif_transpose(image).convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 4:
            return PILImageModule.fromarray(arr, "RGBA").convert("RGB")
        return PILImageModule.fromarray(arr).convert("RGB")
    from ..image import Image as VlImage

    loaded = image if isinstance(image, VlImage) else VlImage.load(image)
    return loaded.to_pil().convert("RGB")


def _ink(colour: RGB) -> RGB:
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


class _Painter:
    def __init__(self, canvas: PILImage.Image) -> None:
        from PIL import ImageDraw, ImageFont

        self.canvas = canvas
        self.draw: ImageDraw.ImageDraw = ImageDraw.Draw(canvas)
        w, h = canvas.size
        self.w, self.h = w, h
        short = min(w, h)
        # A label is ~3.5 % of the short side: legible on a 1280x720 frame viewed whole.
        self.font_size = max(11, round(short / 28))
        self.font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(
            size=self.font_size
        )
        self.line = max(1, round(short / 300))
        self.radius = max(3, round(short / 110))
        self.pad = max(2, self.font_size // 5)
        self.colours: dict[str, RGB] = {}

    def colour(self, label: str) -> RGB:
        if label not in self.colours:
            self.colours[label] = colour_of_index(len(self.colours))
        return self.colours[label]

    def text_size(self, text: str) -> tuple[int, int, int, int]:
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        return right - left, bottom - top, left, top

    def tag(self, x: float, y: float, text: str, colour: RGB) -> None:
        """A filled label whose bottom-left is at (x, y), kept inside the image."""
        if not text:
            return
        tw, th, left, top = self.text_size(text)
        pad = self.pad
        bx = min(max(0.0, x), max(0.0, self.w - tw - 2 * pad))
        by = y - th - 2 * pad
        if by < 0:
            by = y
        self.draw.rectangle((bx, by, bx + tw + 2 * pad, by + th + 2 * pad), fill=colour)
        self.draw.text((bx + pad - left, by + pad - top), text, fill=_ink(colour), font=self.font)

    def legend(self, counts: Counter[str]) -> None:
        """Colour, label and count of each label, top-left, on a translucent panel."""
        from PIL import Image as PILImageModule
        from PIL import ImageDraw, ImageFont

        # Smaller than a box label: the legend lists up to LEGEND_ROWS + 2 lines.
        self.font_size = max(11, round(min(self.w, self.h) / 40))
        self.font = ImageFont.load_default(size=self.font_size)
        self.pad = max(2, self.font_size // 5)

        rows = [(label, n) for label, n in counts.most_common()]
        shown = rows[:LEGEND_ROWS] if len(rows) > LEGEND_ROWS + 1 else rows
        texts = [f"{label}: {n}" for label, n in shown]  # the default font has no "×"
        hidden = rows[len(shown) :]
        if hidden:
            texts.append(f"+{len(hidden)} more labels ({sum(n for _, n in hidden)} results)")
        total = sum(counts.values())
        texts.insert(0, f"{total} found")
        sizes = [self.text_size(t) for t in texts]
        row_h = max(th for _, th, _, _ in sizes) + 2 * self.pad
        swatch = row_h - 2 * self.pad
        width = max(tw for tw, _, _, _ in sizes) + swatch + 4 * self.pad
        height = row_h * len(texts) + self.pad
        width, height = min(width, self.w), min(height, self.h)
        panel = PILImageModule.new("RGBA", (width, height), (255, 255, 255, 215))
        base = self.canvas.convert("RGBA")
        base.alpha_composite(panel, (0, 0))
        self.canvas.paste(base.convert("RGB"))
        draw = ImageDraw.Draw(self.canvas)
        for i, (text, (_, _, left, top)) in enumerate(zip(texts, sizes, strict=True)):
            y = self.pad + i * row_h
            x = self.pad
            label = shown[i - 1][0] if 1 <= i <= len(shown) else None
            if label is not None:
                c = self.colours[label]
                draw.rectangle((x, y + self.pad, x + swatch, y + self.pad + swatch), fill=c)
            tx = x + swatch + 2 * self.pad
            draw.text((tx - left, y + self.pad - top), text, fill=(20, 20, 20), font=self.font)


def annotate(
    image: Any, *, boxes: Sequence[Detection] = (), points: Sequence[Point] = ()
) -> PILImage.Image:
    """A copy of ``image`` with ``boxes`` and ``points`` drawn, labelled or with a legend.

    Example:
        >>> from PIL import Image
        >>> from vlgate.grounding import Point
        >>> annotate(Image.new("RGB", (32, 32)), points=[Point("a", (3.0, 4.0))]).size
        (32, 32)
    """
    painter = _Painter(_to_pil(image).copy())
    draw = painter.draw
    counts = Counter([*(d.label for d in boxes), *(p.label for p in points)])
    for label in counts:  # colours in order of first appearance
        painter.colour(label)
    labelled = len(boxes) + len(points) <= LABEL_LIMIT
    for d in boxes:
        colour = painter.colour(d.label)
        draw.rectangle(d.xyxy, outline=colour, width=painter.line)
        if labelled:
            text = d.label if d.score is None else f"{d.label} {d.score:.2f}"
            painter.tag(d.xyxy[0], d.xyxy[1], text, colour)
    r = painter.radius
    for p in points:
        colour = painter.colour(p.label)
        x, y = p.xy
        draw.ellipse(
            (x - r, y - r, x + r, y + r),
            fill=colour,
            outline=(255, 255, 255),
            width=max(1, painter.line // 2),
        )
        if labelled:
            painter.tag(x + r, y - r, p.label, colour)
    if not labelled:
        painter.legend(counts)
    return painter.canvas
