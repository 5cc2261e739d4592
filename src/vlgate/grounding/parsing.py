"""Turn a model's grounding answer into boxes and points in pixels of the original image.

Pure functions, no ``eval``, time bounded on any input. An answer with nothing usable in it
(a refusal, chatter, broken JSON, an empty list) parses to ``[]``, never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ..jsonparse import extract_json_candidates
from .conventions import Convention, Syntax, get_convention
from .types import Detection, Point

__all__ = ["parse_detections", "parse_points"]

Kind = Literal["box", "point"]
MAX_TEXT = 2_000_000
"""Longer answers are cut to this many characters before parsing."""
MAX_ITEMS = 10_000
MAX_DEPTH = 12
MAX_LABEL = 200


@dataclass(frozen=True)
class _Raw:
    """One box (4 values) or point (2 values) as written, in the convention's axis order."""

    kind: Kind
    values: tuple[float, ...]
    label: str | None = None
    score: float | None = None
    scale: float | None = None  # overrides the convention's scale (Molmo2 coords= is 0-1000)


# --- public functions ------------------------------------------------------------------------


def parse_detections(
    text: str,
    convention: str | Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None = None,
    *,
    default_label: str = "",
) -> list[Detection]:
    """Boxes in ``text`` as :class:`Detection` in pixels of the original ``image_size`` (w, h).

    ``model_input_size`` is the (w, h) the model saw, for pixel-frame conventions (Qwen2.5-VL,
    Claude, GPT, pixel); it defaults to ``image_size``. Boxes are clipped to the image, inverted
    corners swapped, zero-area boxes dropped; a missing label becomes ``default_label``.

    Example:
        >>> parse_detections('[{"box_2d": [10, 20, 110, 120], "label": "cat"}]', "gemini",
        ...                  (640, 480))[0].xyxy
        (12.8, 4.8, 76.8, 52.8)
    """
    conv = get_convention(convention)
    items = _raw_items(text, conv, "box")
    out: list[Detection] = []
    for item in items:
        det = _to_detection(item, conv, image_size, model_input_size, default_label)
        if det is not None:
            out.append(det)
    return out


def parse_points(
    text: str,
    convention: str | Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None = None,
    *,
    default_label: str = "",
) -> list[Point]:
    """Points in ``text`` as :class:`Point` in pixels of the original ``image_size`` (w, h).

    When the answer (or the family) gives boxes instead, the box centres are returned.

    Example:
        >>> parse_points('<point x="50" y="25" alt="cup">cup</point>', "molmo", (640, 480))[0].xy
        (320.0, 120.0)
    """
    conv = get_convention(convention)
    points, boxes = _raw_points_or_boxes(text, conv)
    out: list[Point] = []
    for item in points:
        pt = _to_point(item, conv, image_size, model_input_size, default_label)
        if pt is not None:
            out.append(pt)
    if out:
        return out
    for item in boxes:
        det = _to_detection(item, conv, image_size, model_input_size, default_label)
        if det is not None:
            out.append(Point(det.label, det.center, raw=det.raw, convention=det.convention))
    return out


# --- conversion ------------------------------------------------------------------------------


def _finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _axis(
    conv: Convention, item: _Raw, value: float, size: int, seen: int | None, other: int
) -> float:
    if item.scale is not None and conv.scale != "pixels":
        v = value + (0.5 if conv.bin_center else 0.0)
        return v / item.scale * size
    if item.scale is not None:
        return value / item.scale * size
    return conv.to_pixels(value, size, seen, other)


def _clip(v: float, hi: int) -> float:
    return min(max(v, 0.0), float(hi))


def _to_detection(
    item: _Raw,
    conv: Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None,
    default_label: str,
) -> Detection | None:
    if item.kind != "box" or len(item.values) != 4 or not _finite(item.values):
        return None
    w, h = image_size
    mw, mh = model_input_size or image_size
    a, b, c, d = item.values
    x1, y1, x2, y2 = (b, a, d, c) if conv.order == "yx" else (a, b, c, d)
    px1 = _axis(conv, item, x1, w, mw, h)
    px2 = _axis(conv, item, x2, w, mw, h)
    py1 = _axis(conv, item, y1, h, mh, w)
    py2 = _axis(conv, item, y2, h, mh, w)
    px1, px2 = sorted((_clip(px1, w), _clip(px2, w)))
    py1, py2 = sorted((_clip(py1, h), _clip(py2, h)))
    if px2 - px1 <= 0 or py2 - py1 <= 0:
        return None
    return Detection(
        label=item.label if item.label else default_label,
        xyxy=(px1, py1, px2, py2),
        score=item.score,
        raw=item.values,
        convention=conv.name,
    )


def _to_point(
    item: _Raw,
    conv: Convention,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None,
    default_label: str,
) -> Point | None:
    if item.kind != "point" or len(item.values) != 2 or not _finite(item.values):
        return None
    w, h = image_size
    mw, mh = model_input_size or image_size
    a, b = item.values
    x, y = (b, a) if conv.order == "yx" else (a, b)
    px = _clip(_axis(conv, item, x, w, mw, h), w)
    py = _clip(_axis(conv, item, y, h, mh, w), h)
    return Point(
        label=item.label if item.label else default_label,
        xy=(px, py),
        raw=item.values,
        convention=conv.name,
    )


# --- extraction: which syntax --------------------------------------------------------------


def _raw_items(text: Any, conv: Convention, want: Kind) -> list[_Raw]:
    if not isinstance(text, str) or not text.strip():
        return []
    text = text[:MAX_TEXT]
    for syntax in conv.syntax:
        items = [i for i in _PARSERS[syntax](text, conv) if i.kind == want]
        if items:
            return items[:MAX_ITEMS]
    return []


def _raw_points_or_boxes(text: Any, conv: Convention) -> tuple[list[_Raw], list[_Raw]]:
    """Points from the first syntax that has any; else boxes (for their centres), in one pass."""
    if not isinstance(text, str) or not text.strip():
        return [], []
    text = text[:MAX_TEXT]
    boxes: list[_Raw] = []
    for syntax in conv.syntax:
        items = list(_PARSERS[syntax](text, conv))
        points = [i for i in items if i.kind == "point"]
        if points:
            return points[:MAX_ITEMS], []
        if not boxes:
            boxes = [i for i in items if i.kind == "box"][:MAX_ITEMS]
    return [], boxes


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INNER_LIST = re.compile(r"[\[(]([^\[\]()]*)[\])]")


def _numbers(text: str) -> list[float]:
    return [float(m) for m in _NUMBER.findall(text)]


def _groups(content: str) -> Iterator[tuple[float, ...]]:
    """Boxes/points in a tag body: innermost ``[..]`` lists of 4 (or 2) numbers; a body of bare
    numbers is read four at a time. Lists of other lengths are dropped (DeepSeek-VL2 #96)."""
    lists = _INNER_LIST.findall(content)
    if lists:
        # Qwen-VL v1 / Qwen2 pairs "(x1,y1),(x2,y2)" join up into one box.
        nums_per = [_numbers(s) for s in lists]
        if all(len(n) == 2 for n in nums_per) and len(nums_per) % 2 == 0 and "(" in content:
            for i in range(0, len(nums_per), 2):
                yield (*nums_per[i], *nums_per[i + 1])
            return
        for n in nums_per:
            if len(n) in (2, 4):
                yield tuple(n)
        return
    nums = _numbers(content)
    if len(nums) == 2:
        yield tuple(nums)
        return
    for i in range(0, len(nums) - 3, 4):
        yield tuple(nums[i : i + 4])


def _kind(values: tuple[float, ...]) -> Kind:
    return "point" if len(values) == 2 else "box"


def _clean_label(label: str | None) -> str | None:
    if label is None:
        return None
    label = re.sub(r"<[^<>]{0,40}>", " ", label)
    label = label.strip(" \t\r\n:;,.-*`\"'")
    label = " ".join(label.split())
    return label[:MAX_LABEL] or None


def _label_before(text: str, start: int, lo: int) -> str | None:
    """The few words right before ``start`` (after ``lo``), used as an untagged label."""
    chunk = text[max(lo, start - MAX_LABEL) : start].rstrip(" \t:=-")
    chunk = re.split(r"[\n;,.:!?)\]>]", chunk)[-1]
    return _clean_label(chunk)


# --- the syntaxes ----------------------------------------------------------------------------

# Every pattern starts with a literal so a failed match costs O(1) per position (no leading \s*).
_QWEN2 = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>[^<]{0,200}?)<\|object_ref_end\|>\s*)?"
    r"(?:<\|box_start\|>\s*)?"
    r"\(\s*(?P<a>[-+]?[\d.]+)\s*,\s*(?P<b>[-+]?[\d.]+)\s*\)\s*,\s*"
    r"\(\s*(?P<c>[-+]?[\d.]+)\s*,\s*(?P<d>[-+]?[\d.]+)\s*\)"
)


_QWEN2_TAGGED = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>[^<]{0,200}?)<\|object_ref_end\|>\s*)?"
    r"<\|box_start\|>(?P<body>[^<]{0,4000}?)(?:<\|box_end\|>|<|\Z)"
)


def _parse_qwen2(text: str, conv: Convention) -> Iterator[_Raw]:
    tagged = False
    for m in _QWEN2_TAGGED.finditer(text):
        tagged = True
        label = _clean_label(m.group("label"))
        for values in _groups(m.group("body")):
            yield _Raw(_kind(values), values, label)
    if tagged:
        return
    # Decoded with skip_special_tokens=True the markers vanish: "label(x1,y1),(x2,y2)".
    prev = 0
    for m in _QWEN2.finditer(text):
        label = m.group("label")
        if label is None:
            label = _label_before(text, m.start(), prev)
        try:
            values = tuple(float(m.group(k)) for k in "abcd")
        except ValueError:
            continue
        prev = m.end()
        yield _Raw("box", values, _clean_label(label))


_REF_BOX = re.compile(
    r"(?:<ref>(?P<label>[^<]{0,200}?)</ref>\s*)?<(?:box|point)>(?P<body>[^<]{0,4000}?)"
    r"(?:</(?:box|point)>|<|\Z)"
)


def _parse_ref_box(text: str, conv: Convention) -> Iterator[_Raw]:
    for m in _REF_BOX.finditer(text):
        label = _clean_label(m.group("label"))
        for values in _groups(m.group("body")):
            yield _Raw(_kind(values), values, label)


_DEEPSEEK = re.compile(
    r"(?:<\|ref\|>(?P<label>[^<]{0,200}?)<\|/ref\|>\s*)?<\|det\|>(?P<body>[^<]{0,4000}?)"
    r"(?:<\|/det\|>|<|\Z)"
)


def _parse_deepseek(text: str, conv: Convention) -> Iterator[_Raw]:
    for m in _DEEPSEEK.finditer(text):
        label = _clean_label(m.group("label"))
        for values in _groups(m.group("body")):
            yield _Raw(_kind(values), values, label)


_GLM = re.compile(r"<\|begin_of_box\|>(?P<body>[^<]{0,4000}?)(?:<\|end_of_box\|>|<|\Z)")


def _parse_glm(text: str, conv: Convention) -> Iterator[_Raw]:
    prev = 0
    for m in _GLM.finditer(text):
        label = _label_before(text, m.start(), prev)
        prev = m.end()
        for values in _groups(m.group("body")):
            yield _Raw(_kind(values), values, label)


_PALI = re.compile(r"((?:<loc\d{4}>\s*){4}|(?:<loc\d{4}>\s*){2})([^<;\n]{0,200})")
_PALI_LOC = re.compile(r"<loc(\d{4})>")


def _parse_paligemma(text: str, conv: Convention) -> Iterator[_Raw]:
    for m in _PALI.finditer(text):
        values = tuple(float(v) for v in _PALI_LOC.findall(m.group(1)))
        yield _Raw(_kind(values), values, _clean_label(m.group(2)))


_FLORENCE = re.compile(r"(?:<loc_\d{1,4}>\s*){2,}")
_FLORENCE_LOC = re.compile(r"<loc_(\d{1,4})>")
_FLORENCE_NOISE = re.compile(r"</?s>|<pad>|<unk>")


def _parse_florence(text: str, conv: Convention) -> Iterator[_Raw]:
    text = _FLORENCE_NOISE.sub("", text)
    prev = 0
    for m in _FLORENCE.finditer(text):
        # The label is the text between the previous run of <loc_N> tokens and this one.
        label = _clean_label(text[max(prev, m.start() - MAX_LABEL) : m.start()])
        prev = m.end()
        locs = [float(v) for v in _FLORENCE_LOC.findall(m.group())]
        if len(locs) == 2:
            yield _Raw("point", (locs[0], locs[1]), label)
            continue
        for i in range(0, len(locs) - 3, 4):
            yield _Raw("box", tuple(locs[i : i + 4]), label)


_XML_TAG = re.compile(r"<(points?)\b([^<>]{0,4000}?)(/?)>")
_XML_ATTR = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))")
_XML_CLOSE = re.compile(r"</points?>")


def _parse_xml_points(text: str, conv: Convention) -> Iterator[_Raw]:
    for m in _XML_TAG.finditer(text):
        attrs = {a.lower(): (v1 or v2 or v3) for a, v1, v2, v3 in _XML_ATTR.findall(m.group(2))}
        label = attrs.get("alt")
        if not m.group(3):
            close = _XML_CLOSE.search(text, m.end(), m.end() + MAX_LABEL + 20)
            if close is not None:
                label = _clean_label(text[m.end() : close.start()]) or label
        label = _clean_label(label)
        if "coords" in attrs:
            # Molmo2: "F id x y id x y ..." per frame (frames separated by ';'), 0-1000.
            for frame in attrs["coords"].split(";"):
                nums = _numbers(frame)[1:]
                for i in range(0, len(nums) - 2, 3):
                    yield _Raw("point", (nums[i + 1], nums[i + 2]), label, scale=1000)
            continue
        if "x" in attrs and "y" in attrs:
            values = _numbers(attrs["x"])[:1] + _numbers(attrs["y"])[:1]
            if len(values) == 2:
                yield _Raw("point", tuple(values), label)
        k = 1
        while f"x{k}" in attrs and f"y{k}" in attrs and k <= MAX_ITEMS:
            values = _numbers(attrs[f"x{k}"])[:1] + _numbers(attrs[f"y{k}"])[:1]
            if len(values) == 2:
                yield _Raw("point", tuple(values), label)
            k += 1


# --- JSON ------------------------------------------------------------------------------------

_LABEL_KEYS = ("label", "name", "class", "class_name", "category", "object", "text", "type")
_SCORE_KEYS = ("score", "confidence", "conf", "probability")
_BOX_KEYS = ("bbox_2d", "box_2d", "bbox", "box", "bounding_box", "boundingbox", "xyxy", "coords")
_POINT_KEYS = ("point_2d", "point", "points", "coordinates", "position", "xy", "center")
_WRAPPER_KEYS = (
    "objects",
    "detections",
    "results",
    "boxes",
    "bboxes",
    "items",
    "data",
    "annotations",
    "predictions",
    "output",
    "answer",
)
_CORNER_KEYS = (
    ("x_min", "y_min", "x_max", "y_max"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("x1", "y1", "x2", "y2"),
    ("left", "top", "right", "bottom"),
)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        found = _NUMBER.fullmatch(value.strip().rstrip("%"))
        return float(found.group()) if found else None
    return None


def _flat_numbers(value: Any, limit: int = 64) -> list[float] | None:
    """All numbers in a nested list, or None if it holds anything else."""
    out: list[float] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
            continue
        n = _num(v)
        if n is None or len(out) >= limit:
            return None
        out.append(n)
    return out


def _value_groups(value: Any, size: int) -> list[tuple[float, ...]]:
    """Boxes (size 4) or points (size 2) held by one JSON value: ``[..]``, ``[[..], [..]]``,
    ``[[x1, y1], [x2, y2]]`` (one box), or ``{"x": .., "y": ..}``."""
    if isinstance(value, dict):
        value = _lower(value)
        if size == 2:
            x, y = _num(_get(value, "x")), _num(_get(value, "y"))
            return [(x, y)] if x is not None and y is not None else []
        return [g for g in [_corners(value)] if g is not None]
    nums = _flat_numbers(value)
    if nums is None:
        if isinstance(value, list):
            return [g for v in value[:MAX_ITEMS] for g in _value_groups(v, size)]
        return []
    if len(nums) == size:
        return [tuple(nums)]
    if isinstance(value, list) and value and all(isinstance(v, (list, tuple)) for v in value):
        if size == 4 and len(nums) == 4:
            return [tuple(nums)]
        return [tuple(g) for g in (_flat_numbers(v) for v in value) if g and len(g) == size]
    return []


def _get(d: dict[str, Any], key: str) -> Any:
    return d.get(key)


def _lower(d: dict[Any, Any]) -> dict[str, Any]:
    """Keys lower-cased once per object, so lookups are case-insensitive."""
    return {str(k).lower(): v for k, v in d.items()}


def _corners(d: dict[str, Any]) -> tuple[float, ...] | None:
    for keys in _CORNER_KEYS:
        vals = [_num(_get(d, k)) for k in keys]
        if all(v is not None for v in vals):
            return tuple(v for v in vals if v is not None)
    return None


def _label_of(d: dict[str, Any]) -> str | None:
    for key in _LABEL_KEYS:
        v = _get(d, key)
        if isinstance(v, str):
            return _clean_label(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
    return None


def _score_of(d: dict[str, Any]) -> float | None:
    for key in _SCORE_KEYS:
        v = _num(_get(d, key))
        if v is not None:
            return v
    return None


def _items_from_dict(d: dict[str, Any], conv: Convention, want: Kind) -> list[_Raw]:
    d = _lower(d)
    label, score = _label_of(d), _score_of(d)
    size = 4 if want == "box" else 2
    keys = conv.box_keys + _BOX_KEYS if want == "box" else conv.point_keys + _POINT_KEYS
    for key in keys:
        v = _get(d, key)
        if v is None or isinstance(v, str):
            continue
        groups = _value_groups(v, size)
        if groups:
            return [_Raw(want, g, label, score) for g in groups]
    if want == "box":
        corners = _corners(d)
        if corners is not None:
            # Named corners are x-first whatever the convention's order; store them in its order.
            a, b, c, e = corners
            values = (b, a, e, c) if conv.order == "yx" else corners
            return [_Raw("box", values, label, score)]
    else:
        x, y = _num(_get(d, "x")), _num(_get(d, "y"))
        if x is not None and y is not None:
            return [_Raw("point", (y, x) if conv.order == "yx" else (x, y), label, score)]
    return []


def _walk(value: Any, conv: Convention, want: Kind, label: str | None, depth: int) -> list[_Raw]:
    """Items in a JSON value: objects with box/point keys, wrappers ({"objects": [...]}),
    label-keyed maps ({"cat": [..]}) and bare number lists."""
    if depth > MAX_DEPTH:
        return []
    size = 4 if want == "box" else 2
    if isinstance(value, dict):
        found = _items_from_dict(value, conv, want)
        if found:
            return found
        out: list[_Raw] = []
        for key, v in list(value.items())[:MAX_ITEMS]:
            if not isinstance(v, (list, dict)):
                continue
            nums = _flat_numbers(v)
            if nums is not None:
                # {"cat": [x1, y1, x2, y2]}: the key is the label, unless it is a known key
                # of the other kind (a point list when boxes are wanted).
                lowered = str(key).lower()
                if lowered in _BOX_KEYS + _POINT_KEYS + conv.box_keys + conv.point_keys:
                    continue
                hint = label if lowered in _WRAPPER_KEYS else _clean_label(str(key))
                out.extend(_Raw(want, g, hint) for g in _value_groups(v, size))
            else:
                out.extend(_walk(v, conv, want, label, depth + 1))
            if len(out) >= MAX_ITEMS:
                break
        return out
    if isinstance(value, (list, tuple)):
        nums = _flat_numbers(value)
        if nums is not None:
            return [_Raw(want, g, label) for g in _value_groups(value, size)]
        out = []
        for v in value[:MAX_ITEMS]:
            out.extend(_walk(v, conv, want, label, depth + 1))
            if len(out) >= MAX_ITEMS:
                break
        return out
    return []


def _parse_json(text: str, conv: Convention) -> Iterator[_Raw]:
    # Boxes and points are both collected; the caller keeps the kind it wants.
    for value in _limited(extract_json_candidates(text), 8):
        if not isinstance(value, (list, dict)):
            continue
        found = _walk(value, conv, "box", None, 0) + _walk(value, conv, "point", None, 0)
        if found:
            yield from found
            return


def _limited(it: Iterator[Any], n: int) -> Iterator[Any]:
    for i, v in enumerate(it):
        if i >= n:
            return
        yield v


_PARSERS: dict[Syntax, Callable[[str, Convention], Iterable[_Raw]]] = {
    "json": _parse_json,
    "qwen2-tokens": _parse_qwen2,
    "ref-box": _parse_ref_box,
    "deepseek-det": _parse_deepseek,
    "glm-box": _parse_glm,
    "paligemma-loc": _parse_paligemma,
    "florence-loc": _parse_florence,
    "xml-points": _parse_xml_points,
}
