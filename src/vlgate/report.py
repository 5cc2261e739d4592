"""One self-contained HTML page showing images, answers, boxes and points.

Thumbnails are embedded as downscaled JPEG data URIs; boxes and points are an SVG overlay drawn
in the original image's pixel frame, so they stay on target at any screen width. Every piece of
text is HTML-escaped, and a Content-Security-Policy forbids scripts and any non-``data:`` image,
so a hostile answer or file name cannot run code. The page has no external resources: it opens
offline, on a phone, or as a CI artifact.

Example:
    >>> item = ReportItem(image=None, title="a.png", answer="Two <cups>")
    >>> page = render_report([item], title="demo")
    >>> "Two &lt;cups&gt;" in page and "<cups>" not in page
    True
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .batchrecord import BatchRecord

__all__ = [
    "CSP",
    "ReportItem",
    "item_from_record",
    "render_report",
    "thumbnail_data_uri",
    "write_report",
]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The page's Content-Security-Policy: no scripts, no network, inline styles only."""

# Distinct, readable on light and dark image content.
_COLOURS = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#9a6324",
    "#ffe119",
)


@dataclass
class ReportItem:
    """One card of the report.

    ``image`` is anything :meth:`vlgate.Image.load` accepts (a path, bytes, a PIL image) or
    ``None``. ``detections`` / ``points`` are dicts with ``label`` and ``xyxy`` / ``xy`` in
    pixels of the original (upright) image of size ``image_size``.
    """

    image: Any
    title: str = ""
    prompt: str | None = None
    answer: str | None = None
    data: Any = None
    detections: Sequence[Mapping[str, Any]] = ()
    points: Sequence[Mapping[str, Any]] = ()
    image_size: tuple[int, int] | None = None
    error: Mapping[str, Any] | None = None
    meta: dict[str, str] = field(default_factory=dict)


def item_from_record(record: BatchRecord | Mapping[str, Any]) -> ReportItem:
    """A card from one ``vlgate batch`` record (a :class:`~vlgate.batchrecord.BatchRecord` or
    its JSON data).

    Example:
        >>> item_from_record({"image": "x.png", "answer": "hi", "error": None}).answer
        'hi'
    """
    rec = record if isinstance(record, BatchRecord) else BatchRecord.from_dict(record)
    meta: dict[str, str] = {}
    usage = rec.usage
    if usage is not None and (usage.input_tokens or usage.output_tokens):
        meta["tokens"] = f"{usage.input_tokens} in / {usage.output_tokens} out"
    if rec.attempts:
        meta["attempts"] = str(rec.attempts)
    if rec.latency is not None:
        meta["latency"] = f"{float(rec.latency):.2f} s"
    error = {"type": rec.error.type, "message": rec.error.message} if rec.error else None
    return ReportItem(
        image=rec.image,
        title=rec.image,
        prompt=rec.prompt,
        answer=rec.answer,
        data=rec.json,
        detections=rec.detections or (),
        points=rec.points or (),
        image_size=rec.image_size,
        error=error,
        meta=meta,
    )


def thumbnail_data_uri(image: Any, max_side: int = 480, quality: int = 72) -> tuple[str, int, int]:
    """A downscaled JPEG data URI of ``image`` and the upright original's ``(w, h)``.

    Raises:
        vlgate.ImageError: the image cannot be loaded.
    """
    from .image import Image

    loaded = image if isinstance(image, Image) else Image.load(image)
    pil = loaded.to_pil()
    width, height = pil.size
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), width, height


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    return f"{float(value):.1f}"


def _overlay(item: ReportItem, width: int, height: int) -> str:
    if not item.detections and not item.points:
        return ""
    colours: dict[str, str] = {}

    def colour(label: str) -> str:
        return colours.setdefault(label, _COLOURS[len(colours) % len(_COLOURS)])

    font = max(10.0, min(width, height) / 28)
    radius = max(3.0, min(width, height) / 90)
    parts = [
        f'<svg class="overlay" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        'xmlns="http://www.w3.org/2000/svg" aria-hidden="true">'
    ]
    for det in item.detections:
        try:
            x1, y1, x2, y2 = (float(v) for v in det["xyxy"])
        except (KeyError, TypeError, ValueError):
            continue
        label = str(det.get("label", ""))
        c = colour(label)
        parts.append(
            f'<rect class="box" x="{_num(x1)}" y="{_num(y1)}" width="{_num(x2 - x1)}" '
            f'height="{_num(y2 - y1)}" stroke="{c}" data-label="{_e(label)}"/>'
        )
        # Labels of boxes on the right half end at the box's right edge, so they stay inside.
        right = x1 > width / 2
        parts.append(
            f'<text x="{_num(x2 if right else x1)}" y="{_num(max(font, y1 - font * 0.25))}" '
            f'text-anchor="{"end" if right else "start"}" '
            f'font-size="{_num(font)}" fill="{c}">{_e(label)}</text>'
        )
    for pt in item.points:
        try:
            x, y = (float(v) for v in pt["xy"])
        except (KeyError, TypeError, ValueError):
            continue
        label = str(pt.get("label", ""))
        c = colour(label)
        parts.append(
            f'<circle class="point" cx="{_num(x)}" cy="{_num(y)}" r="{_num(radius)}" '
            f'fill="{c}" data-label="{_e(label)}"/>'
        )
        right = x > width / 2
        tx = x - radius * 1.5 if right else x + radius * 1.5
        parts.append(
            f'<text x="{_num(tx)}" y="{_num(y)}" text-anchor="{"end" if right else "start"}" '
            f'font-size="{_num(font)}" fill="{c}">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _card(item: ReportItem, thumb_side: int) -> tuple[str, bool]:
    """The HTML of one card and whether it failed."""
    frame = '<div class="noimg">no image</div>'
    if item.image is not None:
        try:
            uri, w, h = thumbnail_data_uri(item.image, thumb_side)
        except Exception as exc:  # a broken image still gets a card with the reason
            frame = f'<div class="noimg">image unavailable: {_e(type(exc).__name__)}</div>'
        else:
            if item.image_size and (item.detections or item.points):
                w, h = item.image_size
            frame = (
                f'<div class="frame"><img src="{uri}" alt="{_e(item.title)}" '
                f'width="{w}" height="{h}" loading="eager">{_overlay(item, w, h)}</div>'
            )
    failed = bool(item.error)
    rows = [f'<h2 class="title">{_e(item.title)}</h2>']
    if item.prompt:
        rows.append(f'<p class="prompt">{_e(item.prompt)}</p>')
    if item.error:
        kind = item.error.get("type", "Error")
        rows.append(f'<p class="error"><b>{_e(kind)}</b>: {_e(item.error.get("message", ""))}</p>')
    if item.answer is not None:
        rows.append(f'<p class="answer">{_e(item.answer)}</p>')
    if item.data is not None:
        text = json.dumps(item.data, indent=2, ensure_ascii=False, default=str)
        rows.append(f'<pre class="json">{_e(text)}</pre>')
    if item.detections or item.points:
        found = [str(d.get("label", "")) for d in (*item.detections, *item.points)]
        rows.append(f'<p class="found">{len(found)} found: {_e(", ".join(found))}</p>')
    if item.meta:
        meta = " · ".join(f"{_e(k)} {_e(v)}" for k, v in item.meta.items())
        rows.append(f'<p class="meta">{meta}</p>')
    status = "failed" if failed else "ok"
    return f'<article class="card {status}">{frame}{"".join(rows)}</article>', failed


_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f4f5f7;color:#1d2330}
header{padding:16px;background:#1d2330;color:#fff}
header h1{margin:0 0 4px;font-size:1.25rem}
header p{margin:0;opacity:.85;overflow-wrap:anywhere}
main{display:grid;gap:14px;padding:14px;
grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr))}
.card{background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 3px #0002}
.card.failed{outline:2px solid #c62828}
.frame{position:relative;line-height:0;background:#ddd}
.frame img{display:block;width:100%;height:auto}
.overlay{position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible}
.overlay .box{fill:none;stroke-width:3;vector-effect:non-scaling-stroke}
.overlay text{font-family:system-ui,sans-serif;font-weight:600;paint-order:stroke;
stroke:#fff;stroke-width:3px;vector-effect:non-scaling-stroke}
.noimg{padding:40px 12px;text-align:center;color:#666;background:#eee}
.card h2,.card p,.card pre{margin:8px 12px;overflow-wrap:anywhere}
.title{font-size:.95rem}
.prompt{color:#555;font-style:italic}
.answer{white-space:pre-wrap}
.json{white-space:pre-wrap;font-size:.8rem;background:#f6f8fa;padding:8px;border-radius:6px}
.error{color:#b71c1c}
.meta,.found{font-size:.8rem;color:#666}
"""


def render_report(
    items: Iterable[ReportItem],
    *,
    title: str = "vlgate report",
    subtitle: str | None = None,
    thumb_side: int = 480,
) -> str:
    """The whole page as a string.

    Example:
        >>> "<!doctype html>" in render_report([], title="empty")
        True
    """
    cards: list[str] = []
    failed = 0
    for item in items:
        card, bad = _card(item, thumb_side)
        cards.append(card)
        failed += bad
    counts = f"{len(cards)} item{'s' if len(cards) != 1 else ''}"
    if failed:
        counts += f", {failed} failed"
    sub = f"<p>{_e(subtitle)}</p>" if subtitle else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="generator" content="vlgate"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head>\n"
        f'<body><header><h1>{_e(title)}</h1>{sub}<p class="counts">{counts}</p></header>\n'
        f"<main>{''.join(cards)}</main></body></html>\n"
    )


def write_report(
    path: str | Path,
    items: Iterable[ReportItem],
    *,
    title: str = "vlgate report",
    subtitle: str | None = None,
    thumb_side: int = 480,
) -> Path:
    """Render the page and write it to ``path`` (UTF-8). Returns the path.

    Example:
        >>> write_report("report.html", [ReportItem("photo.jpg", answer="A cup")])  # doctest: +SKIP
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(items, title=title, subtitle=subtitle, thumb_side=thumb_side)
    out.write_text(page, encoding="utf-8")
    return out
