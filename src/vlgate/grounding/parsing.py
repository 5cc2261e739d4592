"""Turn a model's grounding answer into boxes and points in pixels of the original image.

Pure functions, no ``eval``. An answer with nothing usable in it (a refusal, chatter, broken
JSON, an empty list) parses to an empty result, never an exception.

The rules:

- **Strict where guessing is wrong.** A box with other than four numbers, a point with other
  than two, a non-finite value, an object with a label but no coordinates, a PaliGemma location
  run without its label, and the object a truncated answer was cut off in are *dropped* and
  counted in the result's ``dropped``; so ``len(result) == 0 and result.dropped == 0`` means the
  model found nothing, ``result.dropped > 0`` that part of the answer could not be read.
- **Bounded.** Answers are cut to :data:`~vlgate.jsonparse.MAX_CHARS` characters; every parser is
  one linear pass (a 1 MB hostile answer parses in well under 100 ms); at most
  :data:`~vlgate.grounding.raw.MAX_ITEMS` items are read; numbers beyond the float range are
  dropped rather than raising; labels are always clean strings of at most 200 characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..jsonparse import MAX_CHARS
from .conventions import Convention, Syntax, get_convention
from .jsonwalk import parse_json
from .raw import MAX_ITEMS, Kind, Raw
from .tags import (
    parse_florence,
    parse_paligemma,
    parse_qwen2_plain,
    parse_tags,
    parse_xml_points,
)
from .types import Detection, Detections, Point, Points

__all__ = ["parse_detections", "parse_points"]


# --- public functions ------------------------------------------------------------------------


def parse_detections(
    text: str,
    convention: str | Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None = None,
    *,
    default_label: str = "",
) -> Detections:
    """Boxes in ``text`` as :class:`Detections` in pixels of the original ``image_size`` (w, h).

    ``model_input_size`` is the (w, h) the model saw, for pixel-frame conventions (Qwen2.5-VL,
    Claude, GPT, pixel); it defaults to ``image_size``. Boxes are clipped to the image, inverted
    corners swapped; a missing label becomes ``default_label``. Unreadable items and zero-area
    boxes are counted in ``.dropped``.

    Example:
        >>> dets = parse_detections('[{"box_2d": [10, 20, 110, 120], "label": "cat"}]', "gemini",
        ...                         (640, 480))
        >>> dets[0].xyxy, dets.dropped
        ((12.8, 4.8, 76.8, 52.8), 0)
        >>> parse_detections('<loc0100><loc0100><loc0200><loc0200><loc0300>', "paligemma",
        ...                  (640, 480)).dropped
        1
    """
    return _detections(
        _Syntaxes(text, get_convention(convention)), image_size, model_input_size, default_label
    )


def _detections(
    parsed: _Syntaxes,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None,
    default_label: str,
) -> Detections:
    conv = parsed.conv
    items, dropped = parsed.pick("box")
    out: list[Detection] = []
    for item in items:
        det = _box(item, conv, _pixels(item, conv, image_size, model_input_size, 4), default_label)
        if det is None:
            dropped += 1
        else:
            out.append(det)
    return Detections(out, image_size=tuple(image_size), dropped=dropped)  # type: ignore[arg-type]


def parse_points(
    text: str,
    convention: str | Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None = None,
    *,
    default_label: str = "",
) -> Points:
    """Points in ``text`` as :class:`Points` in pixels of the original ``image_size`` (w, h).

    When the answer (or the family) gives boxes instead, the box centres are returned.

    Example:
        >>> parse_points('<point x="50" y="25" alt="cup">cup</point>', "molmo", (640, 480))[0].xy
        (320.0, 120.0)
    """
    conv = get_convention(convention)
    size: Any = tuple(image_size)
    parsed = _Syntaxes(text, conv)
    points, dropped = parsed.pick("point")
    out: list[Point] = []
    for item in points:
        pt = _point(item, conv, _pixels(item, conv, image_size, model_input_size, 2), default_label)
        if pt is None:
            dropped += 1
        else:
            out.append(pt)
    if out:
        return Points(out, image_size=size, dropped=dropped)
    boxes = _detections(parsed, image_size, model_input_size, default_label)
    if not boxes and not boxes.dropped:
        return Points([], image_size=size, dropped=dropped)
    centres = [Point(d.label, d.center, raw=d.raw, convention=d.convention) for d in boxes]
    return Points(centres, image_size=size, dropped=boxes.dropped)


# --- conversion ------------------------------------------------------------------------------


def _axis(
    conv: Convention, item: Raw, value: float, size: int, seen: int | None, other: int
) -> float:
    if item.scale is not None and conv.scale != "pixels":
        v = value + (0.5 if conv.bin_center else 0.0)
        return v / item.scale * size
    if item.scale is not None:
        return value / item.scale * size
    return conv.to_pixels(value, size, seen, other)


def _clip(v: float, hi: int) -> float:
    return min(max(v, 0.0), float(hi))


def _pixels(
    item: Raw,
    conv: Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None,
    count: int,
) -> list[float] | None:
    """The item's ``count`` numbers as ``x, y, x, y...`` pixels of the original image, clipped
    to it; ``None`` for an unreadable item or one with another count of numbers."""
    if item.bad or len(item.values) != count:
        return None
    w, h = image_size
    mw, mh = model_input_size or image_size
    out: list[float] = []
    for a, b in zip(item.values[::2], item.values[1::2], strict=True):
        x, y = (b, a) if conv.order == "yx" else (a, b)
        out += [_clip(_axis(conv, item, x, w, mw, h), w), _clip(_axis(conv, item, y, h, mh, w), h)]
    return out


def _box(item: Raw, conv: Convention, xy: list[float] | None, label: str) -> Detection | None:
    if xy is None:
        return None
    (px1, px2), (py1, py2) = sorted(xy[0::2]), sorted(xy[1::2])
    if px2 - px1 <= 0 or py2 - py1 <= 0:
        return None
    return Detection(
        label=item.label or label,
        xyxy=(px1, py1, px2, py2),
        score=item.score,
        raw=item.values,
        convention=conv.name,
    )


def _point(item: Raw, conv: Convention, xy: list[float] | None, label: str) -> Point | None:
    if xy is None:
        return None
    return Point(
        label=item.label or label, xy=(xy[0], xy[1]), raw=item.values, convention=conv.name
    )


# --- extraction: which syntax --------------------------------------------------------------


class _Syntaxes:
    """Each syntax's items for one answer, parsed once and shared by boxes and points."""

    def __init__(self, text: Any, conv: Convention) -> None:
        ok = isinstance(text, str) and bool(text.strip())
        self.text = text[:MAX_CHARS] if ok else ""
        self.conv = conv
        self._done: dict[Syntax, list[Raw]] = {}

    def items(self, syntax: Syntax) -> list[Raw]:
        if syntax not in self._done:
            self._done[syntax] = list(_PARSERS[syntax](self.text, self.conv)) if self.text else []
        return self._done[syntax]

    def pick(self, want: Kind) -> tuple[list[Raw], int]:
        """Items of kind ``want`` from the first syntax that has any, and how many were
        dropped; with nothing readable, the drops of the first syntax that had some."""
        fallback = 0
        for syntax in self.conv.syntax:
            found = [i for i in self.items(syntax) if i.kind == want]
            good = [i for i in found if not i.bad]
            if good:
                return good[:MAX_ITEMS], len(found) - len(good)
            fallback = fallback or len(found)
        return [], fallback


def _tags(syntax: str) -> Callable[[str, Convention], Iterable[Raw]]:
    return lambda text, conv: parse_tags(syntax, text, conv)


_PARSERS: dict[Syntax, Callable[[str, Convention], Iterable[Raw]]] = {
    "json": parse_json,
    "qwen2-tokens": _tags("qwen2-tokens"),
    "qwen2-plain": parse_qwen2_plain,
    "ref-box": _tags("ref-box"),
    "deepseek-det": _tags("deepseek-det"),
    "glm-box": _tags("glm-box"),
    "paligemma-loc": parse_paligemma,
    "florence-loc": parse_florence,
    "xml-points": parse_xml_points,
}
