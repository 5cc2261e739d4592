"""Scenes, the emulator's vision, and native grounding answers decoded by an independent decoder.

The decoder below is deliberately tiny and separate from vlgate.grounding and from the
emulator's own formatter; resize targets for pixel-frame families are the worked examples of
coords.md (1920x1080 -> Qwen2.5-VL 1932x1092, Claude ~1456x819, GPT tile 1365x768).
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from vlgate.testing import Emulator
from vlgate.testing.scenes import SCENE_SIZES, make_scene
from vlgate.testing.vision import analyze

from .conftest import assert_describes

KEY = "emu-key"
Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


# --- scenes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_scene_ground_truth_is_consistent(seed: int) -> None:
    s = make_scene(seed)
    w, h = s.size
    assert s.size in SCENE_SIZES and s.image.mode == "RGB"
    short = min(w, h)
    for i, a in enumerate(s.shapes):
        x1, y1, x2, y2 = a.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert 0.04 * short <= min(x2 - x1, y2 - y1) and max(x2 - x1, y2 - y1) <= 0.31 * short
        assert a.label == f"{a.colour} {a.shape}"
        for b in s.shapes[i + 1 :]:
            assert iou(a.box, b.box) == 0.0
    assert sum(s.counts[c] for c in {sh.colour for sh in s.shapes}) == len(s.shapes)


def test_scene_is_deterministic() -> None:
    a, b = make_scene(11, size=(640, 480)), make_scene(11, size=(640, 480))
    assert a.shapes == b.shapes and a.image.tobytes() == b.image.tobytes()


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_jpeg_is_upright_after_transpose(k: int) -> None:
    s = make_scene(4, size=(320, 240))
    data = s.to_jpeg_bytes(exif_orientation=k)
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif()[0x0112] == k
        upright = ImageOps.exif_transpose(im).convert("RGB")
    assert upright.size == s.size
    diff = np.abs(np.asarray(upright, dtype=np.int16) - np.asarray(s.image, dtype=np.int16))
    assert diff.mean() < 4


# --- vision --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "k"), [(0, None), (1, 6), (2, 3), (3, 8), (5, 5), (9, None), (10, 6), (12, 2)]
)
def test_vision_recovers_scene(seed: int, k: int | None) -> None:
    s = make_scene(seed)
    sight = analyze(s.to_jpeg_bytes(exif_orientation=k))
    assert sight is not None and sight.size == s.size
    assert sorted(o.label for o in sight.objects) == sorted(sh.label for sh in s.shapes)
    for sh in s.shapes:
        assert max(iou(sh.box, o.box) for o in sight.objects if o.label == sh.label) > 0.9


def test_vision_png_and_garbage() -> None:
    s = make_scene(21, size=(800, 600))
    sight = analyze(s.to_png_bytes())
    assert sight is not None and sorted(o.label for o in sight.objects) == sorted(
        x.label for x in s.shapes
    )
    assert analyze(b"\x89PNG\r\n\x1a\nbroken") is None


def test_vision_mean_colour() -> None:
    # The mean colour is computed on first use; it is that of the sampled grid (every 4th pixel
    # of a 320x240 frame), each channel truncated, and part of the repr and of equality.
    solid = Image.new("RGB", (320, 240), (31, 20, 7))  # too dark for a scene
    buf = io.BytesIO()
    solid.save(buf, "PNG")
    blank = analyze(buf.getvalue())
    assert blank is not None and not blank.scene and blank.mean_rgb == (31, 20, 7)
    s = make_scene(4, size=(320, 240))
    sight = analyze(s.to_png_bytes())
    grid = np.asarray(s.image)[::4, ::4].reshape(-1, 3).astype(np.int64)
    expected = tuple(int(v) for v in grid.sum(axis=0) // len(grid))
    assert sight is not None and sight.scene and sight.mean_rgb == expected
    assert f"mean_rgb={expected!r}, scene=True)" in repr(sight)
    again = analyze(s.to_png_bytes() + b"\0")  # same pixels, new bytes: a fresh analysis
    assert again is not sight and again == sight and hash(again) == hash(sight)
    assert sight != blank


def test_vision_is_fast_on_12mp_jpeg() -> None:
    s = make_scene(8, size=(4032, 3024))
    data = s.to_jpeg_bytes(exif_orientation=6)
    best = min(_timed(analyze, data + bytes([i])) for i in range(3))  # uncached each time
    assert best < 0.25  # ~35 ms when the machine is idle


def _timed(fn: Callable[[bytes], object], arg: bytes) -> float:
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


# --- native grounding answers ---------------------------------------------------------------------

SCENE = make_scene(6, size=(1920, 1080), n_shapes=5)
W, H = SCENE.size
URI = "data:image/jpeg;base64," + base64.b64encode(SCENE.to_jpeg_bytes(exif_orientation=6)).decode()


def _json(text: str) -> object:
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return json.loads(m.group(1) if m else text)


def _n(xs: tuple[str, ...]) -> list[float]:
    return [float(x) for x in xs]


def decode(family: str, text: str) -> list[tuple[str | None, Box]]:
    """Independent decoder of each family's native detection output -> original pixels."""
    out: list[tuple[str | None, Box]] = []

    def scaled(
        label: str | None, v: list[float], sx: float, sy: float, yx: bool = False, off: float = 0
    ) -> None:
        x1, y1, x2, y2 = (v[1], v[0], v[3], v[2]) if yx else v
        out.append((label, ((x1 + off) * sx, (y1 + off) * sy, (x2 + off) * sx, (y2 + off) * sy)))

    if family in ("qwen2.5-vl", "qwen3-vl", "kimi-vl", "gemini", "claude", "gpt", "generic"):
        frame = {
            "qwen2.5-vl": (W / 1932, H / 1092),
            "qwen3-vl": (W / 1000, H / 1000),
            "kimi-vl": (W, H),
            "gemini": (W / 1000, H / 1000),
            "claude": (W / 1456, H / 819),
            "gpt": (W / 1365, H / 768),
            "generic": (1.0, 1.0),
        }[family]
        for item in _json(text):  # type: ignore[attr-defined]
            key = next(k for k in ("bbox_2d", "box_2d", "bbox") if k in item)
            scaled(item["label"], [float(v) for v in item[key]], *frame, yx=family == "gemini")
    elif family == "moondream":
        for o in _json(text)["objects"]:  # type: ignore[index]
            scaled(None, [o["x_min"], o["y_min"], o["x_max"], o["y_max"]], W, H)
    else:
        patterns = {
            "qwen2-vl": (
                r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|><\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>",
                1000,
                False,
                0.0,
            ),
            "florence-2": (
                r"([^<>]+)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>",
                1000,
                False,
                0.5,
            ),
            "deepseek-vl2": (
                r"<\|ref\|>(.*?)<\|/ref\|><\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]",
                999,
                False,
                0.0,
            ),
            "internvl": (
                r"<ref>(.*?)</ref><box>\[\[(\d+), (\d+), (\d+), (\d+)\]\]",
                1000,
                False,
                0.0,
            ),
            "glm-4v": (
                r"([a-z ]+): <\|begin_of_box\|>\[\[(\d+),(\d+),(\d+),(\d+)\]\]",
                1000,
                False,
                0.0,
            ),
            "paligemma": (
                r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})> ([a-z ]+)",
                1024,
                True,
                0.0,
            ),
        }
        rx, scale, yx, off = patterns[family]
        for m in re.finditer(rx, text):
            g = m.groups()
            label, nums = (g[-1], g[:4]) if family == "paligemma" else (g[0], g[1:])
            scaled(label.strip(), _n(nums), W / scale, H / scale, yx=yx, off=off)
    return out


FAMILY_MODELS = [
    ("qwen2.5-vl", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ("qwen2.5-vl", "qwen2.5vl:7b"),
    ("qwen3-vl", "qwen3-vl-plus"),
    ("qwen2-vl", "Qwen/Qwen2-VL-7B-Instruct"),
    ("gemini", "gemini-2.5-flash"),
    ("claude", "claude-sonnet-4-5"),
    ("gpt", "gpt-4o"),
    ("moondream", "moondream2"),
    ("florence-2", "microsoft/Florence-2-large"),
    ("paligemma", "google/paligemma2-3b"),
    ("deepseek-vl2", "deepseek-vl2-small"),
    ("internvl", "OpenGVLab/InternVL3-8B"),
    ("glm-4v", "glm-4.5v"),
    ("kimi-vl", "moonshotai/Kimi-VL-A3B-Instruct"),
    ("generic", "llava-hf/llava-1.5-7b"),
]


@pytest.fixture(scope="module")
def clean() -> Iterator[httpx.Client]:
    with (
        Emulator(api_key=KEY, noise=False) as e,
        httpx.Client(
            base_url=e.openai_base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ) as c,
    ):
        yield c


def ask(c: httpx.Client, model: str, prompt: str) -> str:
    content = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": URI}}]
    r = c.post(
        "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize(("family", "model"), FAMILY_MODELS, ids=[m for _, m in FAMILY_MODELS])
def test_detections_in_native_convention(clean: httpx.Client, family: str, model: str) -> None:
    text = ask(clean, model, "Detect all shapes and output their bounding boxes.")
    found = decode(family, text)
    assert len(found) == len(SCENE.shapes), text
    for sh in SCENE.shapes:
        cands = [b for lab, b in found if lab in (None, sh.label)]
        assert max(iou(sh.box, b) for b in cands) > 0.9, (sh, text)


@pytest.mark.parametrize(
    ("model", "rx", "scale", "yx"),
    [
        pytest.param(
            "gemini-2.0-flash", r'"point": \[(\d+), (\d+)\]', (1000, 1000), True, id="gemini-yx"
        ),
        pytest.param(
            "qwen3-vl-235b", r'"point_2d": \[(\d+), (\d+)\]', (1000, 1000), False, id="qwen3"
        ),
        pytest.param(
            "qwen2.5-vl-72b", r'"point_2d": \[(\d+), (\d+)\]', (1932, 1092), False, id="qwen25"
        ),
        pytest.param(
            "molmo-7b-d", r'<point x="([\d.]+)" y="([\d.]+)"', (100, 100), False, id="molmo"
        ),
        pytest.param("moondream2", r'"x": ([\d.]+), "y": ([\d.]+)', (1, 1), False, id="moondream"),
    ],
)
def test_points_land_inside_boxes(
    clean: httpx.Client, model: str, rx: str, scale: tuple[int, int], yx: bool
) -> None:
    text = ask(clean, model, "Point to each shape.")
    pts = [(float(a), float(b)) for a, b in re.findall(rx, text)]
    assert len(pts) == len(SCENE.shapes)
    for p in pts:
        x, y = (p[1], p[0]) if yx else p
        x, y = x * W / scale[0], y * H / scale[1]
        assert any(
            b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in (s.box for s in SCENE.shapes)
        ), text


def test_detection_target_filter(clean: httpx.Client) -> None:
    target = SCENE.shapes[0]
    text = ask(
        clean, "gemini-2.5-pro", f"Detect the {target.colour} {target.shape}s, output box_2d."
    )
    labels = [o["label"] for o in json.loads(text)]
    assert labels and set(labels) == {target.label}
    assert len(labels) == SCENE.counts[target.label]


@pytest.mark.parametrize("colour", ["red", "green", "blue", "yellow", "purple"])
def test_counting(clean: httpx.Client, colour: str) -> None:
    n = SCENE.counts.get(colour, 0)
    text = ask(clean, "gpt-4o", f"How many {colour} shapes are there? Answer with just the number.")
    assert text == str(n)


def test_caption_mentions_every_shape(clean: httpx.Client) -> None:
    text = ask(clean, "claude-sonnet-4-5", "Describe the image.")
    assert text.startswith("A wide image of 5 shapes")
    assert_describes(text, SCENE)
    assert "1920" not in text and "1080" not in text


def test_noise_is_deterministic_and_parseable() -> None:
    with (
        Emulator(api_key=KEY, seed=5) as e,
        httpx.Client(base_url=e.openai_base, headers={"Authorization": f"Bearer {KEY}"}) as c,
    ):
        texts = [
            ask(c, "qwen3-vl-plus", f"Detect every shape (bbox_2d). Request {i}.")
            for i in range(12)
        ]
        again = [
            ask(c, "qwen3-vl-plus", f"Detect every shape (bbox_2d). Request {i}.")
            for i in range(12)
        ]
    assert texts == again
    assert any("```json" in t for t in texts) and any(
        not t.lstrip().startswith("```") for t in texts
    )
    for t in texts:
        assert "bbox_2d" in t


def test_an_emulator_keeps_only_its_latest_requests_when_asked() -> None:
    """A served emulator (vlgate emulate, python -m vlgate.testing) keeps a bounded record:
    every record holds its request body, so keeping all of them grew without end."""
    with Emulator(api_key=KEY, keep_requests=2) as emu, httpx.Client() as client:
        for i in range(5):
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"n={i}"}]}
            r = client.post(
                emu.openai_base + "/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {KEY}"},
            )
            assert r.status_code == 200
        assert [rec.body["messages"][0]["content"] for rec in emu.requests] == ["n=3", "n=4"]
        assert emu.last.body["messages"][0]["content"] == "n=4"


def _flood_components(
    labels: np.ndarray, diagonal: bool
) -> list[tuple[int, int, int, int, int, int]]:
    """Connected components by a plain flood fill: the reference for the run-based labelling."""
    h, w = labels.shape
    seen = np.zeros(labels.shape, bool)
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    if not diagonal:
        steps = [(dy, dx) for dy, dx in steps if not (dy and dx)]
    out = []
    for y in range(h):
        for x in range(w):
            if labels[y, x] < 0 or seen[y, x]:
                continue
            seen[y, x] = True
            todo, pts = [(y, x)], []
            while todo:
                cy, cx = todo.pop()
                pts.append((cy, cx))
                for dy, dx in steps:
                    ny, nx = cy + dy, cx + dx
                    inside = 0 <= ny < h and 0 <= nx < w
                    if inside and not seen[ny, nx] and labels[ny, nx] == labels[y, x]:
                        seen[ny, nx] = True
                        todo.append((ny, nx))
            ys, xs = [p[0] for p in pts], [p[1] for p in pts]
            out.append((int(labels[y, x]), min(ys), min(xs), max(ys), max(xs), len(pts)))
    return sorted(out)


@pytest.mark.parametrize("diagonal", [False, True])
def test_component_labelling_matches_a_flood_fill(diagonal: bool) -> None:
    from vlgate.testing.vision import _labelled_components

    # The corner the run sweep once missed: a colour-2 run ends where the run above it (colour
    # 1) ends, and the next run above (colour 2 again) starts there, touching it diagonally.
    corner = np.array([[1, 1, 1, 2, 2], [-1, 2, 2, -1, -1]], np.int8)
    assert sorted(_labelled_components(corner, diagonal=diagonal)) == _flood_components(
        corner, diagonal
    )
    rng = np.random.default_rng(7)
    for _ in range(1500):
        h, w = (int(v) for v in rng.integers(1, 9, 2))
        labels = rng.integers(-1, int(rng.integers(1, 4)), (h, w)).astype(np.int8)
        got = sorted(_labelled_components(labels, diagonal=diagonal))
        assert got == _flood_components(labels, diagonal), labels
