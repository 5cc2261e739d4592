"""A seeded corpus of hostile model answers, for parser tests and ``benchmarks/hostile.py``.

Each shape is built to hit a parser's worst case at a given size: runs of openers and quotes,
repeated reference/box tags left open, location tokens without end, huge numbers and labels,
truncated object lists, and seeded random soup over every syntax's tokens.

Example:
    >>> corpus = hostile_answers(2048, seed=1)
    >>> all(len(text) <= 2048 for _, text in corpus) and len(corpus) > 20
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["SHAPES", "TOKENS", "hostile_answers"]

TOKENS = [
    *list("[]{}(),:;\"' 0123456789.-\n`<>|/_=xyabcdeflmnoprst"),
    "<loc_",
    "<loc0",
    "<loc0123>",
    "<loc_12>",
    "<|det|>",
    "<|/det|>",
    "<|ref|>",
    "<|/ref|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<box>",
    "</box>",
    "<ref>",
    "</ref>",
    "<point ",
    'x="',
    "bbox_2d",
    "box_2d",
    '"label"',
    "point",
    "```json",
    "<|begin_of_box|>",
    "<|end_of_box|>",
    "coords=",
    "NaN",
    "Infinity",
    "1e999",
]
"""The alphabet of the random soup: characters and the markers of every syntax."""


def _rep(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


SHAPES: dict[str, Callable[[int], str]] = {
    "open-brackets": _rep("["),
    "open-braces": _rep("{"),
    "open-parens": _rep("("),
    "bracket-single-quote": _rep("['"),
    "bracket-double-quote": _rep('["'),
    "quotes": _rep('"'),
    "apostrophes-in-list": lambda n: "[" + _rep("it's ")(n - 1),
    "commas-in-list": lambda n: "[" + _rep(",")(n - 1),
    "numbers-in-list": lambda n: "[" + _rep("1,")(n - 1),
    "nested-numbers": _rep("[1,"),
    "dict-keys-no-colon": _rep('{"a" '),
    "dict-open-values": _rep('{"a":['),
    "objects-truncated": lambda n: _rep('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, ')(n),
    "flat-objects-truncated": lambda n: (
        "[" + _rep('{"bbox_2d": [1, 2, 3, 4], "label": "a"}, ')(n - 1)
    ),
    "label-first-arrays": lambda n: "[" + _rep('["cup", 1, 2, 3, 4], ')(n - 1),
    "huge-number": lambda n: '[{"bbox_2d": [' + "9" * max(1, n - 40) + ', 1, 2, 3], "label": "a"}]',
    "huge-label": lambda n: '[{"label": "' + "a" * max(1, n - 40) + '", "bbox_2d": [1, 2, 3, 4]}]',
    "digits": _rep("9"),
    "fences": _rep("```"),
    "fence-json-open": _rep("```json\n[{"),
    "spaces-then-marker": lambda n: " " * max(0, n - 6) + "<box>(",
    "ref-open": _rep("<ref>"),
    "ref-box-open": _rep("<ref>a</ref><box>[["),
    "deepseek-det-open": _rep("<|det|>[["),
    "deepseek-ref-open": _rep("<|ref|>a"),
    "qwen2-ref-open": _rep("<|object_ref_start|>"),
    "qwen2-pairs": _rep("(1,2),(3,"),
    "qwen2-box-open": _rep("<|box_start|>(1,2),("),
    "glm-box-open": _rep("<|begin_of_box|>["),
    "glm-json-open": _rep('<|begin_of_box|>[{"label": "a", "bbox_2d": [1, 2'),
    "paligemma-locs": _rep("<loc0001>"),
    "paligemma-five": _rep("<loc0001><loc0002><loc0003><loc0004><loc0005> a ; "),
    "florence-locs": _rep("<loc_1>"),
    "florence-label-locs": lambda n: "a" * max(0, n - 14) + "<loc_1><loc_2>",
    "molmo-point-open": _rep('<point x="1" '),
    "molmo-coords": lambda n: '<points coords="' + _rep("1 2 3 ")(max(0, n - 30)) + '">a</points>',
    "xml-attrs": lambda n: "<point " + _rep('a="1" ')(max(0, n - 8)) + ">",
    "close-brackets": _rep("]"),
    "lt-runs": _rep("<"),
    "colons": lambda n: "{" + _rep('"a":')(n - 1),
}
"""Hostile answer shapes by name; each takes the size in characters."""


def hostile_answers(size: int, seed: int = 0, soups: int = 8) -> list[tuple[str, str]]:
    """``(name, text)`` for every shape at ``size`` characters, plus ``soups`` random soups.

    Example:
        >>> dict(hostile_answers(8))["open-brackets"]
        '[[[[[[[['
    """
    out = [(name, make(size)[:size]) for name, make in SHAPES.items()]
    rng = random.Random(seed)
    for i in range(soups):
        parts: list[str] = []
        total = 0
        while total < size:
            tok = rng.choice(TOKENS)
            parts.append(tok)
            total += len(tok)
        out.append((f"soup-{i}", "".join(parts)[:size]))
    return out
