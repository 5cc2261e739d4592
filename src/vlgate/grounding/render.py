"""Write boxes and points the way a family's model would (the inverse of parsing).

Used by the provider emulator to answer like each family, and by the round-trip tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .conventions import Convention, Syntax, get_convention
from .types import Detection, Point

__all__ = ["render_detections", "render_points"]

Size = tuple[int, int]


def _native(conv: Convention, px: float, size: int, seen: int | None, other: int) -> float | int:
    v = conv.from_pixels(px, size, seen, other)
    if conv.bin_center:
        top = int(conv.scale) - 1 if conv.scale != "pixels" else math.inf
        return int(max(0, min(math.floor(v + 0.5), top)))
    if conv.integer:
        return round(v)
    return round(v, 1 if conv.scale == 100 else 3)


def _box_values(
    conv: Convention, d: Detection, image_size: Size, seen: Size | None
) -> list[float | int]:
    w, h = image_size
    sw, sh = seen or image_size
    x1, y1, x2, y2 = d.xyxy
    xs = [_native(conv, x, w, sw, h) for x in (x1, x2)]
    ys = [_native(conv, y, h, sh, w) for y in (y1, y2)]
    if conv.order == "yx":
        return [ys[0], xs[0], ys[1], xs[1]]
    return [xs[0], ys[0], xs[1], ys[1]]


def _point_values(
    conv: Convention, p: Point, image_size: Size, seen: Size | None
) -> list[float | int]:
    w, h = image_size
    sw, sh = seen or image_size
    x = _native(conv, p.xy[0], w, sw, h)
    y = _native(conv, p.xy[1], h, sh, w)
    return [y, x] if conv.order == "yx" else [x, y]


def _nums(values: Sequence[float | int], sep: str = ", ") -> str:
    return sep.join(str(v) for v in values)


# --- one writer per syntax -------------------------------------------------------------------
# Each takes (label, values, kind) items and returns the whole answer text.

Item = tuple[str, list[float | int], str]


def _json(conv: Convention, items: list[Item]) -> str:
    entries: list[dict[str, Any]] = []
    for label, values, kind in items:
        if kind == "box" and conv.corner_keys:
            # Named corners are x-first whatever the axis order.
            xy = [values[1], values[0], values[3], values[2]] if conv.order == "yx" else values
            entry: dict[str, Any] = dict(zip(conv.corner_keys, xy, strict=True))
        elif kind == "point" and conv.xy_keys:
            xy = [values[1], values[0]] if conv.order == "yx" else values
            entry = dict(zip(conv.xy_keys, xy, strict=True))
        else:
            key = conv.box_keys[0] if kind == "box" else conv.point_keys[0]
            entry = {key: values, "label": label}
        entries.append(entry)
    kind = items[0][2] if items else "box"
    wrapper = conv.box_wrapper if kind == "box" else conv.point_wrapper
    body: Any = {wrapper: entries} if wrapper else entries
    return "```json\n" + json.dumps(body, indent=2) + "\n```"


def _qwen2(conv: Convention, items: list[Item]) -> str:
    out = []
    for label, v, _ in items:
        out.append(
            f"<|object_ref_start|>{label}<|object_ref_end|>"
            f"<|box_start|>({v[0]},{v[1]}),({v[2]},{v[3]})<|box_end|>"
        )
    return "".join(out)


def _ref_box(conv: Convention, items: list[Item]) -> str:
    return "".join(f"<ref>{label}</ref><box>[[{_nums(v)}]]</box>" for label, v, _ in items)


def _deepseek(conv: Convention, items: list[Item]) -> str:
    return "".join(f"<|ref|>{label}<|/ref|><|det|>[[{_nums(v)}]]<|/det|>" for label, v, _ in items)


def _glm(conv: Convention, items: list[Item]) -> str:
    return "\n".join(
        f"{label}: <|begin_of_box|>[{_nums(v)}]<|end_of_box|>" for label, v, _ in items
    )


def _paligemma(conv: Convention, items: list[Item]) -> str:
    parts = []
    for label, v, _ in items:
        locs = "".join(f"<loc{max(0, min(1023, int(n))):04d}>" for n in v)
        parts.append(f"{locs} {label}")
    return " ; ".join(parts)


def _florence(conv: Convention, items: list[Item]) -> str:
    return "".join(label + "".join(f"<loc_{int(n)}>" for n in v) for label, v, _ in items)


def _xml_points(conv: Convention, items: list[Item]) -> str:
    return "\n".join(
        f'<point x="{v[0]}" y="{v[1]}" alt="{label}">{label}</point>' for label, v, _ in items
    )


_WRITERS: dict[Syntax, Callable[[Convention, list[Item]], str]] = {
    "json": _json,
    "qwen2-tokens": _qwen2,
    "ref-box": _ref_box,
    "deepseek-det": _deepseek,
    "glm-box": _glm,
    "paligemma-loc": _paligemma,
    "florence-loc": _florence,
    "xml-points": _xml_points,
}


def render_detections(
    convention: str | Convention,
    detections: Iterable[Detection],
    image_size: Size,
    model_input_size: Size | None = None,
) -> str:
    """``detections`` (pixels of the original image) written as ``convention``'s model would.

    Example:
        >>> render_detections("deepseek-vl2", [Detection("cat", (0, 0, 320, 240))], (640, 480))
        '<|ref|>cat<|/ref|><|det|>[[0, 0, 500, 500]]<|/det|>'
    """
    conv = get_convention(convention)
    items = [
        (d.label, _box_values(conv, d, image_size, model_input_size), "box") for d in detections
    ]
    return _WRITERS[conv.syntax[0]](conv, items)


def render_points(
    convention: str | Convention,
    points: Iterable[Point],
    image_size: Size,
    model_input_size: Size | None = None,
) -> str:
    """``points`` (pixels of the original image) written as ``convention``'s model would.

    Families without native points get boxes of 2 % of the image around each point.

    Example:
        >>> render_points("molmo", [Point("cup", (320, 120))], (640, 480))
        '<point x="50.0" y="25.0" alt="cup">cup</point>'
    """
    conv = get_convention(convention)
    if not conv.points:
        w, h = image_size
        dx, dy = w * 0.01, h * 0.01
        boxes = [
            Detection(p.label, (p.xy[0] - dx, p.xy[1] - dy, p.xy[0] + dx, p.xy[1] + dy))
            for p in points
        ]
        return render_detections(conv, boxes, image_size, model_input_size)
    items = [
        (p.label, _point_values(conv, p, image_size, model_input_size), "point") for p in points
    ]
    point_syntaxes: tuple[Syntax, ...] = ("json", "xml-points", "glm-box")
    syntax: Syntax = next((s for s in conv.syntax if s in point_syntaxes), "json")
    return _WRITERS[syntax](conv, items)
