"""The HTML report: structure, embedded thumbnails, overlay geometry, and escaping."""

from __future__ import annotations

import base64
import html.parser
import io
import re
from pathlib import Path

from PIL import Image as PILImage

from vlgate.report import CSP, ReportItem, item_from_record, render_report, write_report
from vlgate.testing.scenes import make_scene

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">"\'&'


class _Collector(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text outside tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Collector:
    c = _Collector()
    c.feed(page)
    return c


def scene_png(tmp_path: Path, name: str = "s.png", size: tuple[int, int] = (800, 600)) -> Path:
    path = tmp_path / name
    path.write_bytes(make_scene(5, size=size, n_shapes=2).to_png_bytes())
    return path


def test_page_is_self_contained_and_mobile_ready(tmp_path: Path) -> None:
    page = render_report([ReportItem(image=scene_png(tmp_path), title="s.png", answer="ok")])
    doc = parse(page)
    metas = [a for t, a in doc.tags if t == "meta"]
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert any(
        a.get("http-equiv") == "Content-Security-Policy" and a["content"] == CSP for a in metas
    )
    assert "script-src" not in CSP and "default-src 'none'" in CSP
    # No external resource of any kind: every src is a data URI, no link/script tags.
    assert not [t for t, _ in doc.tags if t in ("script", "link", "iframe", "object")]
    srcs = [a["src"] for t, a in doc.tags if t == "img"]
    assert srcs and all(str(s).startswith("data:image/jpeg;base64,") for s in srcs)
    assert "@media" in page or "minmax(" in page  # a responsive grid


def test_thumbnail_is_downscaled_jpeg_of_the_upright_image(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(make_scene(2, size=(640, 480)).to_jpeg_bytes(exif_orientation=6))
    page = render_report([ReportItem(image=path, title="r")], thumb_side=200)
    img = next(a for t, a in parse(page).tags if t == "img")
    data = base64.b64decode(str(img["src"]).split(",", 1)[1])
    with PILImage.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (200, 150)  # upright 640x480, EXIF applied
    assert (img["width"], img["height"]) == ("640", "480")


def test_overlay_is_in_original_pixels(tmp_path: Path) -> None:
    item = ReportItem(
        image=scene_png(tmp_path),
        title="s",
        detections=[{"label": "cup", "xyxy": [10, 20, 110, 220]}],
        points=[{"label": "handle", "xy": [400.5, 300]}],
        image_size=(800, 600),
    )
    doc = parse(render_report([item], thumb_side=100))
    svg = next(a for t, a in doc.tags if t == "svg")
    assert svg["viewbox"] == "0 0 800 600"
    rect = next(a for t, a in doc.tags if t == "rect")
    assert (rect["x"], rect["y"], rect["width"], rect["height"]) == (
        "10.0",
        "20.0",
        "100.0",
        "200.0",
    )
    circle = next(a for t, a in doc.tags if t == "circle")
    assert (circle["cx"], circle["cy"]) == ("400.5", "300.0")


def test_every_text_field_is_escaped(tmp_path: Path) -> None:
    item = ReportItem(
        image=scene_png(tmp_path),
        title=HOSTILE,
        prompt=HOSTILE,
        answer=HOSTILE,
        data={"k": HOSTILE},
        detections=[{"label": HOSTILE, "xyxy": [1, 2, 3, 4]}],
        points=[{"label": HOSTILE, "xy": [5, 6]}],
        image_size=(800, 600),
        error={"type": HOSTILE, "message": HOSTILE},
        meta={HOSTILE: HOSTILE},
    )
    page = render_report([item], title=HOSTILE, subtitle=HOSTILE)
    assert "<script" not in page
    doc = parse(page)
    assert [t for t, _ in doc.tags if t == "script"] == []
    assert sum(1 for t, _ in doc.tags if t == "img") == 2  # the thumbnail and its full view
    assert all(not k.startswith("on") for _, attrs in doc.tags for k in attrs)
    # The text reads back exactly as written.
    text = "".join(doc.text)
    assert text.count(HOSTILE) >= 8
    title_attr = next(a for t, a in doc.tags if t == "img")["alt"]
    assert title_attr == HOSTILE


def test_failed_and_broken_items(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff nope")
    items = [
        ReportItem(image=broken, title="broken", error={"type": "ImageError", "message": "bad"}),
        ReportItem(image=None, title="none", answer="text only"),
    ]
    page = render_report(items)
    assert page.count('class="card failed"') == 1
    assert "image unavailable: ImageError" in page
    assert "2 items, 1 failed" in page


def test_item_from_batch_record_and_write(tmp_path: Path) -> None:
    png = scene_png(tmp_path)
    record = {
        "image": str(png),
        "task": "detect",
        "prompt": "shapes",
        "detections": [{"label": "a", "xyxy": [1, 2, 30, 40], "score": None}],
        "image_size": [800, 600],
        "usage": {"input_tokens": 120, "output_tokens": 7},
        "attempts": 2,
        "latency": 0.25,
        "error": None,
    }
    item = item_from_record(record)
    assert item.image_size == (800, 600)
    assert item.meta == {"tokens": "120 in / 7 out", "attempts": "2", "latency": "0.25 s"}
    out = write_report(tmp_path / "sub" / "r.html", [item], title="t")
    page = out.read_text(encoding="utf-8")
    assert re.search(r'<rect class="box" x="1.0" y="2.0" width="29.0" height="38.0"', page)
    assert "120 in / 7 out" in page
    partly = item_from_record({**record, "detections": [], "dropped": 2})
    assert partly.meta["dropped"] == "2 unreadable"
    assert "dropped 2 unreadable" in render_report([partly])
