"""The native grounding prompt of each family, filled in from its convention's templates."""

from __future__ import annotations

from ..errors import ConfigError
from .conventions import Convention, get_convention

__all__ = ["detection_prompt", "point_prompt"]

DEFAULT_TARGET = "object"


def _clean_target(target: str) -> str:
    if not isinstance(target, str):
        raise ConfigError(f"target must be a string, got {type(target).__name__}")
    return " ".join(target.split())


def _size_clause(conv: Convention, sent_size: tuple[int, int] | None) -> str:
    if conv.scale != "pixels" or sent_size is None:
        return ""
    w, h = sent_size
    return f" The image is {w} pixels wide and {h} pixels high."


def detection_prompt(
    convention: str | Convention, target: str, sent_size: tuple[int, int] | None = None
) -> str:
    """The prompt asking ``convention``'s family for boxes around ``target``.

    ``sent_size`` is the (w, h) the model sees; pixel-frame families are told it.
    Raises :class:`~vlgate.errors.ConfigError` for families that only point (Molmo).

    Example:
        >>> detection_prompt("paligemma", "cat")
        'detect cat'
        >>> detection_prompt("florence-2", "")
        '<OD>'
    """
    conv = get_convention(convention)
    if not conv.boxes or not conv.detect_template:
        raise ConfigError(
            f"the {conv.name!r} grounding convention has no boxes; use point() instead"
        )
    clean = _clean_target(target)
    if not clean and conv.detect_all_template:
        return conv.detect_all_template
    return conv.detect_template.format(
        target=clean or DEFAULT_TARGET, size_clause=_size_clause(conv, sent_size)
    )


def point_prompt(
    convention: str | Convention, target: str, sent_size: tuple[int, int] | None = None
) -> str:
    """The prompt asking ``convention``'s family for points on ``target``.

    Families without native points are asked for boxes; :func:`parse_points` then returns the
    box centres.

    Example:
        >>> point_prompt("molmo", "mug")
        'Point to every mug in the image.'
    """
    conv = get_convention(convention)
    if not conv.point_template:
        return detection_prompt(conv, target, sent_size)
    clean = _clean_target(target) or DEFAULT_TARGET
    return conv.point_template.format(target=clean, size_clause=_size_clause(conv, sent_size))
