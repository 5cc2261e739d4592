"""Boxes and points in token and tag syntaxes: reference/box tag pairs, location tokens, XML.

Every parser is one left-to-right pass over the answer with regular expressions that consume
what they match, so time is linear in the answer. Strict where guessing would be wrong: a list
of the wrong length, a truncated body, PaliGemma location runs that are not 4 (or 2) tokens or
have no label come back as dropped :class:`~vlgate.grounding.raw.Raw` items.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .conventions import Convention
from .jsonwalk import parse_json
from .labels import MAX_LABEL, clean_label, label_from_text
from .raw import MAX_ITEMS, NUMBER, Raw, drop, kind_of, numbers

__all__ = [
    "TAGS",
    "Tags",
    "parse_florence",
    "parse_paligemma",
    "parse_qwen2_plain",
    "parse_tags",
    "parse_xml_points",
]


@dataclass(frozen=True)
class Tags:
    """One family's reference and box markers (data; see :data:`TAGS`)."""

    ref: tuple[str, str] | None
    """Opening and closing marker of a reference (the label of the boxes that follow)."""
    box_open: tuple[str, ...]
    box_close: tuple[str, ...]
    label_before: bool = False
    """No reference markers: a box's label is the words right before it (GLM)."""


TAGS: dict[str, Tags] = {
    "qwen2-tokens": Tags(
        ("<|object_ref_start|>", "<|object_ref_end|>"), ("<|box_start|>",), ("<|box_end|>",)
    ),
    "ref-box": Tags(("<ref>", "</ref>"), ("<box>", "<point>"), ("</box>", "</point>")),
    "deepseek-det": Tags(("<|ref|>", "<|/ref|>"), ("<|det|>",), ("<|/det|>",)),
    "glm-box": Tags(None, ("<|begin_of_box|>",), ("<|end_of_box|>",), label_before=True),
}

_MARKERS = {
    name: re.compile("|".join(re.escape(m) for m in (*(t.ref or ()), *t.box_open, *t.box_close)))
    for name, t in TAGS.items()
}
_MAX_MARKERS = MAX_ITEMS * 4
_DIGIT = re.compile(r"\d")
_CLAUSE = re.compile(r"[\n;,.:!?)\]>]")
_LIST = re.compile(r"[\[(]([^\[\]()]*)[\])]")
_OPEN_TAIL = re.compile(r"[\[(][^\[\]()]*$")


def parse_tags(syntax: str, text: str, conv: Convention) -> list[Raw]:
    """Items in a reference/box tag syntax: each reference labels the boxes that follow it."""
    tags = TAGS[syntax]
    out: list[Raw] = []
    label: str | None = None
    ref_at: int | None = None  # inside a reference, its text starts here
    box_at: int | None = None  # inside a box, its body starts here
    box_label = ""  # GLM: the text before the open box, made a label only if the box has one
    prev = 0  # end of the previous box (GLM labels are the words between boxes)
    for n, m in enumerate(_MARKERS[syntax].finditer(text)):
        if n >= _MAX_MARKERS or len(out) >= MAX_ITEMS:
            break
        tok = m.group()
        if box_at is not None:
            # Any marker ends a box body; only its own closer ends it cleanly.
            closed = tok in tags.box_close
            body = text[box_at : m.start()]
            if _DIGIT.search(body):
                lab = label_from_text(_last_clause(box_label)) if tags.label_before else label
                out.extend(_body(body, lab, not closed, conv))
            box_at = None
            if closed:
                prev = m.end()
                continue
        if ref_at is not None:
            if tags.ref is not None and (tok == tags.ref[1] or tok in tags.box_open):
                # A reference whose closer is missing still labels the box that follows.
                label = clean_label(text[ref_at : m.start()])
                ref_at = None
                if tok == tags.ref[1]:
                    continue
            else:
                ref_at = None
        if tags.ref is not None and tok == tags.ref[0]:
            ref_at, label = m.end(), None
        elif tok in tags.box_open:
            box_at = m.end()
            if tags.label_before:
                box_label = text[max(prev, m.start() - MAX_LABEL) : m.start()]
    if box_at is not None and len(out) < MAX_ITEMS:
        lab = label_from_text(_last_clause(box_label)) if tags.label_before else label
        out.extend(_body(text[box_at:], lab, True, conv))
    return out


def _words_before(text: str, start: int, lo: int) -> str:
    return _last_clause(text[max(lo, start - MAX_LABEL) : start])


def _last_clause(chunk: str) -> str:
    return _CLAUSE.split(chunk.rstrip(" \t:=-"))[-1]


def _body(body: str, label: str | None, truncated: bool, conv: Convention) -> Iterator[Raw]:
    """Boxes/points in one box body; JSON objects inside keep their own labels."""
    if "{" in body or '"' in body or "'" in body:
        found = parse_json(body, conv)
        if found:
            yield from (r if r.label or r.bad else _with_label(r, label) for r in found)
            return
    yield from _numeric_body(body, label, truncated)


def _with_label(raw: Raw, label: str | None) -> Raw:
    return Raw(raw.kind, raw.values, label, raw.score, raw.scale, raw.bad)


def _numeric_body(body: str, label: str | None, truncated: bool) -> Iterator[Raw]:
    """``[[x1,y1,x2,y2], ..]``, ``(x1,y1),(x2,y2)`` pairs, or bare ``x1 y1 x2 y2`` numbers."""
    tail = _OPEN_TAIL.search(body) if truncated else None
    if tail is not None and NUMBER.search(tail.group()):
        yield drop("box")  # a list cut off inside
        body = body[: tail.start()]
    lists = [numbers(s) for s in _LIST.findall(body)]
    if lists:
        if "(" in body and len(lists) >= 2 and all(len(n) == 2 for n in lists):
            # Qwen-VL / Qwen2-VL corner pairs "(x1,y1),(x2,y2)" join into one box each.
            for i in range(0, len(lists) - 1, 2):
                yield _item(lists[i] + lists[i + 1], label)
            if len(lists) % 2:
                yield drop("box")
            return
        for nums in lists:
            yield _item(nums, label)
        return
    nums = numbers(body)
    if not nums:
        return
    if len(nums) == 2:
        yield _item(nums, label)
    elif len(nums) % 4 == 0:
        for i in range(0, len(nums), 4):
            yield _item(nums[i : i + 4], label)
    else:
        yield drop("box")


def _item(nums: list[float | None], label: str | None, scale: float | None = None) -> Raw:
    if len(nums) not in (2, 4) or any(n is None for n in nums):
        return drop("box" if len(nums) != 2 else "point")
    values = tuple(n for n in nums if n is not None)
    return Raw(kind_of(values), values, label, scale=scale)


# --- Qwen2-VL with its special tokens stripped: "label(x1,y1),(x2,y2)" -----------------------

# Starts with a literal so a failed match costs O(1) per position.
_QWEN2_STRIPPED = re.compile(
    r"\(\s*([-+]?[\d.]+)\s*,\s*([-+]?[\d.]+)\s*\)\s*,\s*\(\s*([-+]?[\d.]+)\s*,\s*([-+]?[\d.]+)\s*\)"
)


def parse_qwen2_plain(text: str, conv: Convention) -> list[Raw]:
    """Qwen2-VL with its markers stripped (``skip_special_tokens=True``):
    ``label(x1,y1),(x2,y2)``, the label being the words before the box."""
    out: list[Raw] = []
    prev = 0
    for m in _QWEN2_STRIPPED.finditer(text):
        label = label_from_text(_words_before(text, m.start(), prev))
        prev = m.end()
        out.append(_item(numbers(" ".join(m.groups())), label))
        if len(out) >= MAX_ITEMS:
            break
    return out


# --- PaliGemma: <loc0123><loc0456><loc0789><loc1000> label ; ... ----------------------------

_PALI_RUN = re.compile(r"<loc\d{4}>(?:\s*<loc\d{4}>)*")
_PALI_LOC = re.compile(r"<loc(\d{4})>")
_PALI_STOP = re.compile(r"[;\n]|<loc\d{4}>")
_PALI_SEG = re.compile(r"<seg\d{3}>")


def parse_paligemma(text: str, conv: Convention) -> list[Raw]:
    """Four location tokens then a label (two for a point); anything else is dropped."""
    out: list[Raw] = []
    for m in _PALI_RUN.finditer(text):
        if len(out) >= MAX_ITEMS:
            break
        locs = [float(v) for v in _PALI_LOC.findall(m.group())]
        stop = _PALI_STOP.search(text, m.end(), m.end() + MAX_LABEL * 4)
        tail = text[m.end() : stop.start() if stop else m.end() + MAX_LABEL * 4]
        label = label_from_text(_PALI_SEG.sub(" ", tail))
        if len(locs) not in (2, 4) or label is None:
            out.append(drop("point" if len(locs) == 2 else "box"))
            continue
        out.append(Raw(kind_of(tuple(locs)), tuple(locs), label))
    return out


# --- Florence-2: label<loc_x1><loc_y1><loc_x2><loc_y2>... -----------------------------------

_FLORENCE_RUN = re.compile(r"<loc_\d{1,4}>(?:\s*<loc_\d{1,4}>)*")
_FLORENCE_LOC = re.compile(r"<loc_(\d{1,4})>")
_FLORENCE_NOISE = re.compile(r"</?s>|<pad>|<unk>")


def parse_florence(text: str, conv: Convention) -> list[Raw]:
    """Runs of ``<loc_N>``: four per box (a label may have several), two for a point; the label
    is the text since the previous run."""
    text = _FLORENCE_NOISE.sub("", text)
    out: list[Raw] = []
    prev = 0
    for m in _FLORENCE_RUN.finditer(text):
        if len(out) >= MAX_ITEMS:
            break
        label = label_from_text(text[max(prev, m.start() - MAX_LABEL) : m.start()])
        prev = m.end()
        locs = [float(v) for v in _FLORENCE_LOC.findall(m.group())]
        if len(locs) == 2:
            out.append(Raw("point", (locs[0], locs[1]), label))
            continue
        for i in range(0, len(locs) - 3, 4):
            out.append(Raw("box", tuple(locs[i : i + 4]), label))
        if len(locs) % 4:
            out.append(drop("box"))
    return out


# --- Molmo XML points ------------------------------------------------------------------------

_XML_TAG = re.compile(r"<(points?)\b([^<>]{0,4000}?)(/?)>")
_XML_ATTR = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))")
_XML_CLOSE = re.compile(r"</points?>")


def parse_xml_points(text: str, conv: Convention) -> list[Raw]:
    """``<point x="" y="" alt="">label</point>``, ``<points x1= y1= x2= y2= ...>`` (Molmo,
    percent) and Molmo2 ``coords="F id x y id x y ..."`` (0-1000)."""
    out: list[Raw] = []
    for m in _XML_TAG.finditer(text):
        if len(out) >= MAX_ITEMS:
            break
        attrs = {a.lower(): (v1 or v2 or v3) for a, v1, v2, v3 in _XML_ATTR.findall(m.group(2))}
        label = clean_label(attrs.get("alt"))
        if not m.group(3):
            close = _XML_CLOSE.search(text, m.end(), m.end() + MAX_LABEL + 20)
            if close is not None:
                label = label_from_text(text[m.end() : close.start()]) or label
        if "coords" in attrs:
            # Molmo2: "F id x y id x y ..." per frame (frames separated by ';'), 0-1000.
            for frame in attrs["coords"].split(";")[:MAX_ITEMS]:
                nums = numbers(frame)[1:]
                for i in range(0, len(nums) - 2, 3):
                    out.append(_item([nums[i + 1], nums[i + 2]], label, scale=1000))
                if len(nums) % 3:
                    out.append(drop("point"))
            continue
        found = False
        if "x" in attrs or "y" in attrs:
            found = True
            out.append(_item(_one(attrs.get("x")) + _one(attrs.get("y")), label))
        k = 1
        while (f"x{k}" in attrs or f"y{k}" in attrs) and k <= MAX_ITEMS:
            found = True
            out.append(_item(_one(attrs.get(f"x{k}")) + _one(attrs.get(f"y{k}")), label))
            k += 1
        if not found:
            out.append(drop("point"))
    return out


def _one(value: str | None) -> list[float | None]:
    nums = numbers(value or "")
    return nums[:1] if len(nums) == 1 else [None]
