"""One self-contained HTML page showing images, answers, boxes and points.

Thumbnails are embedded as downscaled JPEG data URIs; boxes and points are an SVG overlay drawn
in the original image's pixel frame, so they stay on target at any screen width. Every piece of
text is HTML-escaped, and a Content-Security-Policy forbids scripts and any non-``data:`` image,
so a hostile answer or file name cannot run code. The page has no external resources: it opens
offline, on a phone, or as a CI artifact.

Readable at any count: each thumbnail opens a full-size view (a CSS ``:target`` overlay, no
script) with the boxes drawn and labelled; label sizes follow the image; past
``grounding.draw.LABEL_LIMIT`` results a card lists each label once in a legend (colour, label,
count) instead of labelling every box; a detect/point card that found nothing says "0 found".

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
from collections import Counter
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
    grounded: bool = False
    """A detect/point result: the card says "0 found" when nothing was found."""


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
    if rec.dropped:
        # Part of the answer could not be read: "0 found" alone would say "nothing there".
        meta["dropped"] = f"{rec.dropped} unreadable"
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
        grounded=rec.task in ("detect", "point"),
    )


def _load_upright(image: Any) -> Any:
    from .image import Image

    loaded = image if isinstance(image, Image) else Image.load(image)
    pil = loaded.to_pil()
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def _jpeg_uri(pil: Any, max_side: int, quality: int) -> str:
    pil = pil.copy()
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def thumbnail_data_uri(image: Any, max_side: int = 480, quality: int = 72) -> tuple[str, int, int]:
    """A downscaled JPEG data URI of ``image`` and the upright original's ``(w, h)``.

    Raises:
        vlgate.ImageError: the image cannot be loaded.
    """
    pil = _load_upright(image)
    width, height = pil.size
    return _jpeg_uri(pil, max_side, quality), width, height


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    return f"{float(value):.1f}"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _results(item: ReportItem) -> list[tuple[str, str, tuple[float, ...]]]:
    """``(kind, label, coordinates)`` of every well-formed box and point of a card."""
    out: list[tuple[str, str, tuple[float, ...]]] = []
    for kind, key, n, rows in (
        ("box", "xyxy", 4, item.detections),
        ("point", "xy", 2, item.points),
    ):
        for row in rows:
            try:
                values = tuple(float(v) for v in row[key])
            except (KeyError, TypeError, ValueError):
                continue
            if len(values) == n:
                out.append((kind, str(row.get("label", "")), values))
    return out


def _palette(results: list[tuple[str, str, tuple[float, ...]]]) -> dict[str, str]:
    """A colour per label, in order of first appearance (the same as ``annotate``'s)."""
    from .grounding.draw import colour_of_index

    colours: dict[str, str] = {}
    for _, label, _ in results:
        if label not in colours:
            colours[label] = _hex(colour_of_index(len(colours)))
    return colours


def _overlay(
    results: list[tuple[str, str, tuple[float, ...]]],
    colours: Mapping[str, str],
    width: int,
    height: int,
    *,
    labels: bool,
    font_frac: float,
) -> str:
    """Boxes and points as SVG in the original image's pixel frame (``viewBox``), so they stay
    on target at any displayed size. ``font_frac``: label height as a fraction of the short
    side (larger on thumbnails, which are shown small)."""
    if not results:
        return ""
    short = min(width, height)
    font = max(1.0, short * font_frac)
    radius = max(2.0, short / 110)
    parts = [
        f'<svg class="overlay" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        'xmlns="http://www.w3.org/2000/svg" aria-hidden="true">'
    ]
    for kind, label, v in results:
        c = colours[label]
        if kind == "box":
            x1, y1, x2, y2 = v
            parts.append(
                f'<rect class="box" x="{_num(x1)}" y="{_num(y1)}" width="{_num(x2 - x1)}" '
                f'height="{_num(y2 - y1)}" stroke="{c}" data-label="{_e(label)}">'
                f"<title>{_e(label)}</title></rect>"
            )
            # Labels of boxes on the right half end at the box's right edge, inside the image.
            right = x1 > width / 2
            tx, ty = (x2 if right else x1), max(font, y1 - font * 0.25)
        else:
            x, y = v
            parts.append(
                f'<circle class="point" cx="{_num(x)}" cy="{_num(y)}" r="{_num(radius)}" '
                f'fill="{c}" data-label="{_e(label)}"><title>{_e(label)}</title></circle>'
            )
            right = x > width / 2
            tx, ty = (x - radius * 1.5 if right else x + radius * 1.5), y
        if labels:
            parts.append(
                f'<text x="{_num(tx)}" y="{_num(ty)}" text-anchor="{"end" if right else "start"}" '
                f'font-size="{_num(font)}" fill="{c}">{_e(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _legend(results: list[tuple[str, str, tuple[float, ...]]], colours: Mapping[str, str]) -> str:
    """Each label once, with its colour and count; the rarest summed up past LEGEND_ROWS."""
    from .grounding.draw import LEGEND_ROWS

    counts = Counter(label for _, label, _ in results)
    rows = counts.most_common()
    shown = rows[:LEGEND_ROWS] if len(rows) > LEGEND_ROWS + 1 else rows
    items = [
        f'<li><span class="sw" style="background:{colours[label]}"></span>{_e(label or "?")} '
        f"<b>×{n}</b></li>"
        for label, n in shown
    ]
    hidden = rows[len(shown) :]
    if hidden:
        more = sum(n for _, n in hidden)
        items.append(f'<li class="more">+{len(hidden)} more labels ({more})</li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


def _found(item: ReportItem, results: list[tuple[str, str, tuple[float, ...]]]) -> str:
    from .grounding.draw import LABEL_LIMIT

    if not results:
        return '<p class="found none">0 found</p>' if item.grounded and not item.error else ""
    counts = Counter(label for _, label, _ in results)
    if len(results) > LABEL_LIMIT:  # the legend below lists them
        noun = "label" if len(counts) == 1 else "labels"
        return f'<p class="found"><b>{len(results)} found</b>, {len(counts)} {noun}:</p>'
    summary = ", ".join(f"{label} ×{n}" if n > 1 else label for label, n in counts.most_common(8))
    if len(counts) > 8:
        summary += f", … ({len(counts) - 8} more labels)"
    return f'<p class="found"><b>{len(results)} found</b>: {_e(summary)}</p>'


def _card(
    item: ReportItem, index: int, thumb_side: int, full_side: int | None
) -> tuple[str, str, bool]:
    """The HTML of one card, of its full-size view (may be empty), and whether it failed."""
    from .grounding.draw import LABEL_LIMIT

    results = _results(item)
    colours = _palette(results)
    many = len(results) > LABEL_LIMIT
    frame = '<div class="noimg">no image</div>'
    full = ""
    if item.image is not None:
        try:
            pil = _load_upright(item.image)
        except Exception as exc:  # a broken image still gets a card with the reason
            frame = f'<div class="noimg">image unavailable: {_e(type(exc).__name__)}</div>'
        else:
            w, h = pil.size
            if item.image_size and results:
                w, h = item.image_size
            thumb = (
                f'<img src="{_jpeg_uri(pil, thumb_side, 72)}" alt="{_e(item.title)}" '
                f'width="{w}" height="{h}" loading="eager">'
                + _overlay(results, colours, w, h, labels=not many, font_frac=1 / 14)
            )
            target = f"full-{index}"
            if full_side is not None:
                big = (
                    f'<img src="{_jpeg_uri(pil, full_side, 82)}" alt="{_e(item.title)}" '
                    f'width="{w}" height="{h}" loading="eager">'
                    + _overlay(results, colours, w, h, labels=len(results) <= 100, font_frac=1 / 36)
                )
                full = (
                    f'<div class="lightbox" id="{target}"><a class="close" href="#_">'
                    f'<span class="bar">{_e(item.title)} — close ✕</span>'
                    f'<div class="full">{big}</div></a>'
                    + (_legend(results, colours) if many else "")
                    + "</div>"
                )
                href = f"#{target}"
            else:
                href = _file_href(item.image)
            frame = (
                f'<a class="open" href="{_e(href)}" title="open full size">'
                f'<div class="frame">{thumb}</div></a>'
                if href
                else f'<div class="frame">{thumb}</div>'
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
    rows.append(_found(item, results))
    if many:
        rows.append(_legend(results, colours))
    if item.meta:
        meta = " · ".join(f"{_e(k)} {_e(v)}" for k, v in item.meta.items())
        rows.append(f'<p class="meta">{meta}</p>')
    status = "failed" if failed else "ok"
    return f'<article class="card {status}">{frame}{"".join(rows)}</article>', full, failed


def _file_href(image: Any) -> str:
    """A link to the original file, when the image is one (large reports embed no full size)."""
    if isinstance(image, str | Path) and not str(image).startswith(("data:", "http:", "https:")):
        try:
            return Path(image).resolve().as_uri()
        except (OSError, ValueError):
            return ""
    if isinstance(image, str) and image.startswith(("http:", "https:")):
        return image
    return ""


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
.open{display:block;cursor:zoom-in}
.frame,.full{position:relative;line-height:0;background:#ddd}
.frame img,.full img{display:block;width:100%;height:auto}
.overlay{position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible}
.overlay .box{fill:none;stroke-width:2;vector-effect:non-scaling-stroke}
.overlay text{font-family:system-ui,sans-serif;font-weight:600;paint-order:stroke;
stroke:#fff;stroke-width:3px;vector-effect:non-scaling-stroke}
.noimg{padding:40px 12px;text-align:center;color:#666;background:#eee}
.card h2,.card p,.card pre,.card ul{margin:8px 12px;overflow-wrap:anywhere}
.title{font-size:.95rem}
.prompt{color:#555;font-style:italic}
.answer{white-space:pre-wrap}
.json{white-space:pre-wrap;font-size:.8rem;background:#f6f8fa;padding:8px;border-radius:6px}
.error{color:#b71c1c}
.meta,.found{font-size:.8rem;color:#666}
.found.none{font-size:.9rem;color:#1d2330;font-weight:600}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 12px;font-size:.8rem}
.legend li{display:flex;align-items:center;gap:5px}
.legend .sw{width:12px;height:12px;border-radius:3px;flex:none;outline:1px solid #0003}
.lightbox{display:none;position:fixed;inset:0;z-index:9;background:#000e;overflow:auto;
padding:8px}
.lightbox:target{display:block}
.lightbox .close{display:block;color:#fff;text-decoration:none;cursor:zoom-out}
.lightbox .bar{display:block;padding:4px 2px 8px;line-height:1.4;overflow-wrap:anywhere}
.lightbox .full{max-width:min(100%,1600px);margin:0 auto}
.lightbox .legend{color:#fff;max-width:1600px;margin:10px auto;font-size:.9rem}
"""


def render_report(
    items: Iterable[ReportItem],
    *,
    title: str = "vlgate report",
    subtitle: str | None = None,
    thumb_side: int = 480,
    full_side: int | None = 1600,
) -> str:
    """The whole page as a string.

    Each thumbnail opens a full-size view (the image at most ``full_side`` pixels, embedded,
    with the boxes and labels drawn); with ``full_side=None`` nothing more is embedded and a
    thumbnail of a file links to that file instead (for very large reports).

    Example:
        >>> "<!doctype html>" in render_report([], title="empty")
        True
    """
    cards: list[str] = []
    views: list[str] = []
    failed = 0
    for index, item in enumerate(items):
        card, view, bad = _card(item, index, thumb_side, full_side)
        cards.append(card)
        views.append(view)
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
        f"<main>{''.join(cards)}</main>{''.join(views)}</body></html>\n"
    )


def write_report(
    path: str | Path,
    items: Iterable[ReportItem],
    *,
    title: str = "vlgate report",
    subtitle: str | None = None,
    thumb_side: int = 480,
    full_side: int | None = 1600,
) -> Path:
    """Render the page and write it to ``path`` (UTF-8). Returns the path.

    Example:
        >>> write_report("report.html", [ReportItem("photo.jpg", answer="A cup")])  # doctest: +SKIP
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(
        items, title=title, subtitle=subtitle, thumb_side=thumb_side, full_side=full_side
    )
    out.write_text(page, encoding="utf-8")
    return out
