"""Tolerant JSON extraction from model text, without ``eval``, in time linear in the text.

Models wrap JSON in code fences, chat around it, cut it off at the token limit, write Python
literals with single quotes, leave trailing commas or unquoted keys. :func:`extract_json` finds
the JSON in all of these.

Bounds (a model's answer is attacker-controlled text):

- answers longer than :data:`MAX_CHARS` characters are cut to that length before parsing;
- the structural scan looks at :data:`MAX_SCAN_EVENTS` brackets and quotes at most;
- the lenient (pure Python) parser reads :data:`MAX_LENIENT_CHARS` characters at most per call;
  everything else runs in the C ``json`` scanner;
- numbers are bounded: ``NaN``/``Infinity`` and floats beyond the float range become ``None``;
  integers keep Python's own limit (an answer with a 4,300-digit integer is not strict JSON).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from .errors import ResponseError

__all__ = ["MAX_CHARS", "extract_json", "extract_json_candidates", "json_candidates"]

MAX_CHARS = 262_144
"""Answers are cut to this many characters (256 KiB, about 64k tokens: beyond any model's output
for a grounding or JSON answer) before any parsing; a longer JSON answer reads as truncated."""
MAX_SCAN_EVENTS = 20_000
"""Brackets and quotes looked at by the structural scans of one call; the rest of the text is
not scanned (a span still open there keeps its complete leading part, as if truncated)."""
MAX_LENIENT_CHARS = 65_536
"""Characters the lenient parser (single quotes, unquoted keys, comments) reads per call."""
_MAX_SPANS = 256
_MAX_FENCES = 8
_MAX_NESTING = 500  # json.loads gives up near Python's recursion limit anyway
_MAX_INT_DIGITS = 300  # 1e300 still fits a float: no OverflowError for anyone downstream
_MAYBE_INF = re.compile(r"[eE]\+?\d{3}|\d{300}")

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
_EVENT = re.compile(r"[\[\]{}\"']")
_OPENER = re.compile(r"[\[{]")
_OPENER_RUN = re.compile(r"[\[{\s]*")
_STRINGS = {
    '"': re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*'", re.DOTALL),
}


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

    Order: fenced code blocks (whole, then their balanced spans), the whole text, the span from
    the first opening to the last closing bracket, each balanced ``{...}``/``[...]`` span in
    order of appearance, then the complete leading part of a truncated one.

    Example:
        >>> list(extract_json_candidates("a {'x': 1} b [2, 3]"))
        [{'x': 1}, [2, 3]]
    """
    for _, value in json_candidates(text):
        yield value


def json_candidates(text: str) -> Iterator[tuple[tuple[str, str], Any]]:
    """:func:`extract_json_candidates` with where each value came from: ``(group, kind)``.

    ``group`` is ``"fence0"``.. for code fences, ``"text"`` or ``"salvage"``; ``kind`` is
    ``"whole"``, ``"outer"`` (the value starting at the first bracket), ``"span"`` (one balanced
    span among several), ``"cut"`` (the complete part of a truncated span) or ``"object"`` (a
    complete ``{...}`` rescued from text that is not JSON as a whole).

    Example:
        >>> [o for o, _ in json_candidates('x [1] y [2, 3')]
        [('text', 'outer'), ('text', 'cut')]
    """
    if not isinstance(text, str) or not text.strip():
        return
    budget = _Budget()
    seen: set[str] = set()
    text = text[:MAX_CHARS]
    for origin, piece in _pieces(text, budget):
        if origin[1] == "outer":
            # The JSON value that starts at the first bracket, chatter after it ignored: one pass
            # of the C scanner covers "JSON then chatter" and "chatter, JSON, chatter".
            ok, value, end = _prefix(piece)
            if ok:
                seen.add(piece[:end])
                yield origin, value
            continue
        piece = piece.strip()
        if not piece or piece in seen:
            continue
        seen.add(piece)
        ok, value = _loads(piece, budget)
        if ok:
            yield origin, value
    for value in _salvage(text):
        yield ("salvage", "object"), value


_MAX_SALVAGE_TRIES = 500


def _salvage(text: str) -> Iterator[Any]:
    """Complete ``{...}`` objects anywhere in text that is not JSON as a whole (a stray brace,
    a missing bracket): each object that decodes on its own, outermost first.

    Each failed attempt costs the characters the C decoder read before failing; their total is
    bounded by twice the text, so this stays linear.
    """
    budget = 2 * len(text)
    tries = 0
    pos = text.find("{")
    while pos >= 0 and budget > 0 and tries < _MAX_SALVAGE_TRIES:
        tries += 1
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            budget -= max(1, exc.pos - pos)
            pos = text.find("{", pos + 1)
            continue
        except (ValueError, RecursionError):
            return  # nesting deeper than the decoder allows: not salvageable JSON
        yield value
        pos = text.find("{", end)


class _Budget:
    """Work left for the Python-level parts of one call (scan events, lenient characters)."""

    __slots__ = ("events", "lenient")

    def __init__(self) -> None:
        self.events = MAX_SCAN_EVENTS
        self.lenient = MAX_LENIENT_CHARS


def _pieces(text: str, budget: _Budget) -> Iterator[tuple[tuple[str, str], str]]:
    for i, match in enumerate(_FENCE.finditer(text)):
        if i >= _MAX_FENCES:
            break
        body = match.group(2)
        group = f"fence{i}"
        yield (group, "whole"), body
        yield from _spans(body, group, budget)
    stripped = text.strip()
    if stripped[:1] == '"' or stripped[:1].isdigit():
        yield ("text", "whole"), stripped
    first = _OPENER.search(text)
    if first is not None:
        yield ("text", "outer"), text[first.start() :]
    yield from _spans(text, "text", budget)


def _spans(text: str, group: str, budget: _Budget) -> Iterator[tuple[tuple[str, str], str]]:
    spans, cuts = _scan(text, budget)
    for start, end in spans:
        yield (group, "span"), text[start:end]
    for cut in cuts:
        yield (group, "cut"), cut


# --- numbers ---------------------------------------------------------------------------------


def _float(s: str) -> float | None:
    value = float(s)
    return value if math.isfinite(value) else None


def _int(s: str) -> int | float | None:
    digits = len(s) - (s[:1] in "+-")
    if digits > _MAX_INT_DIGITS:
        return _float(s)
    return int(s)


def _constant(_: str) -> None:
    return None  # NaN, Infinity, -Infinity


_DECODER = json.JSONDecoder(parse_constant=_constant)
_DECODER_HOOKED = json.JSONDecoder(parse_constant=_constant, parse_float=_float)


def _prefix(text: str) -> tuple[bool, Any, int]:
    """The JSON value at the start of ``text`` and where it ends (strict JSON only)."""
    decoder = _DECODER_HOOKED if _MAYBE_INF.search(text) else _DECODER
    try:
        value, end = decoder.raw_decode(text)
    except (ValueError, RecursionError):
        return False, None, 0
    return True, value, end


def _loads(piece: str, budget: _Budget) -> tuple[bool, Any]:
    """Parse one piece: strict JSON (C scanner), then the lenient parser on small pieces."""
    try:
        # The float hook costs a Python call per number: only where a float could overflow.
        hook = _float if _MAYBE_INF.search(piece) else None
        return True, json.loads(piece, parse_float=hook, parse_constant=_constant)
    except (ValueError, RecursionError):
        pass
    if piece[:1] not in "[{(" or len(piece) > budget.lenient:
        return False, None
    budget.lenient -= len(piece)
    return _lenient(piece)


# --- the lenient parser ----------------------------------------------------------------------

# One token per match; each match consumes its characters, so parsing is linear in the piece.
_TOKEN = re.compile(
    r"""\s+|//[^\n]*|\#[^\n]*
    |(?P<p>[\[\]{}(),:=])
    |(?P<s>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<n>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    |(?P<w>[-+]?[A-Za-z_][\w\-]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_WORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "none": None,
    "nan": None,
    "infinity": None,
    "-infinity": None,
    "+infinity": None,
    "inf": None,
    "-inf": None,
}
_CLOSE = {"[": "]", "{": "}", "(": ")"}


class _Fail(Exception):
    pass


def _string(token: str) -> str:
    body = token[1:-1]
    if token[0] == "'":
        body = body.replace("\\'", "'").replace('"', '\\"')
    try:
        value = json.loads(f'"{body}"')
    except ValueError:
        return body
    return value if isinstance(value, str) else body


def _lenient(piece: str) -> tuple[bool, Any]:
    """JSON with Python literals, single quotes, trailing or missing commas, unquoted keys and
    words, ``//`` comments and tuples. Incomplete input fails (truncation is handled by cuts)."""
    try:
        return True, _lenient_parse(piece)
    except _Fail:
        return False, None


def _lenient_parse(piece: str) -> Any:
    # stack entries: [container, closer, pending key (dicts), expecting value after ':' (dicts)]
    stack: list[list[Any]] = []
    result: Any = None
    done = False
    pos, n = 0, len(piece)

    def put(value: Any) -> None:
        nonlocal result, done
        if not stack:
            if done:
                raise _Fail
            result, done = value, True
            return
        top = stack[-1]
        if isinstance(top[0], list):
            top[0].append(value)
        elif top[3]:
            top[0][top[2]] = value
            top[2], top[3] = None, False
        elif top[2] is None and isinstance(value, (str, int, float)) and value is not None:
            top[2] = value if isinstance(value, str) else str(value)
        else:
            raise _Fail

    while pos < n:
        m = _TOKEN.match(piece, pos)
        if m is None:
            raise _Fail
        pos = m.end()
        kind = m.lastgroup
        if kind is None:
            continue  # whitespace or a comment
        tok = m.group()
        if kind == "p":
            if tok in "[{(":
                if len(stack) >= _MAX_NESTING or done:
                    raise _Fail
                stack.append([{} if tok == "{" else [], _CLOSE[tok], None, False])
            elif tok in "]})":
                if not stack or stack[-1][1] != tok or stack[-1][2] is not None:
                    raise _Fail
                value = stack.pop()[0]
                put(value)
            elif tok in ":=":
                if not stack or not isinstance(stack[-1][0], dict) or stack[-1][2] is None:
                    raise _Fail
                stack[-1][3] = True
            # commas are optional separators
        elif kind == "s":
            put(_string(tok))
        elif kind == "n":
            num: Any = _float(tok) if any(c in tok for c in ".eE") else _int(tok.lstrip("+"))
            put(num)
        else:
            low = tok.lower()
            put(_WORDS.get(low, tok))
    if stack or not done:
        raise _Fail
    return result


# --- the structural scan ---------------------------------------------------------------------


def _scan(text: str, budget: _Budget) -> tuple[list[tuple[int, int]], list[str]]:
    """One linear pass: balanced top-level ``[..]``/``{..}`` spans, and for a span left open at the
    end of the text, its complete leading part closed off.

    Only complete elements of a list are kept in that leading part: a cut is made after a
    closing bracket whose parent is a list, or after the last comma of the outermost list, never
    inside an object (half an object is not kept).
    """
    spans: list[tuple[int, int]] = []
    stack: list[str] = []  # closers of the open brackets
    opened: list[int] = []  # their positions
    root = -1
    cut: tuple[int, int] | None = None  # (end, depth) after a complete element of a list
    last_root_event = -1  # position of the latest bracket event at depth 1
    pos = 0
    n = len(text)
    while pos < n:
        if budget.events <= 0:
            n = pos  # out of budget: what is open here is cut off like a truncated answer
            break
        # Outside any structure only an opener matters: skip straight to the next one.
        m = (_EVENT if stack else _OPENER).search(text, pos)
        if m is None:
            break
        budget.events -= 1
        ch = m.group()
        i = m.start()
        pos = i + 1
        if ch == "[" or ch == "{":
            if not stack:
                root = i
                cut = None
                last_root_event = i
            stack.append("]" if ch == "[" else "}")
            opened.append(i)
            if len(stack) > _MAX_NESTING:
                # Deeper than any JSON parser accepts: not JSON. Skip the run of openers.
                stack.clear()
                opened.clear()
                run = _OPENER_RUN.match(text, pos)
                pos = run.end() if run else pos
        elif ch == "]" or ch == "}":
            if ch != stack[-1]:
                stack.clear()  # mismatched: not JSON, start over at the next opener
                opened.clear()
                continue
            stack.pop()
            opened.pop()
            if not stack:
                spans.append((root, i + 1))
                if len(spans) >= _MAX_SPANS:
                    return spans, []
                continue
            if cut is not None and len(stack) < cut[1]:
                cut = None  # the list that held the cut is closed
            if stack[-1] == "]":
                cut = (i + 1, len(stack))
            if len(stack) == 1:
                last_root_event = i
        else:  # a quote inside a structure: skip the whole string
            sm = _STRINGS[ch].match(text, i)
            if sm is None:
                if ch == '"':
                    break  # truncated inside a string
                continue  # a lone apostrophe
            pos = sm.end()
    if not stack:
        return spans, []
    cuts: list[str] = []
    best = cut
    if stack[0] == "]":
        # The outermost list's last comma before its open child (or the end).
        hi = opened[1] if len(opened) > 1 else n
        comma = text.rfind(",", last_root_event + 1, hi)
        if comma > root and (best is None or comma > best[0]):
            best = (comma, 1)
    if best is not None:
        end, depth = best
        cuts.append(text[root:end] + "".join(reversed(stack[:depth])))
    return spans, cuts
