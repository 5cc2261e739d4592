"""Tolerant JSON extraction from model text, without ``eval``.

Models wrap JSON in code fences, chat around it, cut it off at the token limit, write Python
literals with single quotes, or leave trailing commas. :func:`extract_json` finds the JSON in all of
these in time linear in the text (one structural scan plus a bounded number of parse attempts).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

from .errors import ResponseError

__all__ = ["extract_json", "extract_json_candidates"]

# Slower fallbacks (Python literals, json_repair) only run on pieces up to this size; the
# stdlib json parser handles anything larger.
_SLOW_PARSE_LIMIT = 200_000
_MAX_SPANS = 16
_MAX_FENCES = 8

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
_STRUCTURAL = re.compile(r"[\[\]{}\"',]")
_OPENER = re.compile(r"[\[{]")
_OPENER_RUN = re.compile(r"[\[{\s]*")
_MAX_NESTING = 500  # json.loads gives up near Python's recursion limit (1000) anyway
_STRINGS = {
    '"': re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*'", re.DOTALL),
}
_TRAILING_COMMA = re.compile(r",(\s*[\]}])")
_PY_CONSTANTS = re.compile(r"\b(true|false|null)\b")


def extract_json(text: str) -> Any:
    """The first JSON value found in ``text``.

    Raises :class:`~vlgate.errors.ResponseError` (with ``raw=text``) when there is none.

    Example:
        >>> extract_json('Sure!\\n```json\\n[{"label": "cat", "bbox_2d": [1, 2, 3, 4]},]\\n```')
        [{'label': 'cat', 'bbox_2d': [1, 2, 3, 4]}]
        >>> extract_json('[{"a": 1}, {"a": 2}, {"a"')  # truncated: complete objects kept
        [{'a': 1}, {'a': 2}]
    """
    for value in extract_json_candidates(text):
        return value
    raise ResponseError("the model's answer holds no JSON", raw=text)


def extract_json_candidates(text: str) -> Iterator[Any]:
    """Every JSON value that can be recovered from ``text``, most likely first.

    Order: fenced code blocks, the whole text, each balanced ``{...}``/``[...]`` span in order
    of appearance, the complete leading part of a truncated one; then the same pieces again
    through ``json_repair`` as a last resort.

    Example:
        >>> list(extract_json_candidates("a {'x': 1} b [2, 3]"))
        [{'x': 1}, [2, 3]]
    """
    if not isinstance(text, str) or not text.strip():
        return
    pieces: list[str] = []
    seen: set[str] = set()
    for piece in _pieces(text):
        piece = piece.strip()
        if not piece or piece in seen:
            continue
        seen.add(piece)
        ok, value = _loads(piece)
        if ok:
            yield value
        else:
            pieces.append(piece)
    for piece in pieces:
        if piece[:1] in "[{" and len(piece) <= _SLOW_PARSE_LIMIT:
            ok, value = _json_repair(piece)
            if ok:
                yield value


def _pieces(text: str) -> Iterator[str]:
    for i, match in enumerate(_FENCE.finditer(text)):
        if i >= _MAX_FENCES:
            break
        body = match.group(2)
        yield body
        yield from _spans(body)
    stripped = text.strip()
    if stripped[:1] in '[{"' or stripped[:1].isdigit():
        yield stripped
    yield from _spans(text)


def _spans(text: str) -> Iterator[str]:
    spans, truncated = _scan(text)
    for start, end in spans:
        yield text[start:end]
    yield from truncated


def _loads(piece: str) -> tuple[bool, Any]:
    """Parse one piece: strict JSON, JSON without trailing commas, then a Python literal."""
    try:
        return True, json.loads(piece)
    except (ValueError, RecursionError):
        pass
    if piece[:1] not in "[{":
        return False, None
    fixed = _TRAILING_COMMA.sub(r"\1", piece)
    if fixed != piece:
        try:
            return True, json.loads(fixed)
        except (ValueError, RecursionError):
            pass
    if len(piece) > _SLOW_PARSE_LIMIT:
        return False, None
    try:
        # Only literals are accepted; json's true/false/null are mapped to Python's first.
        value = ast.literal_eval(_PY_CONSTANTS.sub(_py_constant, fixed))
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        return False, None
    if isinstance(value, (list, dict, tuple)):
        return True, _jsonable(value)
    return False, None


def _py_constant(match: re.Match[str]) -> str:
    return {"true": "True", "false": "False", "null": "None"}[match.group(1)]


def _jsonable(value: Any) -> Any:
    """Tuples and sets from a Python literal become lists, as JSON would have them."""
    if isinstance(value, (tuple, list, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    return value


def _json_repair(piece: str) -> tuple[bool, Any]:
    try:
        import json_repair
    except ImportError:  # pragma: no cover - a declared dependency
        return False, None
    try:
        value = json_repair.loads(piece)
    except Exception:  # json_repair is best effort; any failure means "not JSON"
        return False, None
    if isinstance(value, (list, dict)) and value:
        return True, value
    return False, None


def _scan(text: str) -> tuple[list[tuple[int, int]], list[str]]:
    """One linear pass: balanced top-level ``[..]``/``{..}`` spans, and for a span left open at the
    end of the text, its complete leading parts closed off (best cut first)."""
    spans: list[tuple[int, int]] = []
    stack: list[str] = []  # closers of the open brackets
    root = -1
    # Latest cut after a complete element (a closing bracket) and after a comma, as
    # (position, depth). After the latest closer only pushes happen, so stack[:depth] still holds
    # the brackets open at that cut; a comma cut is used only when it is newer than that.
    cut_close: tuple[int, int] | None = None
    cut_comma: tuple[int, int] | None = None
    pos = 0
    n = len(text)
    while pos < n:
        # Outside any structure only an opener matters: skip straight to the next one.
        m = (_STRUCTURAL if stack else _OPENER).search(text, pos)
        if m is None:
            break
        ch = m.group()
        i = m.start()
        pos = i + 1
        if ch == "[" or ch == "{":
            if not stack:
                root = i
                cut_close = cut_comma = None
            stack.append("]" if ch == "[" else "}")
            if len(stack) > _MAX_NESTING:
                # Deeper than any JSON parser accepts: not JSON. Skip the run of openers.
                stack.clear()
                run = _OPENER_RUN.match(text, pos)
                pos = run.end() if run else pos
        elif ch == "]" or ch == "}":
            if ch != stack[-1]:
                stack.clear()  # mismatched: not JSON, start over at the next opener
                continue
            stack.pop()
            if not stack:
                spans.append((root, i + 1))
                if len(spans) >= _MAX_SPANS:
                    return spans, []
            else:
                cut_close = (i + 1, len(stack))
        elif ch == ",":
            cut_comma = (i, len(stack))
        else:  # a quote inside a structure: skip the whole string
            sm = _STRINGS[ch].match(text, i)
            if sm is None:
                if ch == '"':
                    break  # truncated inside a string
                continue  # a lone apostrophe
            pos = sm.end()
    truncated: list[str] = []
    if stack:
        cuts = [cut_close]
        if cut_comma is not None and (cut_close is None or cut_comma[0] > cut_close[0]):
            cuts.append(cut_comma)
        for cut in cuts:
            if cut is not None:
                end, depth = cut
                truncated.append(text[root:end] + "".join(reversed(stack[:depth])))
    return spans, truncated
