"""The Moondream provider on the wire: its own /detect, /point and /query skills, against the
emulator's Moondream API.

Every assertion is about what arrived at the emulator or what came back from it.
"""

from __future__ import annotations

import socket

import pytest
from pydantic import BaseModel

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.scenes import Scene, make_scene

from .conftest import KEY, assert_describes, jpeg_bytes, png_bytes

Box = tuple[float, float, float, float]


@pytest.fixture(autouse=True)
def _no_moondream_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOONDREAM_API_KEY", raising=False)
    monkeypatch.delenv("MOONDREAM_BASE_URL", raising=False)


def make(emu: Emulator, model: str = "moondream/moondream-3", **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.moondream_base)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create(model, **kw)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def scene_with_unique_label(seed: int, size: tuple[int, int]) -> tuple[Scene, str]:
    """A scene and the label of a shape that is the only one with that label."""
    for s in range(seed, seed + 50):
        scene = make_scene(s, size=size, n_shapes=4)
        for shape in scene.shapes:
            if scene.counts[shape.label] == 1:
                return scene, shape.label
    raise AssertionError("no scene with a unique label")


def body_without_image(req: object) -> dict[str, object]:
    body = getattr(req, "body")  # noqa: B009 - RecordedRequest.body, typed Any
    return {k: v for k, v in body.items() if k != "image_url"}


# --- grounding: Moondream's own calls ---------------------------------------------------------


def test_detect_calls_the_detect_skill_and_boxes_map_to_pixels(emulator: Emulator) -> None:
    scene, label = scene_with_unique_label(11, (640, 480))
    dets = make(emulator).detect(scene.image, label)
    [req] = emulator.requests
    assert req.protocol == "moondream" and req.path == "/moondream/v1/detect"
    # The target travels as Moondream's `object`, not inside a chat prompt.
    assert body_without_image(req) == {"object": label}
    assert req.headers["x-moondream-auth"] == KEY
    [img] = req.images
    assert img.declared_mime == img.actual_mime == "image/jpeg"
    assert img.size == (640, 480)
    [truth] = [s for s in scene.shapes if s.label == label]
    assert len(dets) == 1
    assert dets[0].convention == "moondream"
    assert iou(dets[0].xyxy, truth.box) > 0.9
    assert all(0.0 <= v <= 1.0 for v in dets[0].raw)  # type: ignore[union-attr]


def test_detect_every_shape_after_auto_resize_maps_back_to_the_original(
    emulator: Emulator,
) -> None:
    scene = make_scene(5, size=(1600, 1200))
    model = make(emulator, auto_resize=(400, 400))
    dets = model.detect(scene.image, "shape")
    [req] = emulator.requests
    sent = req.images[0].size
    assert sent is not None and max(sent) <= 400
    assert req.body["object"] == "shape"
    assert len(dets) == len(scene.shapes)
    for shape in scene.shapes:
        best = max(iou(d.xyxy, shape.box) for d in dets)
        assert best > 0.9, (shape, [d.xyxy for d in dets])


def test_detect_with_no_match_is_empty(emulator: Emulator) -> None:
    scene = make_scene(2, size=(320, 240), n_shapes=2)
    colours = {s.colour for s in scene.shapes}
    absent = next(c for c in ("red", "green", "blue", "yellow", "purple") if c not in colours)
    dets = make(emulator).detect(scene.image, f"{absent} star")
    assert len(dets) == 0
    assert emulator.requests[0].status == 200


def test_point_calls_the_point_skill_and_points_land_on_the_shapes(emulator: Emulator) -> None:
    scene = make_scene(8, size=(800, 600), n_shapes=4)
    points = make(emulator).point(scene.image, "shape")
    [req] = emulator.requests
    assert req.path == "/moondream/v1/point"
    assert body_without_image(req) == {"object": "shape"}
    assert len(points) == len(scene.shapes)
    for shape in scene.shapes:
        cx, cy = shape.center
        nearest = min(abs(p.xy[0] - cx) + abs(p.xy[1] - cy) for p in points)
        assert nearest <= 2.0, (shape, [p.xy for p in points])


async def test_async_detect_and_point(emulator: Emulator) -> None:
    scene, label = scene_with_unique_label(21, (480, 360))
    async with make(emulator) as model:
        dets = await model.adetect(scene.image, label)
        points = await model.apoint(scene.image, label)
    [truth] = [s for s in scene.shapes if s.label == label]
    assert iou(dets[0].xyxy, truth.box) > 0.9
    x1, y1, x2, y2 = truth.box
    assert x1 <= points[0].xy[0] <= x2 and y1 <= points[0].xy[1] <= y2
    assert [r.path.rsplit("/", 1)[1] for r in emulator.requests] == ["detect", "point"]


# --- query, caption, JSON ---------------------------------------------------------------------


def test_query_sends_the_question_to_the_query_skill(emulator: Emulator) -> None:
    scene = make_scene(3, size=(320, 240), n_shapes=3)
    answer = make(emulator).query(scene.image, "How many shapes are there?")
    assert answer == f"There are {len(scene.shapes)} shapes."
    assert answer.attempts == 1
    [req] = emulator.requests
    assert req.path == "/moondream/v1/query"
    assert body_without_image(req) == {"question": "How many shapes are there?", "stream": False}
    assert req.headers["x-moondream-auth"] == KEY
    assert req.images[0].declared_mime == req.images[0].actual_mime


def test_caption_goes_to_native_caption_with_length(emulator: Emulator) -> None:
    scene = make_scene(4, size=(320, 240), n_shapes=2)
    caption = make(emulator).caption(scene.image, length="short", temperature=0.1)
    assert_describes(caption, scene)
    [req] = emulator.requests
    assert req.path == "/moondream/v1/caption"
    assert body_without_image(req) == {
        "length": "short",
        "stream": False,
        "settings": {"temperature": 0.1},
    }
    assert caption.dropped_params == ()


def test_length_on_query_is_dropped_with_reason(emulator: Emulator) -> None:
    answer = make(emulator).query(png_bytes((64, 64)), "describe", length="long")
    [req] = emulator.requests
    assert "length" not in req.body
    assert answer.dropped_params == ("length",)
    assert "caption" in answer.dropped_reasons["length"]


def test_model_name_and_settings_reach_the_api(emulator: Emulator) -> None:
    model = make(emulator, "moondream/moondream3-preview")
    model.query(png_bytes((64, 64)), "describe", settings={"top_p": 0.5}, max_tokens=20)
    [req] = emulator.requests
    assert req.body["model"] == "moondream3-preview"
    assert req.body["settings"] == {"top_p": 0.5, "max_tokens": 20}


def test_png_is_sent_as_png_with_matching_type(emulator: Emulator) -> None:
    make(emulator).query(png_bytes((64, 64)), "describe")
    [img] = emulator.requests[0].images
    assert img.declared_mime == img.actual_mime == "image/png"


class Count(BaseModel):
    count: int


def test_query_json_is_prompted_and_validated(emulator: Emulator) -> None:
    scene = make_scene(6, size=(320, 240), n_shapes=3)
    result = make(emulator).query_json(scene.image, "How many shapes?", Count)
    assert result == Count(count=len(scene.shapes))
    question = emulator.requests[0].body["question"]
    assert "JSON" in question and '"count"' in question


def test_sampling_kwargs_travel_in_settings_and_others_are_dropped(emulator: Emulator) -> None:
    answer = make(emulator).query(
        jpeg_bytes((64, 64)), "describe", temperature=0.2, max_tokens=40, top_p=0.5, seed=7
    )
    body = emulator.requests[0].body
    assert body["settings"] == {"temperature": 0.2, "max_tokens": 40, "top_p": 0.5}
    assert "temperature" not in body and "seed" not in body
    assert answer.dropped_params == ("seed",)


def test_max_objects_reaches_detect_settings(emulator: Emulator) -> None:
    scene = make_scene(7, size=(320, 240))
    make(emulator).detect(scene.image, "shape", max_objects=2)
    assert emulator.requests[0].body["settings"] == {"max_objects": 2}


def test_max_tokens_cuts_the_answer(emulator: Emulator) -> None:
    scene = make_scene(4, size=(320, 240), n_shapes=2)
    full = make(emulator).caption(scene.image)
    short = make(emulator).caption(scene.image, max_tokens=3)
    assert len(short) == 12 and full.startswith(short)


def test_model_name_is_sent_only_when_not_the_default(emulator: Emulator) -> None:
    make(emulator).query(jpeg_bytes(), "hi")
    make(emulator, "moondream/moondream3-preview").query(jpeg_bytes(), "hi")
    first, second = emulator.requests
    assert "model" not in first.body and first.model == "moondream"
    assert second.body["model"] == "moondream3-preview" and second.model == "moondream3-preview"


def test_short_name_resolves_to_the_moondream_provider() -> None:
    model = vlgate.create("moondream", api_key=KEY)
    assert model.route.provider.name == "moondream"
    assert model.route.family.name == "moondream"
    assert model.route.model == "moondream-3"


# --- streaming --------------------------------------------------------------------------------


def test_stream_yields_deltas_of_the_same_answer(emulator: Emulator) -> None:
    scene = make_scene(9, size=(320, 240), n_shapes=3)
    model = make(emulator)
    deltas = list(model.stream(scene.image, "Describe the image."))
    whole = model.query(scene.image, "Describe the image.")
    assert len(deltas) > 3
    assert "".join(deltas) == whole
    streamed, plain = emulator.requests
    assert streamed.body["stream"] is True and streamed.stream
    assert plain.body["stream"] is False


def test_truncated_stream_is_an_error_not_a_short_answer(emulator: Emulator) -> None:
    emulator.script("moondream", ["truncate"])
    got: list[str] = []
    with pytest.raises(vlgate.ConnectionError):
        for delta in make(emulator).stream(jpeg_bytes((64, 64)), "Describe the image."):
            got.append(delta)
    assert emulator.requests[0].fault == "truncate"


def test_stream_error_status_is_mapped(emulator: Emulator) -> None:
    emulator.script("moondream", ["429:0.5"])
    with pytest.raises(vlgate.RateLimitError) as info:
        list(make(emulator, max_retries=0).stream(jpeg_bytes(), "describe"))
    assert info.value.retry_after == pytest.approx(0.5)


def test_stream_open_is_retried_before_any_text(emulator: Emulator) -> None:
    emulator.script("moondream", ["429:0.01", "ok"])
    text = "".join(make(emulator).stream(jpeg_bytes(), "describe"))
    assert text
    assert [r.status for r in emulator.requests] == [429, 200]


# --- keys and errors ---------------------------------------------------------------------------


def test_missing_key_names_the_env_var_and_sends_nothing(emulator: Emulator) -> None:
    with pytest.raises(vlgate.ConfigError, match="MOONDREAM_API_KEY"):
        vlgate.create("moondream/moondream-3")  # the hosted endpoint
    assert emulator.requests == []


def test_keyless_call_to_a_keyed_local_server_is_an_auth_error(emulator: Emulator) -> None:
    # On loopback vlgate lets the server decide (Moondream Station takes no key); this one does.
    model = vlgate.create("moondream/moondream-3", api_base=emulator.moondream_base)
    with pytest.raises(vlgate.AuthError):
        model.query(make_scene(1, size=(200, 150)).image, "hi")
    assert len(emulator.requests) == 1


def test_key_from_the_environment_arrives_in_the_header(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOONDREAM_API_KEY", KEY)
    model = vlgate.create("moondream/moondream-3", api_base=emulator.moondream_base)
    assert model.query(jpeg_bytes(), "hi")
    assert emulator.requests[0].headers["x-moondream-auth"] == KEY
    assert KEY not in repr(model) and KEY not in repr(model.config)


def test_station_base_from_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOONDREAM_BASE_URL", emulator.moondream_base + "/")
    model = vlgate.create("moondream/moondream-3", api_key=KEY, backoff_base=0.0)
    assert model.query(jpeg_bytes(), "hi")
    assert [r.path for r in emulator.requests] == ["/moondream/v1/query"]


def test_rate_limit_then_ok_is_retried(emulator: Emulator) -> None:
    emulator.script("moondream", ["429", "ok"])
    scene = make_scene(3, size=(320, 240))
    dets = make(emulator).detect(scene.image, "shape")
    assert len(dets) == len(scene.shapes)
    assert [r.status for r in emulator.requests] == [429, 200]
    assert [r.path for r in emulator.requests] == ["/moondream/v1/detect"] * 2


def test_rate_limit_carries_retry_after(emulator: Emulator) -> None:
    emulator.script("moondream", ["429:0.25"])
    with pytest.raises(vlgate.RateLimitError) as info:
        make(emulator, max_retries=0).query(jpeg_bytes(), "hi")
    assert info.value.status == 429 and info.value.retry_after == pytest.approx(0.25)
    assert info.value.provider == "moondream"


def test_wrong_key_is_an_auth_error_and_not_retried(emulator: Emulator) -> None:
    bad = "md-wrong-key-123456"
    with pytest.raises(vlgate.AuthError) as info:
        make(emulator, api_key=bad, max_retries=3).query(jpeg_bytes(), "hi")
    assert info.value.status == 401
    assert bad not in str(info.value) and bad not in repr(info.value.body)
    [req] = emulator.requests
    assert req.status == 401 and req.headers["x-moondream-auth"] == bad


def test_server_errors_are_retried_then_raised(emulator: Emulator) -> None:
    emulator.script("moondream", ["500", "503", "500"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator, max_retries=2).query(jpeg_bytes(), "hi")
    assert info.value.status == 500 and info.value.retryable
    assert "emulated" in str(info.value)
    assert [r.status for r in emulator.requests] == [500, 503, 500]


def test_bad_request_is_not_retried(emulator: Emulator) -> None:
    emulator.script("moondream", ["422"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator, max_retries=3).query(jpeg_bytes(), "hi")
    assert info.value.status == 422 and not info.value.retryable
    assert len(emulator.requests) == 1


def test_malformed_body_is_a_retryable_provider_error(emulator: Emulator) -> None:
    emulator.script("moondream", ["malformed", "ok"])
    answer = make(emulator, max_retries=1).query(jpeg_bytes(), "hi")
    assert answer and answer.attempts == 2


def test_empty_answer_is_retried(emulator: Emulator) -> None:
    emulator.script("moondream", ["empty", "ok"])
    answer = make(emulator, max_retries=1).query(jpeg_bytes(), "hi")
    assert answer and answer.attempts == 2


def test_timeout_is_a_timeout_error(emulator: Emulator) -> None:
    emulator.script("moondream", ["hang:5"])
    with pytest.raises(vlgate.TimeoutError):
        make(emulator, max_retries=0, timeout=0.3).query(jpeg_bytes(), "hi")


def test_reset_connection_is_a_connection_error(emulator: Emulator) -> None:
    emulator.script("moondream", ["reset"])
    with pytest.raises(vlgate.ConnectionError):
        make(emulator, max_retries=0).query(jpeg_bytes(), "hi")


def test_unreachable_station_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = vlgate.create(
        "moondream/moondream-3", api_key=KEY, api_base=f"http://127.0.0.1:{port}/v1", max_retries=0
    )
    with pytest.raises(vlgate.ConnectionError) as info:
        model.query(jpeg_bytes(), "hi")
    assert KEY not in str(info.value)


def test_two_images_in_one_request_are_refused_before_sending(emulator: Emulator) -> None:
    model = make(emulator)
    with pytest.raises(vlgate.ConfigError, match="at most 1"):
        model.query_images([jpeg_bytes(), png_bytes()], "compare")
    assert emulator.requests == []
    assert model.query_images([jpeg_bytes()], "describe")
    assert len(emulator.requests) == 1 and len(emulator.requests[0].images) == 1


def test_batch_is_one_call_per_image(emulator: Emulator) -> None:
    scenes = [make_scene(s, size=(320, 240), n_shapes=2) for s in range(3)]
    answers = make(emulator).query_batch([s.image for s in scenes], "How many shapes?")
    assert answers == ["There are 2 shapes."] * 3
    assert all(len(r.images) == 1 for r in emulator.requests)
    assert len(emulator.requests) == 3


async def test_provider_refuses_two_images_itself(emulator: Emulator) -> None:
    # The provider checks too, for requests built without VlModel's service limits.
    from vlgate.config import ModelConfig
    from vlgate.image import Image
    from vlgate.providers import ChatRequest, Message, provider_class
    from vlgate.registry import resolve

    route = resolve("moondream/moondream-3")
    provider = provider_class(route.provider)(
        route, ModelConfig.build(model="moondream/moondream-3"), KEY, emulator.moondream_base
    )
    img = Image.load(jpeg_bytes()).encode()
    request = ChatRequest(model=route.model, messages=(Message("user", (img, img, "compare")),))
    with pytest.raises(vlgate.ConfigError, match="one image per call"):
        await provider.complete(request)
    with pytest.raises(vlgate.ConfigError, match="one image per call"):
        async for _ in provider.stream(request):
            pass
    assert emulator.requests == []
    one = ChatRequest(model=route.model, messages=(Message("user", (img, "hi")),))
    assert (await provider.complete(one)).text
    await provider.aclose()
    assert len(emulator.requests) == 1


# --- the emulator's Moondream API, raw ----------------------------------------------------------


def test_emulator_moondream_wire_shapes(emulator: Emulator) -> None:
    import httpx

    scene, label = scene_with_unique_label(31, (400, 300))
    uri = scene.to_data_uri()
    base, auth = emulator.moondream_base, {"X-Moondream-Auth": KEY}
    with httpx.Client() as http:
        cap = http.post(f"{base}/caption", json={"image_url": uri, "length": "short"}, headers=auth)
        det = http.post(f"{base}/detect", json={"image_url": uri, "object": label}, headers=auth)
        no_key = http.post(f"{base}/query", json={"image_url": uri, "question": "hi"})
        wrong = http.post(
            f"{base}/query",
            json={"image_url": uri, "question": "hi"},
            headers={"X-Moondream-Auth": "nope"},
        )
        no_obj = http.post(f"{base}/point", json={"image_url": uri}, headers=auth)
        gif = "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
        bad_img = http.post(
            f"{base}/query", json={"image_url": gif, "question": "hi"}, headers=auth
        )
        unknown = http.post(f"{base}/segment", json={}, headers=auth)
        streamed = http.post(
            f"{base}/caption", json={"image_url": uri, "stream": True}, headers=auth
        )
    assert cap.status_code == 200
    assert_describes(cap.json()["caption"], scene)
    assert set(cap.json()) == {"request_id", "caption"}
    [obj] = det.json()["objects"]
    assert set(obj) == {"x_min", "y_min", "x_max", "y_max"}
    [truth] = [s for s in scene.shapes if s.label == label]
    assert obj["x_min"] == pytest.approx(truth.box[0] / 400, abs=0.002)
    assert obj["y_max"] == pytest.approx(truth.box[3] / 300, abs=0.002)
    assert no_key.status_code == 401 and "X-Moondream-Auth" in no_key.json()["error"]
    assert wrong.status_code == 401
    assert no_obj.status_code == 422 and "object" in no_obj.json()["error"]
    assert bad_img.status_code == 400
    assert unknown.status_code == 404
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [ln for ln in streamed.text.splitlines() if ln.startswith("data: ")]
    assert events[-1] == 'data: {"completed":true}'
    assert all(e.startswith('data: {"chunk":') for e in events[:-1]) and len(events) > 2
    recs = emulator.requests
    assert [r.status for r in recs] == [200, 200, 401, 401, 422, 400, 200]  # 404 not recorded
    assert recs[0].model == "moondream" and recs[0].images[0].declared_mime == "image/jpeg"
    assert recs[5].images[0].actual_mime == "image/gif"


def test_emulator_without_key_accepts_keyless_station_calls() -> None:
    import httpx

    with Emulator(api_key=None) as emu:
        resp = httpx.post(
            f"{emu.moondream_base}/query",
            json={"image_url": make_scene(1, size=(64, 64)).to_data_uri(), "question": "hi"},
        )
        assert resp.status_code == 200 and resp.json()["answer"]
        assert "x-moondream-auth" not in emu.requests[0].headers


def test_moondream_station_on_loopback_needs_no_key(emulator: Emulator) -> None:
    emu_open = Emulator(api_key=None)
    with emu_open:
        model = vlgate.create("moondream/moondream-3", api_base=emu_open.moondream_base)
        assert model.query(make_scene(2, size=(200, 150)).image, "What is this?")
        assert "x-moondream-auth" not in emu_open.requests[0].headers
    with pytest.raises(vlgate.ConfigError, match="MOONDREAM_API_KEY"):
        vlgate.create("moondream/moondream-3")  # the hosted default still needs one


def test_native_grounding_falls_back_to_a_prompted_model(emulator: Emulator) -> None:
    """Grounding is a provider capability, chosen per engine: Moondream's /detect fails, the
    OpenAI fallback gets the family's detection prompt on /chat/completions."""
    emulator.script("*", ["503"])
    model = make(
        emulator,
        max_retries=0,
        fallbacks=[{"model": "openai/gpt-4o", "api_key": KEY, "api_base": emulator.openai_base}],
    )
    model.detect(png_bytes(), "red square")
    assert [(r.path, r.status) for r in emulator.requests] == [
        ("/moondream/v1/detect", 503),
        ("/v1/chat/completions", 200),
    ]
    prompt = str(emulator.requests[1].body["messages"][0]["content"])
    assert "red square" in prompt
    assert "object" not in emulator.requests[1].body
