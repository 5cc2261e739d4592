"""Boxes and points in JSON answers: objects, wrappers, label maps, label-first arrays.

Shapes read (keys from :mod:`vlgate.grounding.labels`):

- ``[{"bbox_2d": [x1, y1, x2, y2], "label": "cup"}]`` and every label/box/point key in the tables;
- wrappers ``{"objects": [...]}``, label maps ``{"cup": [x1, y1, x2, y2]}``;
- several boxes or points under one label: ``{"label": "cup", "bboxes": [[..], [..]]}``;
- label-first and label-last arrays ``["cup", x1, y1, x2, y2]``, ``[x, y, "cup"]``,
  ``["cup", [x1, y1, x2, y2]]``;
- named corners ``{"x_min": .., ...}`` and ``{"x": .., "y": ..}`` points.

Something that is meant as an item but cannot be read (a box key with three numbers, an object
with a label and no coordinates, a non-finite value) is returned as a dropped :class:`Raw`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..jsonparse import json_candidates
from .conventions import Convention
from .labels import (
    BOX_KEYS,
    CORNER_KEYS,
    EITHER_KEYS,
    ITEM_LABEL_KEYS,
    LABEL_KEYS,
    MULTI_BOX_KEYS,
    MULTI_POINT_KEYS,
    POINT_KEYS,
    SCORE_KEYS,
    TOOL_CALL_KEYS,
    WRAPPER_KEYS,
    clean_label,
)
from .raw import MAX_ITEMS, Kind, Raw, drop, to_float

__all__ = ["parse_json", "walk"]

MAX_DEPTH = 12
_NESTED_LABEL_KEYS = ("en", "label", "name", "text")
_SEVERAL = ("outer", "span", "cut", "object")  # candidates read together with those after
_MAX_SCALARS = 64  # longer flat lists are not one item
MAX_VISITS = 5_000
"""JSON values looked at per walk; a bigger answer is read up to there."""
_MAX_CANDIDATES = 64


def parse_json(text: str, conv: Convention) -> list[Raw]:
    """Items of both kinds from the first JSON in ``text`` that holds any.

    Several balanced spans in chatter (``["cup", ..] and ["plate", ..]``) are read together; the
    complete part of a truncated answer counts its cut-off object as dropped.
    """
    chosen: str | None = None
    items: list[Raw] = []
    fallback: list[Raw] = []
    for n, ((group, kind), value) in enumerate(json_candidates(text)):
        if n >= _MAX_CANDIDATES:
            break
        if chosen is not None and (group != chosen or kind not in _SEVERAL):
            break
        found = walk(value, conv, "box") + walk(value, conv, "point")
        if kind == "cut":
            found += [drop("box"), drop("point")]
        if chosen is not None:
            items.extend(found)
        elif any(not i.bad for i in found):
            items = found
            if kind not in _SEVERAL:
                break
            chosen = group
        elif found and not fallback:
            fallback = found
        if len(items) >= MAX_ITEMS:
            break
    return items or fallback


def walk(value: Any, conv: Convention, want: Kind, label: str | None = None) -> list[Raw]:
    """Items of kind ``want`` in a JSON value (depth-first, bounded)."""
    out: list[Raw] = []
    _walk(value, conv, want, label, 0, out, [MAX_VISITS])
    return out[:MAX_ITEMS]


def _lower(d: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).lower() if not isinstance(k, str) else k.lower(): v for k, v in d.items()}


def _label_of(d: dict[str, Any], conv: Convention) -> str | None:
    if any(k in d for k in TOOL_CALL_KEYS):
        return None
    for key in conv.label_keys + LABEL_KEYS:
        if key in d:
            value = d[key]
            if isinstance(value, dict):
                # {"names": {"zh": "米饭", "en": "Rice"}}: English, then any text (Qwen3-VL).
                value = next(
                    (v for k, v in _lower(value).items() if k in _NESTED_LABEL_KEYS), None
                ) or next((v for v in value.values() if isinstance(v, str)), None)
            label = clean_label(value)
            if label is not None:
                return label
    return None


def _score_of(d: dict[str, Any]) -> float | None:
    for key in SCORE_KEYS:
        if key in d:
            score = to_float(d[key])
            if score is not None:
                return score
    return None


def _flat(value: Any, limit: int = 16) -> list[float | None] | None:
    """The numbers of a flat list (``None`` for a non-finite one), or None if it is not one."""
    if not isinstance(value, (list, tuple)) or len(value) > limit:
        return None
    out: list[float | None] = []
    for v in value:
        if isinstance(v, (list, tuple, dict, bool)):
            return None
        f = to_float(v)
        if f is None and not (v is None or isinstance(v, (int, float))):
            return None  # a word: not a number list
        out.append(f)
    return out


def _group(nums: list[float | None], size: int) -> tuple[float, ...] | None:
    if len(nums) != size or any(n is None for n in nums):
        return None
    return tuple(n for n in nums if n is not None)


def _groups(value: Any, size: int) -> tuple[list[tuple[float, ...]], int]:
    """Boxes (size 4) or points (size 2) held under a coordinate key, and how many were bad:
    ``[..]``, ``[[..], [..]]``, ``[[x1, y1], [x2, y2]]`` (one box), ``{"x": .., "y": ..}``."""
    if isinstance(value, dict):
        g = _dict_coords(_lower(value), size)
        return ([g], 0) if g is not None else ([], 1)
    nums = _flat(value)
    if nums is not None:
        g = _group(nums, size)
        return ([g], 0) if g is not None else ([], 1)
    if not isinstance(value, (list, tuple)) or not value:
        return [], 1
    if size == 4 and len(value) == 2:
        pairs = [_flat(v) for v in value]
        if all(p is not None and len(p) == 2 for p in pairs):
            joined = [n for p in pairs if p is not None for n in p]
            g = _group(joined, 4)
            return ([g], 0) if g is not None else ([], 1)
    good: list[tuple[float, ...]] = []
    bad = 0
    for v in value[:MAX_ITEMS]:
        if isinstance(v, dict):
            g = _dict_coords(_lower(v), size)
        else:
            sub = _flat(v)
            g = _group(sub, size) if sub is not None else None
        if g is None:
            bad += 1
        else:
            good.append(g)
    return good, bad


def _dict_coords(d: dict[str, Any], size: int) -> tuple[float, ...] | None:
    if size == 2:
        x, y = to_float(d.get("x")), to_float(d.get("y"))
        return (x, y) if x is not None and y is not None else None
    return _corners(d)


def _corners(d: dict[str, Any]) -> tuple[float, ...] | None:
    for keys in CORNER_KEYS:
        if keys[0] in d:
            vals = [to_float(d.get(k)) for k in keys]
            if all(v is not None for v in vals):
                return tuple(v for v in vals if v is not None)
    return None


def _keys(conv: Convention, want: Kind) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(single keys, multi keys, keys of the other kind) for ``want``."""
    if want == "box":
        return (
            conv.box_keys + BOX_KEYS,
            MULTI_BOX_KEYS,
            conv.point_keys + POINT_KEYS + MULTI_POINT_KEYS,
        )
    return (
        conv.point_keys + POINT_KEYS,
        MULTI_POINT_KEYS,
        conv.box_keys + BOX_KEYS + MULTI_BOX_KEYS,
    )


def _object(d: dict[str, Any], conv: Convention, want: Kind, label: str | None) -> list[Raw] | None:
    """Items of one JSON object, or None when it is not an object with coordinates."""
    size = 4 if want == "box" else 2
    own = _label_of(d, conv)
    lab = own if own is not None else label
    score = _score_of(d)
    single, multi, other = _keys(conv, want)
    for key in single + multi:
        if key in d and d[key] is not None and not isinstance(d[key], str):
            good, bad = _groups(d[key], size)
            return [Raw(want, g, lab, score) for g in good] + [drop(want)] * bad
    for key in EITHER_KEYS:
        nums = _flat(d.get(key))
        if nums is not None:
            if len(nums) == 6 - size:
                return []  # the other kind
            g = _group(nums, size)
            return [Raw(want, g, lab, score)] if g is not None else [drop(want)]
    if want == "box":
        corners = _corners(d)
        if corners is not None:
            # Named corners are x-first whatever the convention's order; store them in its order.
            a, b, c, e = corners
            values = (b, a, e, c) if conv.order == "yx" else corners
            return [Raw("box", values, lab, score)]
    else:
        x, y = to_float(d.get("x")), to_float(d.get("y"))
        if x is not None and y is not None:
            return [Raw("point", (y, x) if conv.order == "yx" else (x, y), lab, score)]
    if any(k in d for k in other) or (want == "point" and _corners(d) is not None):
        return []  # an item of the other kind
    if any(k in d for k in ITEM_LABEL_KEYS) and not any(
        isinstance(v, (list, dict)) for v in d.values()
    ):
        return [drop(want)]  # a labelled object without coordinates
    return None


def _scalars(
    value: list[Any], conv: Convention, want: Kind, label: str | None
) -> Iterator[Raw] | None:
    """A list of scalars: bare numbers, or a label first or last (``["cup", x1, y1, x2, y2]``)."""
    size = 4 if want == "box" else 2
    lab = label
    nums = _flat(value, limit=64)
    if nums is None and value:
        for end in (0, -1):
            if isinstance(value[end], str) and to_float(value[end]) is None:
                rest = value[1:] if end == 0 else value[:-1]
                nums = _flat(rest, limit=64)
                lab = clean_label(value[end]) or label
                break
    if nums is None or not nums:
        return None
    if len(nums) == 6 - size and all(n is not None for n in nums):
        return iter(())  # the other kind
    g = _group(nums, size)
    return iter([Raw(want, g, lab)] if g is not None else [drop(want)])


def _walk(
    value: Any,
    conv: Convention,
    want: Kind,
    label: str | None,
    depth: int,
    out: list[Raw],
    visits: list[int],
) -> None:
    visits[0] -= 1
    if depth > MAX_DEPTH or len(out) >= MAX_ITEMS or visits[0] < 0:
        return
    if isinstance(value, dict):
        d = _lower(value)
        found = _object(d, conv, want, label)
        if found is not None:
            out.extend(found)
            return
        own = _label_of(d, conv)
        for key, v in list(d.items())[:MAX_ITEMS]:
            if not isinstance(v, (list, dict)) or key in EITHER_KEYS:
                continue
            # {"cup": [x1, y1, x2, y2]}: a key that is not a wrapper labels the coordinates it
            # holds; objects below keep their own labels, else inherit this one's.
            numeric = isinstance(v, list) and not any(isinstance(x, dict) for x in v[:8])
            keyed = numeric and key not in WRAPPER_KEYS
            hint = own or (clean_label(key) if keyed else label)
            _walk(v, conv, want, hint, depth + 1, out, visits)
            if len(out) >= MAX_ITEMS or visits[0] < 0:
                return
        return
    if isinstance(value, (list, tuple)):
        items = (
            _scalars(list(value), conv, want, label)
            if len(value) <= _MAX_SCALARS and not _has_container(value)
            else None
        )
        if items is not None:
            out.extend(items)
            return
        lab = label
        rest: Any = value
        if value and isinstance(value[0], str) and to_float(value[0]) is None:
            # ["cup", [x1, y1, x2, y2], [..]]: a label then its boxes.
            lab, rest = clean_label(value[0]) or label, value[1:]
        for v in rest[:MAX_ITEMS]:
            _walk(v, conv, want, lab, depth + 1, out, visits)
            if len(out) >= MAX_ITEMS or visits[0] < 0:
                return


def _has_container(value: Any) -> bool:
    return any(isinstance(v, (list, tuple, dict)) for v in value)
