"""The core on the wire: the OpenAI protocol through the openai SDK, against the emulator.

Every assertion is about what arrived at the emulator or what came back from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import BaseModel

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import KEY, jpeg_bytes, png_bytes


def make(emu: Emulator, model: str = "openai/gpt-4o-mini", **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.openai_base)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create(model, **kw)


def test_query_sends_key_model_kwargs_and_correct_image_type(emulator: Emulator) -> None:
    model = make(emulator)
    answer = model.query(
        png_bytes(),
        "What colour is this?",
        temperature=0.2,
        max_tokens=50,
        seed=7,
        top_p=0.9,
        stop=["\n\n"],
    )
    assert isinstance(answer, str) and answer
    assert answer.attempts == 1
    [req] = emulator.requests
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "gpt-4o-mini"
    for name, value in {"temperature": 0.2, "max_tokens": 50, "seed": 7, "top_p": 0.9}.items():
        assert req.body[name] == value
    assert req.body["stop"] == ["\n\n"]
    [img] = req.images
    assert img.declared_mime == img.actual_mime == "image/png"
    assert img.size == (64, 48)


def test_unsupported_kwarg_is_dropped_and_reported(emulator: Emulator) -> None:
    model = make(emulator)
    answer = model.query(png_bytes(), "hi", temperature=0.1, not_a_param=3)
    [req] = emulator.requests
    assert "not_a_param" not in req.body
    assert req.body["temperature"] == 0.1
    assert answer.dropped_params == ("not_a_param",)


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        pytest.param(png_bytes(), "photo.jpg", "image/png", id="png-named-jpg"),
        pytest.param(jpeg_bytes(), "photo.png", "image/jpeg", id="jpeg-named-png"),
    ],
)
def test_declared_type_is_sniffed_from_bytes_not_file_name(
    emulator: Emulator, tmp_path: Path, data: bytes, name: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    make(emulator).query(path, "describe")
    [img] = emulator.requests[0].images
    assert img.declared_mime == img.actual_mime == expected


def test_numpy_frame_is_sent_as_jpeg_with_matching_type(emulator: Emulator, rgb_array) -> None:  # type: ignore[no-untyped-def]
    make(emulator).query(rgb_array, "describe")
    [img] = emulator.requests[0].images
    assert img.declared_mime == img.actual_mime
    assert img.size == (64, 48)


def test_query_batch_one_request_per_image_answers_in_order(emulator: Emulator) -> None:
    scenes = [make_scene(seed, size=(320, 240)) for seed in range(6)]
    model = make(emulator, max_concurrency=3)
    answers = model.query_batch([s.image for s in scenes], "How many shapes are there?")
    assert len(answers) == 6
    assert len(emulator.requests) == 6
    assert all(len(r.images) == 1 for r in emulator.requests)
    # Each answer is about its own image: the emulator counts the shapes it sees.
    for scene, answer in zip(scenes, answers, strict=True):
        assert str(len(scene.shapes)) in str(answer)
    # Distinct answers prove it is not one combined answer repeated N times.
    assert len({len(s.shapes) for s in scenes}) == 1 or len(set(answers)) > 1


def test_query_batch_bad_image_raises_before_anything_is_sent(emulator: Emulator) -> None:
    model = make(emulator)
    with pytest.raises(vlgate.ImageError):
        model.query_batch([png_bytes(), b"not an image", png_bytes()], "describe")
    assert emulator.requests == []


def test_query_batch_return_exceptions_keeps_going(emulator: Emulator) -> None:
    model = make(emulator)
    out = model.query_batch(
        [png_bytes(), b"not an image", jpeg_bytes()], "describe", return_exceptions=True
    )
    assert isinstance(out[0], str) and isinstance(out[2], str)
    assert isinstance(out[1], vlgate.ImageError)
    assert len(emulator.requests) == 2


def test_missing_key_is_a_config_error_naming_the_env_var(emulator: Emulator) -> None:
    with pytest.raises(vlgate.ConfigError, match="OPENAI_API_KEY"):
        vlgate.create("openai/gpt-4o-mini", api_base=emulator.openai_base)
    with pytest.raises(vlgate.ConfigError, match="DASHSCOPE_API_KEY"):
        vlgate.create("qwen/qwen-vl-max", api_base=emulator.openai_base)
    assert emulator.requests == []


def test_key_from_env_reaches_the_wire(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    vlgate.create("openai/gpt-4o-mini", api_base=emulator.openai_base).query(png_bytes(), "hi")
    assert emulator.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_wrong_key_is_an_auth_error_not_retried_and_not_leaked(emulator: Emulator) -> None:
    secret = "sk-wrong-key-0123456789abcdef"
    model = make(emulator, api_key=secret)
    with pytest.raises(vlgate.AuthError) as info:
        model.query(png_bytes(), "hi")
    assert info.value.status == 401
    assert len(emulator.requests) == 1
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in repr(model) and secret not in repr(model.config)


def test_key_never_in_debug_logs(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-wrong-key-0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(vlgate.AuthError):
        make(emulator, api_key=secret, max_retries=0).query(png_bytes(), "hi")
    assert caplog.records, "debug logging should have produced records"
    assert secret not in caplog.text


def test_retries_transient_faults_honouring_retry_after(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["429", "500", "ok"])
    answer = make(emulator, max_retries=3).query(png_bytes(), "hi")
    assert answer.attempts == 3
    assert [r.status for r in emulator.requests] == [429, 500, 200]


@pytest.mark.parametrize("status", ["400", "401", "403", "404"])
def test_permanent_errors_are_not_retried(emulator: Emulator, status: str) -> None:
    emulator.script("gpt-4o-mini", [status, "ok"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator, max_retries=3).query(png_bytes(), "hi")
    assert info.value.status == int(status)
    assert info.value.attempts == 1
    assert len(emulator.requests) == 1


def test_gives_up_after_max_retries(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["503", "503", "503", "ok"])
    with pytest.raises(vlgate.ProviderError) as info:
        make(emulator, max_retries=1).query(png_bytes(), "hi")
    assert info.value.status == 503 and info.value.attempts == 2
    assert len(emulator.requests) == 2


def test_timeout_is_retried_then_raised(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["hang", "hang"])
    with pytest.raises(vlgate.TimeoutError) as info:
        make(emulator, max_retries=1, timeout=0.3).query(png_bytes(), "hi")
    assert info.value.attempts == 2
    assert isinstance(info.value, TimeoutError)


def test_connection_reset_is_retried(emulator: Emulator) -> None:
    emulator.script("gpt-4o-mini", ["reset", "ok"])
    answer = make(emulator, max_retries=2).query(png_bytes(), "hi")
    assert answer.attempts == 2


class Shapes(BaseModel):
    count: int


def test_query_json_native_schema_returns_validated_model(emulator: Emulator) -> None:
    scene = make_scene(3, size=(320, 240))
    result = make(emulator).query_json(scene.image, "How many shapes?", Shapes)
    assert isinstance(result, Shapes)
    body = emulator.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert (
        body["response_format"]["json_schema"]["schema"]["properties"]["count"]["type"] == "integer"
    )
    assert result.count == len(scene.shapes)


def test_query_json_prompted_for_provider_without_native_mode(emulator: Emulator) -> None:
    scene = make_scene(4, size=(320, 240))
    result = make(emulator, "qwen/qwen-vl-max").query_json(scene.image, "How many shapes?", Shapes)
    body = emulator.requests[0].body
    assert "response_format" not in body
    assert "JSON" in str(body["messages"][0]["content"])
    assert result.count == len(scene.shapes)


def test_query_images_sends_all_in_one_request(emulator: Emulator) -> None:
    answer = make(emulator).query_images([png_bytes(), jpeg_bytes(), png_bytes()], "compare")
    assert answer
    [req] = emulator.requests
    assert [i.actual_mime for i in req.images] == ["image/png", "image/jpeg", "image/png"]
    assert all(i.declared_mime == i.actual_mime for i in req.images)


def test_query_images_over_the_cap_is_refused_before_sending(emulator: Emulator) -> None:
    # Bedrock takes at most 20 images per message.
    model = vlgate.create("bedrock/anthropic.claude-3-5-sonnet", api_base=emulator.url, api_key=KEY)
    with pytest.raises(vlgate.ConfigError, match="at most 20"):
        model.query_images([png_bytes()] * 21, "compare")
    assert emulator.requests == []


def test_query_multi_one_answer_per_prompt(emulator: Emulator) -> None:
    answers = make(emulator).query_multi(png_bytes(), ["colour?", "size?", "shape?"])
    assert len(answers) == 3 and len(emulator.requests) == 3
    sent = {r.images[0].data for r in emulator.requests}
    assert len(sent) == 1  # the same encoded bytes each time


def test_auto_resize_fits_and_coordinates_map_back(emulator: Emulator) -> None:
    scene = make_scene(5, size=(1600, 1200))
    emulator.noise = False
    model = make(emulator, "openai/generic-vlm", auto_resize=(400, 400))
    dets = model.detect(scene.image, "shape")
    sent = emulator.requests[0].images[0].size
    assert sent is not None and max(sent) <= 400
    assert len(dets) == len(scene.shapes)
    # Boxes come back in pixels of the 1600x1200 original (4x the sent size), within a few px.
    truth = sorted(s.box for s in scene.shapes)
    got = sorted(d.xyxy for d in dets)
    for t, g in zip(truth, got, strict=True):
        assert all(abs(a - b) <= 10 for a, b in zip(t, g, strict=True)), (t, g)


def test_ollama_needs_no_key_and_vllm_needs_a_base(emulator: Emulator) -> None:
    model = vlgate.create("ollama/qwen2.5vl:7b", api_base=emulator.ollama_base, backoff_base=0)
    assert model.query(png_bytes((64, 64)), "hi")
    with pytest.raises(vlgate.ConfigError, match="VLLM_BASE_URL"):
        vlgate.create("vllm/Qwen/Qwen2.5-VL-7B-Instruct")


def test_short_names_from_the_design(emulator: Emulator) -> None:
    m = vlgate.create("openai", api_key=KEY, api_base=emulator.openai_base)
    assert m.route.model == "gpt-4o-mini"
    q = vlgate.create("qwen", api_key=KEY, api_base=emulator.openai_base)
    assert q.route.model == "qwen-vl-max"
    lite = vlgate.create("litellm", model_name="anthropic/claude-sonnet-4-6", api_key=KEY)
    assert lite.route.provider.name == "litellm" and lite.route.service.name == "anthropic"


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(vlgate.ConfigError, match="max_concurency"):
        vlgate.create("openai/gpt-4o-mini", api_key=KEY, max_concurency=3)


@pytest.mark.parametrize("bad", [None, 42, "", "no/such/file.png", b""])
def test_bad_input_is_an_image_error_and_nothing_is_sent(emulator: Emulator, bad: object) -> None:
    with pytest.raises(vlgate.ImageError):
        make(emulator).query(bad, "describe")  # type: ignore[arg-type]
    assert emulator.requests == []


async def test_async_api_matches_sync(emulator: Emulator) -> None:
    model = make(emulator)
    async with model:
        answer = await model.aquery(png_bytes(), "hi", temperature=0.3)
        batch = await model.aquery_batch([png_bytes(), jpeg_bytes()], "hi")
    assert answer and len(batch) == 2
    assert emulator.requests[0].body["temperature"] == 0.3


def test_stream_yields_deltas(emulator: Emulator) -> None:
    model = make(emulator)
    chunks = list(model.stream(png_bytes(), "Describe this image."))
    assert len(chunks) > 1
    assert emulator.requests[0].body["stream"] is True
    assert "".join(chunks).strip()


def test_query_json_repairs_once_telling_the_model_what_was_wrong(emulator: Emulator) -> None:
    scene = make_scene(6, size=(320, 240))
    emulator.script("qwen-vl-max", ["prose", "ok"])
    result = make(emulator, "qwen/qwen-vl-max").query_json(scene.image, "How many shapes?", Shapes)
    assert result.count == len(scene.shapes)
    first, second = emulator.requests
    assert len(second.body["messages"]) == 3  # the question, the unusable answer, the repair
    assert second.body["messages"][1]["role"] == "assistant"
    assert "could not be used" in second.body["messages"][2]["content"]
    assert second.images[0].data == first.images[0].data


def test_query_json_gives_up_after_one_repair_with_the_raw_text(emulator: Emulator) -> None:
    emulator.script("qwen-vl-max", ["prose", "prose", "ok"])
    with pytest.raises(vlgate.ResponseError) as info:
        make(emulator, "qwen/qwen-vl-max").query_json(png_bytes(), "How many shapes?", Shapes)
    assert info.value.raw and "shapes" in info.value.raw
    assert len(emulator.requests) == 2
