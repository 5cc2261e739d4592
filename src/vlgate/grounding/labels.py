"""Where models put labels, scores and coordinates in JSON, and how labels are cleaned.

Data, not code paths: each tuple below lists the keys real model answers use, most common
first. A family whose answers differ adds its own keys in front through its
:class:`~vlgate.grounding.conventions.Convention` (``label_keys``, ``box_keys``, ``point_keys``).

Labels are kept verbatim apart from surrounding whitespace and quotes: control characters become
spaces, lone surrogates become U+FFFD, and a label is at most :data:`MAX_LABEL` characters. A
label is always a ``str`` (numbers are written out; anything else is no label).
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "BOX_KEYS",
    "CORNER_KEYS",
    "EITHER_KEYS",
    "ITEM_LABEL_KEYS",
    "LABEL_KEYS",
    "MAX_LABEL",
    "MULTI_BOX_KEYS",
    "MULTI_POINT_KEYS",
    "POINT_KEYS",
    "SCORE_KEYS",
    "TOOL_CALL_KEYS",
    "WRAPPER_KEYS",
    "clean_label",
    "label_from_text",
]

MAX_LABEL = 200
"""Labels longer than this many characters are cut."""

LABEL_KEYS: tuple[str, ...] = (
    "label",
    "object",
    "name",
    "category",
    "class",
    "class_name",
    "category_name",
    "object_name",
    "text",
    "text_content",  # Qwen2.5-VL OCR grounding
    "phrase",
    "description",
    "target",
    "caption",
    "type",
)
"""Keys holding an object's label, tried in order (the first string or number wins)."""

ITEM_LABEL_KEYS: tuple[str, ...] = LABEL_KEYS[:8]
"""Label keys that mark an item: an object with one of them but no coordinates is dropped."""

TOOL_CALL_KEYS: tuple[str, ...] = ("arguments", "parameters", "args")
"""An object holding one of these is a tool call (``{"name": "mobile_use", "arguments": {...}}``):
its ``name`` is a function, not a label."""

SCORE_KEYS: tuple[str, ...] = ("score", "confidence", "conf", "probability", "prob")

BOX_KEYS: tuple[str, ...] = (
    "bbox_2d",
    "box_2d",
    "bbox",
    "box",
    "bounding_box",
    "boundingbox",
    "bounding box",
    "xyxy",
    "rect",
)
"""Keys holding one box (or a list of boxes under one label)."""

MULTI_BOX_KEYS: tuple[str, ...] = ("bboxes", "boxes", "bounding_boxes", "bboxes_2d")
"""Keys holding a list of boxes that share the object's label."""

POINT_KEYS: tuple[str, ...] = ("point_2d", "point", "xy", "center", "centre", "keypoint")
MULTI_POINT_KEYS: tuple[str, ...] = ("points", "points_2d", "keypoints")

EITHER_KEYS: tuple[str, ...] = ("coordinates", "coordinate", "coords", "position", "location")
"""Keys whose value is a box or a point, told apart by how many numbers it holds."""

WRAPPER_KEYS: tuple[str, ...] = (
    "objects",
    "detections",
    "results",
    "result",
    "items",
    "data",
    "annotations",
    "predictions",
    "output",
    "answer",
    "response",
    "detected_objects",
    "targets",
)
"""Keys of an object that only wraps the list of results (never a label)."""

CORNER_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("x_min", "y_min", "x_max", "y_max"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("x1", "y1", "x2", "y2"),
    ("left", "top", "right", "bottom"),
)
"""Boxes written as named corners, always x first."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_QUOTES = "\"'`“”‘’«»"
_TAG = re.compile(r"<[^<>]{0,40}>")
_EDGE_PUNCT = " \t\r\n:;,.-*`\"'“”‘’=()[]{}"


def clean_label(value: Any) -> str | None:
    """A label as a clean ``str``, or ``None`` when there is none.

    Example:
        >>> clean_label('  "red cup" '), clean_label(3), clean_label(float("nan")), clean_label([])
        ('red cup', '3', None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else None
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value[: MAX_LABEL * 4].strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    text = _CONTROL.sub(" ", text)
    text = _SURROGATE.sub("\ufffd", text).strip()
    return text[:MAX_LABEL].rstrip() or None


def label_from_text(chunk: str) -> str | None:
    """A label from free text around a box (the words before a GLM box, Florence-2 and
    PaliGemma labels): tags removed, punctuation at the edges stripped, spaces collapsed.

    Example:
        >>> label_from_text(" the cup: ")
        'the cup'
    """
    chunk = _TAG.sub(" ", chunk)
    return clean_label(" ".join(chunk.split()).strip(_EDGE_PUNCT))
