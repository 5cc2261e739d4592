"""What the emulated model says: simple, documented keyword rules over what it saw.

Intent, decided from the text of the request (all user and system text, lower-cased), first
match wins:

1. **schema** — the request carries a JSON schema (OpenAI ``response_format`` ``json_schema``,
   Gemini ``responseSchema`` / ``responseJsonSchema``, Ollama ``format: {...}``): schema-valid
   JSON filled from what it saw (property names ``count``/``objects``/``label``/``colour``/
   ``shape``/``bbox``/``caption``... are matched; otherwise type-correct defaults).
2. **point** — point words (``point``, ``points``, ``point_2d``, ``pointing``, ``click``,
   ``/point``) and no box words: points at object centres in the family's native syntax.
3. **detect** — box words (``detect``, ``bounding box``, ``bbox``, ``bbox_2d``, ``box_2d``,
   ``<od>``, ``grounding``, ``locate``, ``find all``, ``/detect``): boxes in the family's
   native syntax and coordinate frame (:mod:`vlgate.testing.families`).
4. **count** — ``how many`` / ``count`` / ``number of``: ``"There are 2 red shapes."`` (just the
   number when the prompt says ``only``/``just`` ... ``number``).
5. **caption** — ``describe``, ``caption``, ``what do you see``, ``what is in``...: one sentence
   naming the frame's orientation and each shape with where it sits (``"A wide image of 2 shapes
   on a textured grey background: a red circle at the top left and a blue square in the
   centre."``), never a pixel size.
6. **json** — the prompt mentions JSON (or JSON mode is on): an object with ``objects``,
   ``count`` and ``caption``.

A prompt that mentions JSON and contains a JSON-schema object (a ``{...}`` with ``type`` or
``properties``) is treated as rule 1 with that schema, before the other rules.
7. anything else: a short sentence naming what it sees.

Targets: colour names (:data:`~vlgate.testing.scenes.PALETTE`) and shape words in the prompt
restrict detections, points and counts to matching objects.

Noise (``noise=True``, deterministic per seed and request): JSON answers are sometimes wrapped
in a ```` ```json ```` fence, sometimes get a sentence of chatter before/after, and rarely lose
the end of their last object (truncated). Schema and JSON-mode answers are always clean.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .families import Family, family_for, format_boxes, format_points
from .scenes import PALETTE, SHAPE_KINDS
from .vision import Seen, Sight

__all__ = ["Ask", "answer", "estimate_text_tokens", "fill_schema", "intent_of"]

_BOX_WORDS = re.compile(
    r"detect|bounding ?box|\bbbox|box_2d|bbox_2d|<od>|grounding|\blocate\b|find all|/detect|"
    r"<\|det\|>|"
    r"\bboxes\b"
)
_POINT_WORDS = re.compile(r"\bpoint(s|ing|_2d)?\b|\bclick\b|/point")
_COUNT_WORDS = re.compile(r"how many|\bcount\b|number of")
_CAPTION_WORDS = re.compile(
    r"describe|caption|what do you see|what is in|what's in|what is shown|<more_detailed_caption>"
)
_ONLY_NUMBER = re.compile(r"\b(only|just)\b.*\bnumber\b|\bnumber only\b|single (integer|number)")
_SHAPE_WORDS = {k: re.compile(rf"\b{k}s?\b") for k in SHAPE_KINDS}
_COLOUR_WORDS = {c: re.compile(rf"\b{c}\b") for c in PALETTE}


@dataclass
class Ask:
    """One question to the emulated model."""

    model: str
    prompt: str
    sights: Sequence[Sight | None] = ()
    schema: dict[str, Any] | None = None
    json_mode: bool = False
    noise: bool = True
    seed: int = 0
    image_keys: Sequence[str] = field(default_factory=tuple)


def intent_of(prompt: str, *, has_schema: bool = False, json_mode: bool = False) -> str:
    """The intent rule that fires for ``prompt`` (see the module docstring).

    Example:
        >>> intent_of("Detect the red circle and return its bbox_2d")
        'detect'
        >>> intent_of("Point to the blue square")
        'point'
    """
    return _intent(prompt, has_schema, json_mode)


@functools.lru_cache(maxsize=256)
def _intent(prompt: str, has_schema: bool, json_mode: bool) -> str:
    # Cached: a stream of frames is usually asked the same question.
    p = prompt.lower()
    if has_schema:
        return "schema"
    box, point = bool(_BOX_WORDS.search(p)), bool(_POINT_WORDS.search(p))
    if point and not box:
        return "point"
    if box:
        return "detect"
    if _COUNT_WORDS.search(p):
        return "count"
    if _CAPTION_WORDS.search(p):
        return "caption"
    if json_mode or "json" in p:
        return "json"
    return "other"


@functools.lru_cache(maxsize=256)
def _named(prompt: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The colours and shapes ``prompt`` names, in palette / shape-kind order (cached: many
    frames are asked the same question)."""
    p = prompt.lower()
    colours = tuple(c for c, rx in _COLOUR_WORDS.items() if rx.search(p))
    shapes = tuple(k for k, rx in _SHAPE_WORDS.items() if rx.search(p))
    return colours, shapes


def _targets(prompt: str, objects: Sequence[Seen]) -> list[Seen]:
    named = _named(prompt)
    colours, shapes = set(named[0]), set(named[1])
    return [
        o
        for o in objects
        if (not colours or o.colour in colours) and (not shapes or o.shape in shapes)
    ]


def _phrase(objects: Sequence[Seen]) -> str:
    if not objects:
        return "no distinct coloured shapes"
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.label] = counts.get(o.label, 0) + 1
    parts = [f"a {lab}" if n == 1 else f"{n} {lab}s" for lab, n in counts.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _noun(prompt: str) -> str:
    colours, shapes = _named(prompt)
    words = " ".join([*colours[:1], shapes[0] if shapes else "shape"])
    return words


def _rng(ask: Ask) -> random.Random:
    h = hashlib.sha256(
        f"{ask.seed}|{ask.model}|{ask.prompt}|{'|'.join(ask.image_keys)}".encode()
    ).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def _add_noise(text: str, rng: random.Random, n_items: int) -> str:
    if n_items >= 2 and rng.random() < 0.1:
        # Cut inside the last object, as a model hitting its token limit does.
        cut = text.rfind("{")
        if cut > 0:
            text = text[: cut + max(1, (len(text) - cut) // 2)]
    if rng.random() < 0.5:
        text = f"```json\n{text}\n```"
    if rng.random() < 0.3:
        text = rng.choice(["Here are the results:\n", "Sure! ", "The objects I found:\n\n"]) + text
    if rng.random() < 0.2:
        text += rng.choice(["\n\nLet me know if you need anything else.", "\nDone."])
    return text


def _json_ready(text: str) -> bool:
    return text.lstrip().startswith(("[", "{"))


def _first_object(objs: Sequence[Seen]) -> Seen | None:
    return objs[0] if objs else None


def answer(ask: Ask) -> str:
    """The emulated model's reply text.

    Example:
        >>> answer(Ask(model="gpt-4o", prompt="Hello"))
        'Hello! I am an emulated gpt-4o. I received no image.'
    """
    it = intent_of(ask.prompt, has_schema=ask.schema is not None, json_mode=ask.json_mode)
    sight = next((s for s in ask.sights if s is not None), None)
    objects: list[Seen] = list(sight.objects) if sight else []
    fam = family_for(ask.model)
    if it == "schema" and ask.schema is not None:
        return json.dumps(fill_schema(ask.schema, objects, sight))
    if "json" in ask.prompt.lower():
        in_prompt = _schema_in_prompt(ask.prompt)
        if in_prompt is not None:
            return json.dumps(fill_schema(in_prompt, objects, sight))
    if not ask.sights:
        if it in ("json",):
            return json.dumps({"answer": "no image", "count": 0, "objects": []})
        return f"Hello! I am an emulated {ask.model}. I received no image."
    if sight is None:
        return "I could not read the image."
    if not sight.scene:
        return _unrecognised(ask, it, fam, sight)
    if it in ("detect", "point"):
        chosen = _targets(ask.prompt, objects)
        text = _grounding_text(fam, it, chosen, sight)
        if ask.json_mode:
            parsed = json.loads(text) if _json_ready(text) else text
            return json.dumps({"objects": parsed} if isinstance(parsed, list) else parsed)
        if ask.noise and _json_ready(text):
            return _add_noise(text, _rng(ask), len(chosen))
        if ask.noise and _rng(ask).random() < 0.2:
            return "Sure. " + text
        return text
    if it == "count":
        n = len(_targets(ask.prompt, objects))
        if ask.json_mode:
            return json.dumps({"count": n})
        if _ONLY_NUMBER.search(ask.prompt.lower()):
            return str(n)
        noun = _noun(ask.prompt)
        return f"There is 1 {noun}." if n == 1 else f"There are {n} {noun}s."
    caption = _caption(objects, sight)
    if it == "caption":
        return json.dumps({"caption": caption}) if ask.json_mode else caption
    if it == "json":
        schema = _schema_in_prompt(ask.prompt)
        if schema is not None:
            return json.dumps(fill_schema(schema, objects, sight))
        return json.dumps(
            {
                "objects": [
                    {"label": o.label, "colour": o.colour, "shape": o.shape, "bbox": _px(o.box)}
                    for o in objects
                ],
                "count": len(objects),
                "caption": caption,
            }
        )
    return f"I see {_phrase(objects)} on a grey background."


UNRECOGNISED_CAPTION = "An image with nothing in it that I can name."
"""The caption for an image that is not a synthetic scene (a photograph, noise, a blank page)."""


def _caption(objects: Sequence[Seen], sight: Sight) -> str:
    """One sentence on what the scene shows: the frame's orientation, each shape with its colour
    and where it sits (reading order). No pixel sizes: a model describes what it sees, and the
    size it receives is the client's resize, not the user's image."""
    if not sight.scene:
        return UNRECOGNISED_CAPTION
    w, h = sight.size
    frame = "wide" if w > 1.15 * h else "tall" if h > 1.15 * w else "square"
    if not objects:
        return f"A {frame} image of a textured grey background with {_phrase(objects)}."
    placed = sorted(objects, key=lambda o: (_third(o.center[1], h), o.center[0]))
    parts = [f"a {o.label} {_where(o.center, sight.size)}" for o in placed]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    n = len(objects)
    return (
        f"A {frame} image of {n} shape{'s' if n != 1 else ''} on a textured grey background: "
        f"{listed}."
    )


def _third(v: float, extent: int) -> int:
    return min(2, int(3 * v / max(1, extent)))


_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "centre", "right")


def _where(center: tuple[float, float], size: tuple[int, int]) -> str:
    """``"at the top left"``, ``"in the centre"``... from the thirds of the frame a centre is in."""
    row, col = _third(center[1], size[1]), _third(center[0], size[0])
    if (row, col) == (1, 1):
        return "in the centre"
    if row == 1:
        return f"on the {_COLS[col]}"
    if col == 1:
        return f"at the {_ROWS[row]}"
    return f"at the {_ROWS[row]} {_COLS[col]}"


def _unrecognised(ask: Ask, intent: str, fam: Family, sight: Sight) -> str:
    """Answers about an image that is not a synthetic scene, as a real model that can name
    nothing in it would give them: no boxes or points, a count of 0, a short plain caption."""
    if intent in ("detect", "point"):
        if ask.json_mode:
            return json.dumps({"objects": []})
        text = (
            format_boxes(fam, [], sight.size)
            if intent == "detect"
            else format_points(fam, [], sight.size)
        )
        return text if text.strip() else "I cannot find that in this image."
    if intent == "count":
        if ask.json_mode:
            return json.dumps({"count": 0})
        if _ONLY_NUMBER.search(ask.prompt.lower()):
            return "0"
        return f"There are 0 {_noun(ask.prompt)}s."
    if intent == "caption":
        return (
            json.dumps({"caption": UNRECOGNISED_CAPTION}) if ask.json_mode else UNRECOGNISED_CAPTION
        )
    if intent == "json":
        return json.dumps({"objects": [], "count": 0, "caption": UNRECOGNISED_CAPTION})
    return "I cannot make out any objects I can name in this image."


def _px(box: tuple[float, float, float, float]) -> list[int]:
    return [round(v) for v in box]


def _grounding_text(fam: Family, intent: str, chosen: Sequence[Seen], sight: Sight) -> str:
    if intent == "detect":
        return format_boxes(fam, [(o.label, o.box) for o in chosen], sight.size)
    return format_points(fam, [(o.label, o.center) for o in chosen], sight.size)


def _schema_in_prompt(prompt: str) -> dict[str, Any] | None:
    start = prompt.find("{")
    while start >= 0:
        depth = 0
        for i in range(start, len(prompt)):
            if prompt[i] == "{":
                depth += 1
            elif prompt[i] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        cand = json.loads(prompt[start : i + 1])
                    except ValueError:
                        break
                    if isinstance(cand, dict) and ("properties" in cand or "type" in cand):
                        return cand
                    break
        start = prompt.find("{", start + 1)
    return None


# --- schema filling ------------------------------------------------------------------------------

_LABEL_KEYS = ("label", "name", "object", "class", "category", "target", "item")
_COLOUR_KEYS = ("colour", "color")
_SHAPE_KEYS = ("shape", "kind", "type")
_TEXT_KEYS = ("caption", "description", "summary", "answer", "text", "scene", "reason")
_COUNT_KEYS = ("count", "n", "num", "number", "total", "quantity", "how_many", "n_objects")
_LIST_KEYS = ("objects", "detections", "items", "shapes", "boxes", "results", "points", "things")
_BOX_KEYS = ("bbox", "box", "bbox_2d", "box_2d", "xyxy", "bounding_box")
_POINT_KEYS = ("point", "point_2d", "xy", "center", "centre")


def fill_schema(schema: dict[str, Any], objects: Sequence[Seen], sight: Sight | None) -> Any:
    """A value valid against ``schema`` (a JSON-schema subset), filled from what was seen.

    Example:
        >>> fill_schema({"type": "object", "properties": {"count": {"type": "integer"}},
        ...              "required": ["count"]}, [], None)
        {'count': 0}
    """
    return _fill(schema, schema, "", objects, None, sight)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in node and seen < 20:
        ref = str(node["$ref"])
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            if part:
                target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target if isinstance(target, dict) else {}
        seen += 1
    return node


def _fill(
    node: dict[str, Any],
    root: dict[str, Any],
    name: str,
    objects: Sequence[Seen],
    obj: Seen | None,
    sight: Sight | None,
) -> Any:
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [_resolve(o, root) for o in node[key]]
            non_null = [o for o in options if o.get("type") != "null"]
            return _fill((non_null or options)[0], root, name, objects, obj, sight)
    if "allOf" in node:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(_resolve(part, root))
        return _fill(merged, root, name, objects, obj, sight)
    typ = node.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in node else "array" if "items" in node else "string"
    low = name.lower()
    focus = obj or _first_object(objects)
    if "enum" in node:
        enum = list(node["enum"])
        for want in (focus.colour, focus.shape, focus.label) if focus else ():
            if want in enum:
                return want
        return enum[0] if enum else None
    if typ == "object":
        props: dict[str, Any] = node.get("properties", {})
        return {k: _fill(v, root, k, objects, obj, sight) for k, v in props.items()}
    if typ == "array":
        items = node.get("items", {})
        items = _resolve(items, root) if isinstance(items, dict) else {}
        lo, hi = int(node.get("minItems", 0)), node.get("maxItems")
        if low in _BOX_KEYS and focus is not None:
            vals: list[Any] = _px(focus.box)
        elif low in _POINT_KEYS and focus is not None:
            vals = [round(focus.center[0]), round(focus.center[1])]
        elif (
            low in _LIST_KEYS or items.get("type") == "object" or "properties" in items
        ) and obj is None:
            vals = [_fill(items, root, "", objects, o, sight) for o in objects]
        elif items.get("type") == "string" and obj is None:
            vals = [o.label for o in objects]
        else:
            vals = [_fill(items, root, "", objects, obj, sight)] if lo else []
        if items.get("type") == "integer":
            vals = [round(v) if isinstance(v, (int, float)) else v for v in vals]
        while len(vals) < lo:
            vals.append(_fill(items, root, "", objects, obj, sight))
        if isinstance(hi, int):
            vals = vals[:hi]
        return vals
    if typ == "string":
        if focus is not None:
            if low in _COLOUR_KEYS:
                return focus.colour
            if low in _SHAPE_KEYS:
                return focus.shape
            if low in _LABEL_KEYS:
                return focus.label
        if low in _TEXT_KEYS or not low:
            return _caption(objects, sight) if sight else "no image"
        return "emulated"
    if typ in ("integer", "number"):
        if low in _COUNT_KEYS or low.startswith(("n_", "num_", "count")):
            value: float = len(objects)
        elif low in ("confidence", "score", "probability"):
            value = 0.9
        elif focus is not None and low in ("x", "cx", "x_center"):
            value = focus.center[0]
        elif focus is not None and low in ("y", "cy", "y_center"):
            value = focus.center[1]
        elif focus is not None and low in ("x1", "x_min", "xmin", "left"):
            value = focus.box[0]
        elif focus is not None and low in ("y1", "y_min", "ymin", "top"):
            value = focus.box[1]
        elif focus is not None and low in ("x2", "x_max", "xmax", "right"):
            value = focus.box[2]
        elif focus is not None and low in ("y2", "y_max", "ymax", "bottom"):
            value = focus.box[3]
        elif low in ("width", "w") and sight:
            value = sight.size[0]
        elif low in ("height", "h") and sight:
            value = sight.size[1]
        else:
            value = 0
        if "minimum" in node:
            value = max(value, float(node["minimum"]))
        if "maximum" in node:
            value = min(value, float(node["maximum"]))
        return round(value) if typ == "integer" else round(float(value), 3)
    if typ == "boolean":
        return bool(objects)
    return None


def estimate_text_tokens(text: str) -> int:
    """A rough token count for text: one token per four characters, at least one.

    Example:
        >>> estimate_text_tokens("hello world!")
        3
    """
    return max(1, math.ceil(len(text) / 4))
