"""One box or point as the model wrote it, before conversion; and bounded number reading."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["box", "point"]

MAX_ITEMS = 1_000
"""Results (and dropped items) read from one answer at most."""

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_MAX_NUMBER_CHARS = 64  # longer digit strings are not coordinates; read as "not a number"


@dataclass(frozen=True)
class Raw:
    """A box (4 values) or point (2 values) as written, in the convention's axis order.

    ``bad`` marks something that looked like an item but cannot be read (wrong number of
    coordinates, a truncated or non-finite value, a required label missing): it is counted in
    ``dropped`` and never becomes a result.
    """

    kind: Kind
    values: tuple[float, ...] = ()
    label: str | None = None
    score: float | None = None
    scale: float | None = None  # overrides the convention's scale (Molmo2 coords= is 0-1000)
    bad: bool = False


def drop(kind: Kind) -> Raw:
    return Raw(kind, bad=True)


def kind_of(values: tuple[float, ...]) -> Kind:
    return "point" if len(values) == 2 else "box"


def to_float(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string; ``None`` for anything else.

    Example:
        >>> to_float(10 ** 400), to_float("12.5%"), to_float(float("inf")), to_float(True)
        (None, 12.5, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            f = float(value)
        except OverflowError:
            return None
    elif isinstance(value, float):
        f = value
    elif isinstance(value, str):
        s = value.strip().rstrip("%").strip()
        if len(s) > _MAX_NUMBER_CHARS or NUMBER.fullmatch(s) is None:
            return None
        f = float(s)
    else:
        return None
    return f if math.isfinite(f) else None


def numbers(text: str) -> list[float | None]:
    """Every number in ``text``; ``None`` for one that is not finite or absurdly long."""
    return [to_float(m) for m in NUMBER.findall(text)]
