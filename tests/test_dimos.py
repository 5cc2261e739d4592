"""vlgate inside dimos: ``VlgateVlModel`` against the real dimos package, through the emulator.

dimos comes from requirements-dimos.lock (the ``dimos`` wheel plus only what its VL layer imports),
which scripts/test installs. Every assertion is about what arrived at the emulator or what the
dimos types returned.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.scenes import Scene, make_scene

from .conftest import KEY, SIZE_PROMPT, answer_to, assert_describes, size_in

WHY = "dimos is not installed (requirements-dimos.lock; ./scripts/test installs it)"
base = pytest.importorskip("dimos.models.vl.base", reason=WHY)
dimos_image = pytest.importorskip("dimos.msgs.sensor_msgs.Image", reason=WHY)
from dimos.perception.detection.type.detection2d.bbox import Detection2DBBox  # noqa: E402
from dimos.perception.detection.type.detection2d.imageDetections2D import (  # noqa: E402
    ImageDetections2D,
)
from dimos.perception.detection.type.detection2d.point import Detection2DPoint  # noqa: E402

from vlgate.integrations.dimos import VlgateVlModel  # noqa: E402

DImage, Fmt = dimos_image.Image, dimos_image.ImageFormat
Box = tuple[float, float, float, float]

# (model string, which emulator base it talks to): one per model family and route.
FAMILIES = [
    ("openai/gpt-4o", "openai_base"),
    ("vllm/Qwen/Qwen2.5-VL-7B-Instruct", "openai_base"),
    ("qwen/qwen3-vl-plus", "openai_base"),
    ("ollama/qwen2.5vl:7b", "ollama_base"),
    ("vllm/OpenGVLab/InternVL3-8B", "openai_base"),
    ("vllm/zai-org/GLM-4.5V", "openai_base"),
    ("anthropic/claude-sonnet-4-5", "url"),
    ("gemini/gemini-2.5-flash", "url"),
    ("moondream/moondream-3", "moondream_base"),
]


def vlm(
    emu: Emulator, model: str = "openai/gpt-4o", base_attr: str = "openai_base", **kw: Any
) -> Any:
    kw.setdefault("backoff_base", 0.0)
    return VlgateVlModel(model, api_key=KEY, api_base=getattr(emu, base_attr), **kw)


def frame(scene: Scene, fmt: str = "BGR", ts: float = 1700000000.25) -> Any:
    """The scene as a dimos frame in ``fmt``'s channel order (BGR is dimos's default)."""
    rgb = np.asarray(scene.image.convert("RGB"))
    data = {
        "RGB": rgb,
        "BGR": rgb[..., ::-1],
        "RGBA": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
        "BGRA": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)]),
        "GRAY": np.asarray(scene.image.convert("L")),
    }[fmt]
    return DImage(data=np.ascontiguousarray(data), format=Fmt[fmt], ts=ts)


def received_rgb(emu: Emulator, i: int = 0) -> np.ndarray[Any, Any]:
    return np.asarray(PILImage.open(io.BytesIO(emu.requests[i].images[0].data)).convert("RGB"))


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture
def quiet(emulator: Emulator) -> Emulator:
    emulator.noise = False
    return emulator


# -- the class ---------------------------------------------------------------------------------


def test_is_a_real_dimos_vlmodel_with_dimos_config(emulator: Emulator) -> None:
    model = VlgateVlModel(
        "openai/gpt-4o-mini", api_key="sk-secret-1", api_base=emulator.openai_base, max_retries=1
    )
    assert isinstance(model, base.VlModel)
    assert isinstance(model, base.Captioner)
    assert model.config.model_name == "openai/gpt-4o-mini"
    assert model.config.options == {"max_retries": 1}
    assert "sk-secret-1" not in repr(model) + repr(model.config) + str(model.config)


def test_bad_model_or_option_fails_at_construction() -> None:
    with pytest.raises(vlgate.ConfigError):
        VlgateVlModel("openai/gpt-4o-mini", api_key=KEY, max_concurency=3)


def test_design_short_names_work(emulator: Emulator) -> None:
    for name in ("openai", "qwen"):
        model = VlgateVlModel(name, api_key=KEY, api_base=emulator.openai_base)
        assert model.query(frame(make_scene(1, size=(64, 48))), "hi")
    lite = VlgateVlModel("litellm/anthropic/claude-sonnet-4-5", api_key=KEY, api_base=emulator.url)
    assert lite.query(frame(make_scene(1, size=(64, 48))), "hi")
    assert [r.protocol for r in emulator.requests] == ["openai", "openai", "anthropic"]


def test_missing_dimos_is_an_import_error_naming_it() -> None:
    code = (
        "import sys; sys.modules['dimos'] = None\n"
        "try:\n    import vlgate.integrations.dimos\n"
        "except ImportError as e:\n    print('ImportError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "ImportError: vlgate.integrations.dimos needs the dimos package" in out.stdout, out


def test_import_vlgate_does_not_import_dimos() -> None:
    code = "import vlgate, sys; print(any(m.split('.')[0] == 'dimos' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out


# -- frames arrive with their colours ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["BGR", "RGB", "RGBA", "BGRA"])
def test_colour_frames_arrive_with_the_right_colours(quiet: Emulator, fmt: str) -> None:
    scene = make_scene(3, size=(320, 240))
    answer = vlm(quiet).query(frame(scene, fmt), "What colours are the shapes?")
    colours = {sh.label.split()[0] for sh in scene.shapes}
    named = {w.strip(".,") for w in answer.split()} & {
        "red",
        "green",
        "blue",
        "yellow",
        "purple",
        "orange",
        "cyan",
    }
    assert named == colours, answer
    got = received_rgb(quiet)
    truth = np.asarray(scene.image.convert("RGB"))
    for sh in scene.shapes:
        cx, cy = (sh.box[0] + sh.box[2]) // 2, (sh.box[1] + sh.box[3]) // 2
        assert np.abs(got[cy, cx].astype(int) - truth[cy, cx]).max() <= 12, (sh, got[cy, cx])


def test_gray_frame_arrives_grey(quiet: Emulator) -> None:
    scene = make_scene(3, size=(320, 240))
    answer = vlm(quiet).query(frame(scene, "GRAY"), "What colours are the shapes?")
    got = received_rgb(quiet).astype(int)
    assert (
        np.abs(got[..., 0] - got[..., 1]).max() <= 3
        and np.abs(got[..., 1] - got[..., 2]).max() <= 3
    )
    truth = np.asarray(scene.image.convert("L")).astype(int)
    assert np.abs(got[..., 0] - truth).mean() < 3
    assert not any(sh.label.split()[0] in answer for sh in scene.shapes), answer


# One route per wire protocol vlgate speaks (LiteLLM's gateway too).
PROTOCOLS = [
    *FAMILIES[:1],
    ("ollama/qwen2.5vl:7b", "ollama_base"),
    *FAMILIES[6:],
    ("litellm/anthropic/claude-sonnet-4-5", "url"),
]


@pytest.mark.parametrize(("model", "base_attr"), PROTOCOLS, ids=lambda v: str(v))
def test_bgr_frame_reaches_every_protocol_in_rgb(
    quiet: Emulator, model: str, base_attr: str
) -> None:
    scene = make_scene(5, size=(320, 240))
    vlm(quiet, model, base_attr).caption(frame(scene, "BGR"))
    assert len(quiet.requests) == 1 and quiet.requests[0].status == 200
    got, truth = received_rgb(quiet), np.asarray(scene.image.convert("RGB"))
    sh = scene.shapes[0]
    cx, cy = (sh.box[0] + sh.box[2]) // 2, (sh.box[1] + sh.box[3]) // 2
    assert np.abs(got[cy, cx].astype(int) - truth[cy, cx]).max() <= 12, (model, got[cy, cx])


def test_depth_frame_is_refused_and_nothing_sent(emulator: Emulator) -> None:
    depth = DImage(data=np.zeros((48, 64), np.float32), format=Fmt.DEPTH)
    with pytest.raises(vlgate.ImageError, match="depth map"):
        vlm(emulator).query(depth, "hi")
    assert emulator.requests == []


def test_bare_numpy_array_is_read_as_bgr_like_dimos(quiet: Emulator) -> None:
    scene = make_scene(3, size=(320, 240))
    bgr = np.ascontiguousarray(np.asarray(scene.image.convert("RGB"))[..., ::-1])
    with pytest.warns(DeprecationWarning, match="dimos Image"):
        answer = vlm(quiet).query(bgr, "What colours are the shapes?")
    for sh in scene.shapes:
        assert sh.label.split()[0] in answer, answer


# -- dimos's methods ---------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "base_attr"), FAMILIES, ids=[m for m, _ in FAMILIES])
def test_query_detections_matches_ground_truth(quiet: Emulator, model: str, base_attr: str) -> None:
    scene = make_scene(7, size=(1280, 720))
    f = frame(scene)
    dets = vlm(quiet, model, base_attr).query_detections(f, "shape")
    assert isinstance(dets, ImageDetections2D) and dets.image is f
    assert len(dets.detections) == len(scene.shapes)
    for i, d in enumerate(dets.detections):
        assert isinstance(d, Detection2DBBox)
        assert (d.track_id, d.class_id, d.confidence, d.ts, d.image) == (i, -1, 1.0, f.ts, f)
        assert d.name
    for sh in scene.shapes:
        assert max(iou(sh.box, d.bbox) for d in dets.detections) >= 0.95, (model, sh)


def test_query_detections_in_original_pixels_with_auto_resize(quiet: Emulator) -> None:
    scene = make_scene(7, size=(1280, 720))
    dets = vlm(quiet, "vllm/Qwen/Qwen2.5-VL-7B-Instruct", auto_resize=(320, 320)).query_detections(
        frame(scene), "shape"
    )
    sent = quiet.requests[0].images[0].size
    assert sent is not None and max(sent) <= 320
    for sh in scene.shapes:
        assert max(iou(sh.box, d.bbox) for d in dets.detections) >= 0.85, sh


@pytest.mark.parametrize(
    ("model", "base_attr"), [FAMILIES[0], FAMILIES[7], FAMILIES[8]], ids=lambda v: str(v)
)
def test_query_points_inside_the_shapes(quiet: Emulator, model: str, base_attr: str) -> None:
    scene = make_scene(7, size=(1280, 720))
    f = frame(scene)
    points = vlm(quiet, model, base_attr).query_points(f, "shape")
    assert isinstance(points, ImageDetections2D)
    assert len(points.detections) == len(scene.shapes)
    for i, p in enumerate(points.detections):
        assert isinstance(p, Detection2DPoint)
        assert (p.track_id, p.ts, p.image) == (i, f.ts, f)
        assert any(
            sh.box[0] <= p.x <= sh.box[2] and sh.box[1] <= p.y <= sh.box[3] for sh in scene.shapes
        )


def test_query_batch_one_request_per_image_answers_in_order(quiet: Emulator) -> None:
    sizes = [(64 + 8 * i, 48 + 4 * i) for i in range(6)]
    frames = [frame(make_scene(i, size=s)) for i, s in enumerate(sizes)]
    with warnings.catch_warnings():
        # No "default sequential implementation" warning from dimos's base class.
        warnings.simplefilter("error", UserWarning)
        answers = vlm(quiet, max_concurrency=6).query_batch(frames, SIZE_PROMPT)
    assert len(quiet.requests) == len(frames)
    assert all(len(r.images) == 1 for r in quiet.requests)
    for (w, h), answer in zip(sizes, answers, strict=True):
        assert size_in(answer) == (w, h), answer  # its own image's answer, not one repeated
    assert len(set(answers)) == len(answers)


def test_query_batch_is_concurrent(quiet: Emulator) -> None:
    quiet.latency = 0.3
    frames = [frame(make_scene(i, size=(64, 48))) for i in range(4)]
    vlm(quiet, max_concurrency=4).query_batch(frames, "hi")
    starts = sorted(r.t_received for r in quiet.requests)
    assert starts[-1] - starts[0] < 0.25  # all four were in flight together


def test_query_multi_and_caption_batch(quiet: Emulator) -> None:
    scene = make_scene(3, size=(160, 120))
    model = vlm(quiet)
    answers = model.query_multi(frame(scene), ["How many shapes are there?", "What colours?"])
    assert len(quiet.requests) == 2 and {len(r.images) for r in quiet.requests} == {1}
    assert answers[0] == f"There are {len(scene.shapes)} shapes.", answers  # in prompt order
    assert all(sh.label in answers[1] for sh in scene.shapes), answers
    quiet.clear()
    sizes = [(320, 240), (480, 200), (200, 480)]
    scenes = [make_scene(i, size=s) for i, s in enumerate(sizes)]
    caps = model.caption_batch(*(frame(sc) for sc in scenes))
    assert len(caps) == 3 and len(quiet.requests) == 3
    for size, sc, cap in zip(sizes, scenes, caps, strict=True):
        assert cap == answer_to(quiet, size)  # in input order, each its own image's caption
        assert_describes(cap, sc)


def test_query_json_returns_parsed_json(quiet: Emulator) -> None:
    scene = make_scene(3, size=(320, 240))
    out = vlm(quiet).query_json(frame(scene), 'List the shapes as JSON: [{"label": ...}]')
    assert isinstance(out, (list, dict)) and out


@pytest.mark.parametrize(
    ("model", "base_attr"),
    [FAMILIES[0], ("litellm/anthropic/claude-sonnet-4-5", "url"), FAMILIES[6]],
    ids=lambda v: str(v),
)
def test_kwargs_reach_the_provider(emulator: Emulator, model: str, base_attr: str) -> None:
    f = frame(make_scene(1, size=(64, 48)))
    vlm(emulator, model, base_attr).query(f, "hi", max_tokens=7, temperature=0.25)
    body = emulator.requests[0].body
    assert body["max_tokens"] == 7 or body.get("max_completion_tokens") == 7
    assert body["temperature"] == 0.25


def test_anthropic_strict_wire_gets_matching_media_type(emulator: Emulator) -> None:
    model = vlm(emulator, "anthropic/claude-sonnet-4-5", "url")
    for fmt in ("BGR", "BGRA"):
        img = make_scene(2, size=(64, 48))
        f = frame(img, fmt)
        if fmt == "BGRA":
            f.data[0, 0, 3] = 0  # a transparent pixel: the frame is sent as PNG
        model.query(f, "hi")
    assert [r.status for r in emulator.requests] == [200, 200]
    sent = [r.images[0] for r in emulator.requests]
    assert {i.actual_mime for i in sent} == {"image/jpeg", "image/png"}
    assert all(i.declared_mime == i.actual_mime for i in sent), sent


def test_start_and_stop(emulator: Emulator) -> None:
    model = vlm(emulator)
    model.start()
    assert emulator.requests == []  # warming up sends no question
    model.query(frame(make_scene(1, size=(64, 48))), "hi")
    model.stop()
    model.query(frame(make_scene(1, size=(64, 48))), "again")  # usable after stop, like dimos
    assert len(emulator.requests) == 2
    with vlm(emulator) as m:  # dimos's Resource context manager
        assert m.query(frame(make_scene(1, size=(64, 48))), "hi")


def test_readme_example_runs_as_written(quiet: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Use it in dimos", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", quiet.openai_base)
    scene = make_scene(3, size=(320, 240))
    bgr = np.ascontiguousarray(np.asarray(scene.image.convert("RGB"))[..., ::-1])
    namespace: dict[str, Any] = {"bgr": bgr}
    exec(compile(code, "README.md", "exec"), namespace)
    assert isinstance(namespace["cups"], ImageDetections2D)
    assert len(namespace["answers"]) == 2
    assert [len(r.images) for r in quiet.requests] == [1, 1, 1, 1]
    assert quiet.requests[0].body["max_tokens"] == 50 or (
        quiet.requests[0].body.get("max_completion_tokens") == 50
    )
    got, truth = received_rgb(quiet), np.asarray(scene.image.convert("RGB"))
    sh = scene.shapes[0]
    cx, cy = (sh.box[0] + sh.box[2]) // 2, (sh.box[1] + sh.box[3]) // 2
    assert np.abs(got[cy, cx].astype(int) - truth[cy, cx]).max() <= 12


def test_start_imports_litellm_before_the_first_frame(emulator: Emulator) -> None:
    code = (
        "import sys\n"
        "from vlgate.integrations.dimos import VlgateVlModel\n"
        f"m = VlgateVlModel('litellm/anthropic/claude-sonnet-4-5', api_key='{KEY}',"
        f" api_base='{emulator.url}')\n"
        "before = 'litellm' in sys.modules\n"
        "m.start()\n"
        "print(before, 'litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out
    assert emulator.requests == []
