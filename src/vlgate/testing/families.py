"""The emulator's own table of model families: coordinate frames, output syntax, resize rules,
image-token formulas. It plays the real models, so it is written independently of
``vlgate.grounding`` / ``vlgate.sizing`` (an oracle that shares code with the code under test
proves nothing). Facts from coords.md Table A / Part B.

Which family: the first row whose regex matches the lower-cased model string; else ``generic``.

Example::

    >>> family_for("Qwen/Qwen2.5-VL-7B-Instruct").name
    'qwen2.5-vl'
    >>> family_for("gemini-2.5-flash").box_style
    'gemini'
    >>> smart_resize(640, 480)
    (644, 476)
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "FAMILIES",
    "RESIZE",
    "Family",
    "Frame",
    "claude_resize",
    "family_for",
    "format_boxes",
    "format_points",
    "image_tokens",
    "openai_tile_resize",
    "smart_resize",
]


# --- provider-side resize rules (what the model actually sees) ---------------------------------


def smart_resize(
    w: int,
    h: int,
    factor: int = 28,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 16384 * 28 * 28,
) -> tuple[int, int]:
    """Qwen2/2.5-VL ``smart_resize`` (qwen-vl-utils defaults: min 3136, max 12,845,056 pixels):
    each side rounded to a multiple of ``factor``, then scaled into the pixel budget.

    Example:
        >>> smart_resize(1920, 1080)
        (1932, 1092)
    """
    h_bar = max(factor, round(h / factor) * factor)
    w_bar = max(factor, round(w / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        h_bar = max(factor, math.floor(h / beta / factor) * factor)
        w_bar = max(factor, math.floor(w / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / factor) * factor
        w_bar = math.ceil(w * beta / factor) * factor
    return (w_bar, h_bar)


def claude_resize(w: int, h: int, long_edge: int = 1568, budget: int = 1568) -> tuple[int, int]:
    """Anthropic's resize: the largest aspect-preserving size with long edge <= 1568 and
    ``ceil(w/28) * ceil(h/28) <= 1568`` (platform.claude.com vision / vision-coordinates).

    Example:
        >>> claude_resize(1000, 1000)
        (1000, 1000)
    """

    def fits(a: int, b: int) -> bool:
        return max(a, b) <= long_edge and math.ceil(a / 28) * math.ceil(b / 28) <= budget

    if fits(w, h):
        return (w, h)
    # Walk the long side down one pixel at a time from the long-edge cap; the first size that
    # fits the token budget is the largest one.
    landscape = w >= h
    long_side, short_side = (w, h) if landscape else (h, w)
    n = min(long_side, long_edge)
    while n > 1:
        m = max(1, round(short_side * n / long_side))
        size = (n, m) if landscape else (m, n)
        if fits(*size):
            return size
        n -= 1
    return (1, 1)


def openai_tile_resize(w: int, h: int) -> tuple[int, int]:
    """OpenAI ``detail: high`` (tile models): fit a 2048x2048 box, then short side <= 768.

    Example:
        >>> openai_tile_resize(1920, 1080)
        (1365, 768)
    """
    s = min(1.0, 2048 / max(w, h))
    s *= min(1.0, 768 / (min(w, h) * s))
    return (max(1, round(w * s)), max(1, round(h * s)))


def claude_hires_resize(w: int, h: int) -> tuple[int, int]:
    """Anthropic's high-resolution tier (Opus 4.7): long edge <= 2576, <= 4784 patches."""
    return claude_resize(w, h, long_edge=2576, budget=4784)


def openai_patch_resize(w: int, h: int) -> tuple[int, int]:
    """OpenAI patch models: at most 1536 patches of 32 px; shrink by sqrt(32*32*1536/(w*h)), then
    until the width is a whole number of patches (OpenAI vision guide: 1800x2400 -> 1056x1408).

    Example:
        >>> openai_patch_resize(1800, 2400)
        (1056, 1408)
    """
    if math.ceil(w / 32) * math.ceil(h / 32) <= 1536:
        return (w, h)
    s = math.sqrt(32 * 32 * 1536 / (w * h))
    s *= min(math.floor(w * s / 32) / (w * s / 32), math.floor(h * s / 32) / (h * s / 32))
    return (max(1, int(w * s)), max(1, int(h * s)))


RESIZE: dict[str, Callable[[int, int], tuple[int, int]]] = {
    "qwen-smart-28": smart_resize,
    "claude": claude_resize,
    "claude-hires": claude_hires_resize,
    "openai-tile": openai_tile_resize,
    "openai-patch": openai_patch_resize,
}


def image_tokens(formula: str, w: int, h: int, detail: str | None = None) -> int:
    """Image tokens a provider would bill for a ``w`` x ``h`` image (coords.md Part B).

    Example:
        >>> image_tokens("openai-tile", 1024, 1024)
        765
    """
    if formula == "openai-tile":
        if detail == "low":
            return 85
        tw, th = openai_tile_resize(w, h)
        return 85 + 170 * math.ceil(tw / 512) * math.ceil(th / 512)
    if formula == "claude":
        # Anthropic vision docs: tokens = w*h/750 (200x200 -> ~54, 1000x1000 -> ~1334).
        cw, ch = RESIZE[formula](w, h)
        return math.ceil(cw * ch / 750)
    if formula == "claude-hires":
        cw, ch = RESIZE[formula](w, h)
        return math.ceil(cw / 28) * math.ceil(ch / 28)
    if formula.startswith("openai-patch-"):
        pw, ph = openai_patch_resize(w, h)
        patches = math.ceil(pw / 32) * math.ceil(ph / 32)
        return math.ceil(patches * float(formula.rsplit("-", 1)[1]))
    if formula == "gemini":
        if w <= 384 and h <= 384:
            return 258
        return 258 * math.ceil(w / 768) * math.ceil(h / 768)
    if formula in ("qwen-28", "qwen-32"):
        f = 28 if formula == "qwen-28" else 32
        qw, qh = smart_resize(w, h, factor=f, min_pixels=4 * f * f, max_pixels=16384 * f * f)
        return qw * qh // (f * f) + 2
    return 256


# --- coordinate frames -------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """How a model writes a coordinate.

    ``kind``: ``"pixels"`` (of the image after ``resize``, or the received image when ``None``),
    ``"scale"`` (``x / W * scale``, rounded to ``decimals``; 0 decimals -> int) or ``"bins"``
    (``floor(x / W * scale)`` clipped to ``scale - 1``).
    """

    kind: str
    scale: float = 1.0
    decimals: int = 0
    resize: str | None = None

    def model_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (w, h) the model's pixel coordinates refer to."""
        if self.kind == "pixels" and self.resize:
            return RESIZE[self.resize](*size)
        return size

    def convert(self, v: float, full: int, model: int) -> float | int:
        """One coordinate ``v`` (pixels of the received image, axis length ``full``)."""
        if self.kind == "pixels":
            return round(v * model / full)
        if self.kind == "bins":
            n = int(self.scale)
            return min(n - 1, max(0, math.floor(v / full * n)))
        x = v / full * self.scale
        return round(x) if self.decimals == 0 else round(x, self.decimals)


@dataclass(frozen=True)
class Family:
    """A model family: regexes on the model string, frame, output syntax, token formula."""

    name: str
    patterns: tuple[str, ...]
    frame: Frame
    box_style: str
    point_style: str
    tokens: str = "default"


FAMILIES: tuple[Family, ...] = (
    # Qwen2.5-VL: absolute pixels of the smart_resize'd input (QwenLM/Qwen2.5-VL README).
    Family(
        "qwen2.5-vl",
        (r"qwen2[._]?5[-_]?vl", r"qwen-vl-(max|plus)"),
        Frame("pixels", resize="qwen-smart-28"),
        "json_bbox_2d",
        "json_point_2d",
        "qwen-28",
    ),
    # Qwen3-VL: relative 0-1000 (Qwen3-VL README; maintainer in QwenLM/Qwen3-VL#1427).
    Family(
        "qwen3-vl",
        (r"qwen3(\.\d+)?[-_]?vl", r"qwen3\.\d"),
        Frame("scale", 1000),
        "json_bbox_2d",
        "json_point_2d",
        "qwen-32",
    ),
    # Qwen2-VL: special tokens, 0-1000 (ms-swift PR #6178).
    Family(
        "qwen2-vl",
        (r"qwen2[-_]?vl",),
        Frame("scale", 1000),
        "qwen2_tokens",
        "qwen2_tokens",
        "qwen-28",
    ),
    # Gemini: box_2d [ymin, xmin, ymax, xmax] 0-1000, points [y, x] (ai.google.dev vision docs).
    Family("gemini", (r"gemini", r"gemma-?3"), Frame("scale", 1000), "gemini", "gemini", "gemini"),
    # Claude Opus 4.7: the high-resolution tier, long edge 2576 px (launch coverage, coords.md).
    Family(
        "claude-hires",
        (r"claude-opus-4[.-]7",),
        Frame("pixels", resize="claude-hires"),
        "json_pixels",
        "json_pixels",
        "claude-hires",
    ),
    # Claude: pixels of the image after Anthropic's resize (platform.claude.com vision-coordinates).
    Family(
        "claude",
        (r"claude",),
        Frame("pixels", resize="claude"),
        "json_pixels",
        "json_pixels",
        "claude",
    ),
    # OpenAI patch models (OpenAI vision guide): 32-px patches, per-model token multipliers.
    Family(
        "gpt-patch",
        (r"gpt-4\.1-nano", r"gpt-5(\.\d+)?-nano"),
        Frame("pixels", resize="openai-patch"),
        "json_pixels",
        "json_pixels",
        "openai-patch-2.46",
    ),
    Family(
        "gpt-patch",
        (r"o4-mini",),
        Frame("pixels", resize="openai-patch"),
        "json_pixels",
        "json_pixels",
        "openai-patch-1.72",
    ),
    Family(
        "gpt-patch",
        (r"gpt-4\.1-mini", r"gpt-5(\.\d+)?-mini"),
        Frame("pixels", resize="openai-patch"),
        "json_pixels",
        "json_pixels",
        "openai-patch-1.62",
    ),
    # GPT: no trained convention; pixels of the image after the tile resize.
    Family(
        "gpt",
        (r"gpt-", r"(^|[/:])o[134](-|$)", r"chatgpt"),
        Frame("pixels", resize="openai-tile"),
        "json_pixels",
        "json_pixels",
        "openai-tile",
    ),
    # Moondream: 0-1 floats (moondream.ai detect/point API).
    Family("moondream", (r"moondream",), Frame("scale", 1, 3), "moondream", "moondream"),
    # Florence-2: <loc_N> 1000 bins, floor quantiser (processing_florence2.py BoxQuantizer).
    Family("florence-2", (r"florence",), Frame("bins", 1000), "florence", "florence"),
    # PaliGemma: <locNNNN> 1024 bins, y first (PaliGemma README; supervision from_paligemma).
    Family("paligemma", (r"paligemma",), Frame("bins", 1024), "paligemma", "paligemma"),
    # DeepSeek-VL2: <|det|> 0-999 (DeepSeek-VL2 serve/app_modules/utils.py: box / 999 * W).
    Family("deepseek-vl2", (r"deepseek[-_]?vl",), Frame("scale", 999), "deepseek", "deepseek"),
    # InternVL: <box> 0-1000 (InternVL #285; internvl.readthedocs.io chat data format).
    Family("internvl", (r"internvl",), Frame("scale", 1000), "internvl", "internvl"),
    # GLM-4.1V/4.5V: <|begin_of_box|> 0-1000 (zai-org/GLM-V #114).
    Family("glm-4v", (r"glm-?4(\.\d)?v",), Frame("scale", 1000), "glm", "glm"),
    # Molmo: <point x= y=> percent 0-100 (HF allenai/Molmo-7B-O-0924 discussion #1).
    Family("molmo", (r"molmo",), Frame("scale", 100, 1), "molmo", "molmo"),
    # Kimi-VL: bbox_2d 0-1 floats (observed; MoonshotAI/Kimi-VL #52, #56).
    Family("kimi-vl", (r"kimi[-_]?vl",), Frame("scale", 1, 3), "json_bbox_2d", "json_point_2d"),
    Family("generic", (), Frame("pixels"), "json_pixels", "json_pixels"),
)

_COMPILED = [(f, [re.compile(p) for p in f.patterns]) for f in FAMILIES]


def family_for(model: str | None) -> Family:
    """The family whose pattern matches ``model`` first (``generic`` if none).

    Example:
        >>> family_for("claude-sonnet-4-5").name, family_for("llava:13b").name
        ('claude', 'generic')
    """
    return _family_for((model or "").lower())


@functools.lru_cache(maxsize=512)
def _family_for(m: str) -> Family:
    # Cached: a few dozen regex searches per call were a tenth of the emulator's time per request.
    for fam, pats in _COMPILED:
        if any(p.search(m) for p in pats):
            return fam
    return FAMILIES[-1]


# --- output syntax -------------------------------------------------------------------------------

Box = tuple[str, tuple[float, float, float, float]]
Pt = tuple[str, tuple[float, float]]


def _conv_box(
    fam: Family, box: tuple[float, float, float, float], size: tuple[int, int]
) -> list[float | int]:
    mw, mh = fam.frame.model_size(size)
    w, h = size
    f = fam.frame
    return [
        f.convert(box[0], w, mw),
        f.convert(box[1], h, mh),
        f.convert(box[2], w, mw),
        f.convert(box[3], h, mh),
    ]


def _conv_pt(fam: Family, pt: tuple[float, float], size: tuple[int, int]) -> list[float | int]:
    mw, mh = fam.frame.model_size(size)
    return [fam.frame.convert(pt[0], size[0], mw), fam.frame.convert(pt[1], size[1], mh)]


def _dumps(obj: object) -> str:
    # One object per line, like the models print it.
    if isinstance(obj, list):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join("  " + json.dumps(o) for o in obj) + "\n]"
    return json.dumps(obj)


def format_boxes(fam: Family, boxes: Sequence[Box], size: tuple[int, int]) -> str:
    """Write ``(label, xyxy in received-image pixels)`` boxes the way ``fam`` does.

    Example:
        >>> gemini = family_for("gemini")
        >>> print(format_boxes(gemini, [("red circle", (64, 48, 128, 96))], (640, 480)))
        [
          {"box_2d": [100, 100, 200, 200], "label": "red circle"}
        ]
    """
    conv = [(label, _conv_box(fam, b, size)) for label, b in boxes]
    style = fam.box_style
    if style == "json_bbox_2d":
        return _dumps([{"bbox_2d": c, "label": lab} for lab, c in conv])
    if style == "gemini":
        return _dumps([{"box_2d": [c[1], c[0], c[3], c[2]], "label": lab} for lab, c in conv])
    if style == "json_pixels":
        return _dumps([{"label": lab, "bbox": c} for lab, c in conv])
    if style == "moondream":
        keys = ("x_min", "y_min", "x_max", "y_max")
        return _dumps({"objects": [dict(zip(keys, c, strict=True)) for _, c in conv]})
    if style == "qwen2_tokens":
        return "".join(
            f"<|object_ref_start|>{lab}<|object_ref_end|><|box_start|>({c[0]},{c[1]}),({c[2]},{c[3]})<|box_end|>"
            for lab, c in conv
        )
    if style == "florence":
        return "".join(f"{lab}<loc_{c[0]}><loc_{c[1]}><loc_{c[2]}><loc_{c[3]}>" for lab, c in conv)
    if style == "paligemma":
        return " ; ".join(
            f"<loc{c[1]:04d}><loc{c[0]:04d}><loc{c[3]:04d}><loc{c[2]:04d}> {lab}" for lab, c in conv
        )
    if style == "deepseek":
        return "".join(
            f"<|ref|>{lab}<|/ref|><|det|>[[{c[0]}, {c[1]}, {c[2]}, {c[3]}]]<|/det|>"
            for lab, c in conv
        )
    if style == "internvl":
        return "".join(
            f"<ref>{lab}</ref><box>[[{c[0]}, {c[1]}, {c[2]}, {c[3]}]]</box>" for lab, c in conv
        )
    if style == "glm":
        return "\n".join(
            f"{lab}: <|begin_of_box|>[[{c[0]},{c[1]},{c[2]},{c[3]}]]<|end_of_box|>"
            for lab, c in conv
        )
    if style == "molmo":
        # Molmo has no box syntax: it answers box requests with points at the centres.
        pts = [(lab, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)) for lab, b in boxes]
        return format_points(fam, pts, size)
    raise ValueError(f"unknown box style {style!r}")


def format_points(fam: Family, points: Sequence[Pt], size: tuple[int, int]) -> str:
    """Write ``(label, (x, y) in received-image pixels)`` points the way ``fam`` does.

    Families without a documented point syntax use their box syntax with two numbers.

    Example:
        >>> format_points(family_for("molmo"), [("cat", (320, 120))], (640, 480))
        '<point x="50.0" y="25.0" alt="cat">cat</point>'
    """
    conv = [(label, _conv_pt(fam, p, size)) for label, p in points]
    style = fam.point_style
    if style == "json_point_2d":
        return _dumps([{"point_2d": c, "label": lab} for lab, c in conv])
    if style == "gemini":
        return _dumps([{"point": [c[1], c[0]], "label": lab} for lab, c in conv])
    if style == "json_pixels":
        return _dumps([{"label": lab, "point": c} for lab, c in conv])
    if style == "moondream":
        return _dumps({"points": [{"x": c[0], "y": c[1]} for _, c in conv]})
    if style == "qwen2_tokens":
        return "".join(
            f"<|object_ref_start|>{lab}<|object_ref_end|><|box_start|>({c[0]},{c[1]})<|box_end|>"
            for lab, c in conv
        )
    if style == "florence":
        return "".join(f"{lab}<loc_{c[0]}><loc_{c[1]}>" for lab, c in conv)
    if style == "paligemma":
        return " ; ".join(f"<loc{c[1]:04d}><loc{c[0]:04d}> {lab}" for lab, c in conv)
    if style == "deepseek":
        return "".join(f"<|ref|>{lab}<|/ref|><|det|>[[{c[0]}, {c[1]}]]<|/det|>" for lab, c in conv)
    if style == "internvl":
        return "".join(f"<ref>{lab}</ref><point>[[{c[0]}, {c[1]}]]</point>" for lab, c in conv)
    if style == "glm":
        return "\n".join(
            f"{lab}: <|begin_of_box|>[[{c[0]},{c[1]}]]<|end_of_box|>" for lab, c in conv
        )
    if style == "molmo":
        return "\n".join(
            f'<point x="{c[0]}" y="{c[1]}" alt="{lab}">{lab}</point>' for lab, c in conv
        )
    raise ValueError(f"unknown point style {style!r}")
