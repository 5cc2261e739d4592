"""Grounding: boxes and points from any model family, in pixels of the original image.

Each family's coordinate convention is a record in :data:`CONVENTIONS`; :func:`detection_prompt`
and :func:`point_prompt` ask in the family's native format, and :func:`parse_detections` /
:func:`parse_points` turn the answer back into pixels.

Example:
    >>> from vlgate.grounding import parse_detections
    >>> dets = parse_detections("<loc0256><loc0256><loc0768><loc0768> cat", "paligemma", (640, 480))
    >>> dets[0].label, dets[0].xyxy
    ('cat', (160.0, 120.0, 480.0, 360.0))
"""

from __future__ import annotations

from .conventions import CONVENTIONS, Convention, get_convention
from .parsing import parse_detections, parse_points
from .prompts import detection_prompt, point_prompt
from .render import render_detections, render_points
from .types import Detection, Detections, Point, Points

__all__ = [
    "CONVENTIONS",
    "Convention",
    "Detection",
    "Detections",
    "Point",
    "Points",
    "detection_prompt",
    "get_convention",
    "parse_detections",
    "parse_points",
    "point_prompt",
    "render_detections",
    "render_points",
]
