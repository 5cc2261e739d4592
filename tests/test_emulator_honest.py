"""Issue 20 item 4: the emulator knows when an image is not one of its synthetic scenes and then
answers as a real model that can name nothing in it would, saying so in a response header."""

from __future__ import annotations

import base64
import importlib.util
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.answers import UNRECOGNISED_CAPTION
from vlgate.testing.emulator import SCENE_HEADER
from vlgate.testing.scenes import make_scene
from vlgate.testing.vision import analyze, looks_like_scene

from .conftest import assert_describes

KEY = "emu-key"


def photo_like(size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """A natural-looking image: smooth colour gradients, soft blobs, sensor noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    sky = np.stack([110 + 0.15 * yy, 140 + 0.1 * yy, 200 - 0.1 * yy], axis=-1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(40, 160)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        sky = sky * (1 - blob) + rng.uniform(20, 235, 3) * blob
    sky += rng.normal(0, 10, sky.shape)
    return Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _real_photograph() -> Path | None:
    """Grace Hopper's portrait, shipped with matplotlib's sample data, when installed."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    return path if path.is_file() else None


@pytest.mark.parametrize("seed", range(8))
def test_scenes_are_recognised(seed: int) -> None:
    scene = make_scene(seed)
    sight = analyze(scene.to_jpeg_bytes())
    assert sight is not None and sight.scene
    assert sorted(o.label for o in sight.objects) == sorted(s.label for s in scene.shapes)


def test_photographs_noise_and_blank_pages_are_not_scenes() -> None:
    images = [photo_like(seed=s) for s in range(3)]
    images.append(
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (240, 320, 3), np.uint8))
    )
    images.append(Image.new("RGB", (320, 240), "white"))
    photo = _real_photograph()
    if photo is not None:
        images.append(Image.open(photo).convert("RGB"))
    for image in images:
        assert not looks_like_scene(np.asarray(image))
        sight = analyze(_jpeg(image))
        assert sight is not None and not sight.scene and sight.objects == ()


def test_scene_test_beyond_the_colours_it_counts_first() -> None:
    # A grey-93 background is grey to the scene test but not among the 16 colours it counts
    # first: the count of all colours still finds the scene. A background of faintly tinted
    # greys of every level (grey too, but hundreds of coarse colours) is not a scene.
    pix = np.full((240, 320, 3), 93, np.uint8)
    pix[40:100, 50:120] = (220, 30, 30)
    assert looks_like_scene(pix)
    rng = np.random.default_rng(3)
    tinted = rng.integers(100, 200, (240, 320, 1)) + rng.integers(-15, 15, (240, 320, 3))
    tinted[40:100, 50:120] = (220, 30, 30)
    assert not looks_like_scene(tinted.astype(np.uint8))


def _ask(emu: Emulator, image: bytes, prompt: str, model: str = "gpt-4o") -> httpx.Response:
    uri = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    body = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": uri}},
                ],
            }
        ],
    }
    return httpx.post(
        emu.openai_base + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )


def _text(r: httpx.Response) -> str:
    return str(r.json()["choices"][0]["message"]["content"])


def test_a_photograph_gets_honest_answers_and_a_header(emulator: Emulator) -> None:
    photo = _jpeg(photo_like((800, 600), seed=3))
    r = _ask(emulator, photo, "Describe this image.")
    assert r.headers[SCENE_HEADER] == "unrecognised"
    assert _text(r) == UNRECOGNISED_CAPTION
    assert _text(_ask(emulator, photo, "How many people? Answer with only the number.")) == "0"
    detect = _ask(emulator, photo, "Detect every person; output bbox_2d JSON.", "qwen2.5-vl-7b")
    assert detect.headers[SCENE_HEADER] == "unrecognised"
    assert _text(detect).strip() in ("[]", "```json\n[]\n```")
    shapes = make_scene(4, size=(640, 480))
    scene = _ask(emulator, shapes.to_jpeg_bytes(), "Describe this image.")
    assert scene.headers[SCENE_HEADER] == "recognised"
    assert_describes(_text(scene), shapes)
    assert "640" not in _text(scene)  # what it sees, not the pixel size it received
    plain = httpx.post(
        emulator.openai_base + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert SCENE_HEADER not in plain.headers


@pytest.mark.parametrize(
    "model", ["openai/gpt-4o", "openai/qwen2.5-vl-7b", "openai/paligemma-3b", "openai/glm-4.5v"]
)
def test_detect_and_point_on_a_photograph_find_nothing(emulator: Emulator, model: str) -> None:
    m = vlgate.create(model, api_key=KEY, api_base=emulator.openai_base, max_retries=0)
    photo = photo_like((1024, 768), seed=5)
    dets = m.detect(photo, "person")
    pts = m.point(photo, "person")
    assert (len(dets), dets.dropped, len(pts), pts.dropped) == (0, 0, 0, 0)
    assert len(emulator.requests) == 2 and all(r.status == 200 for r in emulator.requests)
    # The control: a synthetic scene through the same model finds its shapes.
    scene = make_scene(2, size=(1024, 768))
    target = scene.shapes[0].label
    assert m.detect(scene.image, target) or m.point(scene.image, target)
