"""The HTML report in a real browser (headless Chromium): it renders, images load, boxes sit on
target, a hostile answer stays text, and the page's CSP blocks scripts.

Needs the Debian package ``chromium`` (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from vlgate.report import CSP, ReportItem, render_report
from vlgate.testing.scenes import make_scene

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="headless Chromium not installed (apt-get install -y chromium)",
)

PHONE = (412, 915)
PAYLOAD = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold?</b>'

# Runs after load; writes what it measured into the DOM for --dump-dom to carry out.
PROBE = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var b = document.body;
  b.setAttribute('data-images', ok + '/' + imgs.length);
  b.setAttribute('data-overflow', String(document.documentElement.scrollWidth > innerWidth + 1));
  var frame = document.querySelector('.frame img').getBoundingClientRect();
  var box = document.querySelector('rect.box').getBoundingClientRect();
  b.setAttribute('data-frame', [frame.left, frame.top, frame.width, frame.height].join(','));
  b.setAttribute('data-box', [box.left, box.top, box.width, box.height].join(','));
  b.setAttribute('data-probe', 'done');
});
</script>
"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, tuple[int, ...]]:
    folder = tmp_path_factory.mktemp("report")
    scene = make_scene(11, size=(1200, 800), n_shapes=3)
    path = folder / "scene.png"
    path.write_bytes(scene.to_png_bytes())
    box = scene.shapes[0].box
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff broken")
    items = [
        ReportItem(
            image=path,
            title="scene.png",
            prompt="shapes",
            detections=[{"label": s.label, "xyxy": list(s.box)} for s in scene.shapes],
            points=[{"label": "centre", "xy": list(scene.shapes[1].center)}],
            image_size=scene.size,
        ),
        ReportItem(image=path, title=PAYLOAD, answer=PAYLOAD, prompt=PAYLOAD),
        ReportItem(image=broken, title="broken.jpg", error={"type": "ImageError", "message": "x"}),
    ]
    return render_report(items, title="browser test"), box


def _with_probe(page: str, allow_scripts: bool) -> str:
    if allow_scripts:
        relaxed = CSP + "; script-src 'unsafe-inline'"
        page = page.replace(html.escape(CSP, quote=True), relaxed, 1).replace(CSP, relaxed, 1)
    return page.replace("</body>", PROBE + "</body>", 1)


def _body_attrs(dom: str) -> dict[str, str]:
    match = re.search(r"<body([^>]*)>", dom)
    assert match, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))


def test_renders_images_and_boxes_on_a_phone(
    tmp_path: Path, page: tuple[str, tuple[int, ...]]
) -> None:
    text, box = page
    probe = tmp_path / "probe.html"
    probe.write_text(_with_probe(text, allow_scripts=True), encoding="utf-8")
    run = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    attrs = _body_attrs(run.stdout)
    assert attrs.get("data-probe") == "done", run.stderr[-2000:]
    # Both thumbnails and their full-size views decoded (the broken one has none).
    assert attrs["data-images"] == "4/4"
    assert attrs["data-overflow"] == "false"  # no sideways scrolling at phone width
    assert "data-pwned" not in attrs  # the hostile answer stayed text
    assert "bold?" in run.stdout and "<b>bold?</b>" not in run.stdout
    # The first box is drawn where the shape is: original pixels scaled to the displayed image.
    fx, fy, fw, fh = (float(v) for v in attrs["data-frame"].split(","))
    bx, by, bw, bh = (float(v) for v in attrs["data-box"].split(","))
    sx, sy = fw / 1200, fh / 800
    x1, y1, x2, y2 = box
    tol = 4.0  # stroke width and rounding
    assert abs(bx - (fx + x1 * sx)) < tol and abs(by - (fy + y1 * sy)) < tol
    assert abs(bw - (x2 - x1) * sx) < tol and abs(bh - (y2 - y1) * sy) < tol


def test_csp_blocks_injected_scripts(tmp_path: Path, page: tuple[str, tuple[int, ...]]) -> None:
    text, _ = page
    blocked = tmp_path / "blocked.html"
    blocked.write_text(_with_probe(text, allow_scripts=False), encoding="utf-8")
    run = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", blocked.as_uri())
    attrs = _body_attrs(run.stdout)
    assert "<main>" in run.stdout  # the page rendered...
    assert "data-probe" not in attrs  # ...and its CSP kept the script from running


def test_screenshot_is_not_blank(tmp_path: Path, page: tuple[str, tuple[int, ...]]) -> None:
    text, _ = page
    report = tmp_path / "report.html"
    report.write_text(text, encoding="utf-8")
    shot = tmp_path / "shot.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", "--virtual-time-budget=3000", report.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    with PILImage.open(shot) as img:
        assert img.size == PHONE
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20  # header, thumbnails, text: far from a blank page
    # The dark header band is at the top, the light page background below it.
    assert pixels[:20].mean() < 100 < pixels[-20:].mean()
