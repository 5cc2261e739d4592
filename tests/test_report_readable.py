"""Annotated images and the HTML report stay readable at any count (issue 17, point 6).

Labels scale with the image; past LABEL_LIMIT results they go into a legend; thumbnails open a
full-size view; an empty result says "0 found". The browser checks need headless Chromium.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from vlgate.grounding import Detection, Detections, Point, Points
from vlgate.grounding.draw import LABEL_LIMIT, LEGEND_ROWS
from vlgate.report import ReportItem, render_report

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
LABELS = ["person", "car", "bicycle", "dog", "bench", "bird", "truck", "bus", "cat", "chair"]
LABELS += ["umbrella", "backpack", "handbag", "kite", "cup", "bottle"]


def _many(n: int, size: tuple[int, int] = (1280, 720), seed: int = 0) -> list[Detection]:
    rng = random.Random(seed)
    w, h = size
    out = []
    for _ in range(n):
        x, y = rng.uniform(0, w - 90), rng.uniform(0, h - 70)
        box = (x, y, x + rng.uniform(10, 80), y + rng.uniform(10, 60))
        out.append(Detection(LABELS[rng.randrange(len(LABELS))], box))
    return out


def _tag_height(img: PILImage.Image, box: tuple[float, float, float, float]) -> int:
    """Height of the filled label tag drawn just above ``box`` (rows of non-black pixels)."""
    arr = np.asarray(img)
    x = int(box[0]) + 3
    y = int(box[1]) - 1
    rows = 0
    while y - rows >= 0 and arr[y - rows, x].sum() > 60:
        rows += 1
    return rows


def test_labels_scale_with_the_image() -> None:
    heights = {}
    for w, h in ((320, 180), (1280, 720), (3840, 2160)):
        box = (w * 0.3, h * 0.5, w * 0.6, h * 0.8)
        out = Detections([Detection("cup", box)], image_size=(w, h)).annotate(
            PILImage.new("RGB", (w, h))
        )
        assert out.size == (w, h)
        heights[w] = _tag_height(out, box)
    assert heights[320] >= 11  # never below a legible minimum
    assert 2.5 < heights[3840] / heights[1280] < 3.5  # proportional to the image
    assert heights[1280] >= 720 / 40  # a 1280x720 frame gets labels of ~3.5 % of its height


def test_past_the_limit_labels_go_into_one_legend() -> None:
    black = PILImage.new("RGB", (1280, 720))
    few = _many(LABEL_LIMIT, seed=1)
    many = _many(500, seed=2)
    labelled = np.asarray(Detections(few).annotate(black), dtype=np.int32)
    legend = np.asarray(Detections(many).annotate(black), dtype=np.int32)
    assert labelled.shape == legend.shape == (720, 1280, 3)
    # The legend: a light panel in the top-left corner, drawn once.
    corner = legend[5:200, 5:150]
    assert (corner.sum(axis=2) > 600).mean() > 0.5
    # Without it, the corner is what the boxes and their tags made of a black image.
    assert (labelled[5:200, 5:150].sum(axis=2) > 600).mean() < 0.5
    # Points follow the same rule.
    pts = Points([Point("a", (10.0 + i, 300.0)) for i in range(LABEL_LIMIT + 1)])
    arr = np.asarray(pts.annotate(black), dtype=np.int32)
    assert (arr[5:60, 5:100].sum(axis=2) > 600).mean() > 0.5


def _items(tmp_path: Path) -> list[ReportItem]:
    from vlgate.testing.scenes import make_scene

    items = []
    for k, n in enumerate((500, 3, 0)):
        path = tmp_path / f"img{k}.png"
        path.write_bytes(make_scene(30 + k, size=(1280, 720)).to_png_bytes())
        dets = [{"label": d.label, "xyxy": list(d.xyxy)} for d in _many(n, seed=k)]
        items.append(
            ReportItem(
                image=path,
                title=path.name,
                prompt="things",
                detections=dets,
                image_size=(1280, 720),
                grounded=True,
            )
        )
    return items


def test_report_legend_zero_found_and_full_size_views(tmp_path: Path) -> None:
    page = render_report(_items(tmp_path), title="many")
    cards = page.split('<article class="card')[1:]
    crowded, few, empty = cards
    assert "<text" not in crowded.split("</a>", 1)[0]  # no per-box labels on the thumbnail
    legend = re.search(r'<ul class="legend">(.*?)</ul>', crowded)
    assert legend is not None
    assert legend.group(1).count("<li") <= LEGEND_ROWS + 1  # deduplicated, bounded
    assert "500 found" in crowded
    assert few.split("</a>", 1)[0].count("<text") == 3 and "legend" not in few
    assert "0 found" in empty
    for i in range(3):  # every thumbnail opens its full-size view, in the same page
        assert f'href="#full-{i}"' in page and f'id="full-{i}"' in page
    assert page.count('class="box"') == 2 * 503  # thumbnail and full view


def test_large_reports_link_thumbnails_to_the_files(tmp_path: Path) -> None:
    items = _items(tmp_path)
    page = render_report(items, title="big", full_side=None)
    assert 'class="lightbox"' not in page
    assert page.count('href="file://') == 3
    assert Path(items[0].image).resolve().as_uri() in page


def _chromium(tmp_path: Path, url: str, size: tuple[int, int], *args: str) -> Path:
    shot = tmp_path / f"shot-{size[0]}-{len(list(tmp_path.glob('shot-*')))}.png"
    profile = tmp_path / f"profile-{shot.stem}"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--screenshot={shot}",
        f"--window-size={size[0]},{size[1]}",
        "--virtual-time-budget=3000",
        *args,
        url,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), run.stderr[-2000:]
    return shot


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
@pytest.mark.parametrize("size", [(1400, 900), (412, 915)], ids=["desktop", "phone"])
def test_500_detections_readable_in_a_browser(tmp_path: Path, size: tuple[int, int]) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_report(_items(tmp_path), title="500 detections"), encoding="utf-8")
    shot = _chromium(tmp_path, report.as_uri(), size)
    with PILImage.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.int32)
    assert pixels.shape[:2] == (size[1], size[0])
    # The first card (500 boxes) and its legend fit in the first screen: below the header, the
    # page is not one wall of label text. Light page background shows between the cards.
    light = (pixels.sum(axis=2) > 690).mean()
    assert light > 0.15
    # The full-size view: the #full-0 target covers the page with the dark lightbox.
    full = _chromium(tmp_path, report.as_uri() + "#full-0", size)
    with PILImage.open(full) as img:
        dark = (np.asarray(img.convert("L"), dtype=np.int32) < 40).mean()
    assert dark > 0.1
