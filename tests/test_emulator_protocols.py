"""Wire shapes of the emulator: each protocol's request, answer, stream, auth and errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import assert_describes

KEY = "emu-key"
SCENE = make_scene(7, size=(640, 480), n_shapes=3)
JPEG = SCENE.to_jpeg_bytes()
B64 = base64.b64encode(JPEG).decode()


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, noise=False) as e:
        yield e


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    emu.clear()
    with httpx.Client(base_url=emu.url, timeout=10) as c:
        yield c


def _oa_body(prompt: str = "Describe this image", **extra: Any) -> dict[str, Any]:
    content = [
        {"type": "text", "text": prompt},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/jpeg;base64," + B64, "detail": "high"},
        },
    ]
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def _sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


# --- OpenAI --------------------------------------------------------------------------------------


def test_openai_completion_shape_and_recording(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions", json=_oa_body(), headers={"Authorization": f"Bearer {KEY}"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "stop"
    text = body["choices"][0]["message"]["content"]
    for shape in SCENE.shapes:
        assert shape.label in text
    usage = body["usage"]
    # gpt-4o tile formula: 640x480 is one 512-tile row of 2x1 -> 85 + 170 * 2 = 425 image tokens.
    assert usage["prompt_tokens"] >= 425
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    (rec,) = emu.requests
    assert (rec.protocol, rec.method, rec.path, rec.model, rec.stream) == (
        "openai",
        "POST",
        "/v1/chat/completions",
        "gpt-4o",
        False,
    )
    assert rec.status == 200 and rec.error is None
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.body["messages"][0]["content"][0]["text"] == "Describe this image"
    (img,) = rec.images
    assert (img.declared_mime, img.actual_mime, img.size, img.source, img.detail) == (
        "image/jpeg",
        "image/jpeg",
        (640, 480),
        "data-uri",
        "high",
    )
    assert img.nbytes == len(JPEG) and img.data == JPEG
    assert rec.response_text == text


def test_openai_stream_with_usage(http: httpx.Client) -> None:
    body = _oa_body(stream=True, stream_options={"include_usage": True})
    r = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.headers["content-type"].startswith("text/event-stream")
    data = _sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "image" in text and len(chunks) > 3
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])


def test_openai_stream_without_usage_has_no_usage_chunk(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions",
        json=_oa_body(stream=True),
        headers={"Authorization": f"Bearer {KEY}"},
    )
    chunks = [json.loads(d) for d in _sse_data(r.text)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        pytest.param({}, "You didn't provide an API key", id="missing"),
        pytest.param({"Authorization": "Bearer wrong-key-123"}, "Incorrect API key", id="wrong"),
    ],
)
def test_openai_auth_401(http: httpx.Client, headers: dict[str, str], fragment: str) -> None:
    r = http.post("/v1/chat/completions", json=_oa_body(), headers=headers)
    assert r.status_code == 401
    err = r.json()["error"]
    assert fragment in err["message"] and err["type"] == "invalid_request_error"
    assert "wrong-key-123" not in err["message"]  # keys are masked like OpenAI does


def test_openai_json_schema_answer_is_schema_valid(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "objects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"label": {"type": "string"}, "colour": {"type": "string"}},
                    "required": ["label", "colour"],
                    "additionalProperties": False,
                },
            },
            "visible": {"type": "boolean"},
        },
        "required": ["count", "objects", "visible"],
        "additionalProperties": False,
    }
    rf = {"type": "json_schema", "json_schema": {"name": "scene", "schema": schema, "strict": True}}
    r = http.post(
        "/v1/chat/completions",
        json=_oa_body("List the shapes", response_format=rf),
        headers={"Authorization": f"Bearer {KEY}"},
    )
    out = json.loads(r.json()["choices"][0]["message"]["content"])
    assert out["count"] == len(SCENE.shapes) and out["visible"] is True
    assert sorted(o["label"] for o in out["objects"]) == sorted(s.label for s in SCENE.shapes)
    assert sorted(o["colour"] for o in out["objects"]) == sorted(s.colour for s in SCENE.shapes)


def test_openai_json_object_mode_returns_object(http: httpx.Client) -> None:
    rf = {"type": "json_object"}
    r = http.post(
        "/v1/chat/completions",
        json=_oa_body("How many shapes? Answer in JSON", response_format=rf),
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"count": len(SCENE.shapes)}


def test_openai_max_tokens_truncates_with_length(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions",
        json=_oa_body(max_tokens=3),
        headers={"Authorization": f"Bearer {KEY}"},
    )
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length" and len(choice["message"]["content"]) == 12


def test_openai_image_url_must_be_object(http: httpx.Client) -> None:
    body = _oa_body()
    body["messages"][0]["content"][1]["image_url"] = "data:image/jpeg;base64," + B64
    r = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400
    assert "expected an object, but got a string" in r.json()["error"]["message"]


def test_openai_bad_json_and_missing_fields(emu: Emulator, http: httpx.Client) -> None:
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    assert http.post("/v1/chat/completions", content=b"{not json", headers=h).status_code == 400
    r = http.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, headers=h
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    assert [q.status for q in emu.requests] == [400, 400]


def test_models_list(http: httpx.Client) -> None:
    r = http.get("/v1/models")
    assert r.json()["object"] == "list" and any(m["id"] == "gpt-4o" for m in r.json()["data"])


def test_text_only_request_answers(http: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    r = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert (
        r.json()["choices"][0]["message"]["content"]
        == "Hello! I am an emulated gpt-4o-mini. I received no image."
    )


# --- Anthropic -----------------------------------------------------------------------------------


def _an_body(**extra: Any) -> dict[str, Any]:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": B64}},
        {"type": "text", "text": "How many shapes are there?"},
    ]
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


AN_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def test_anthropic_message_shape(emu: Emulator, http: httpx.Client) -> None:
    r = http.post("/v1/messages", json=_an_body(system="Be brief."), headers=AN_HEADERS)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": f"There are {len(SCENE.shapes)} shapes."}]
    assert body["stop_reason"] == "end_turn"
    # Claude tokens: ceil(640/28) * ceil(480/28) = 23 * 18 = 414 for the image.
    assert body["usage"]["input_tokens"] >= 414 and body["usage"]["output_tokens"] > 0
    rec = emu.requests[-1]
    assert rec.protocol == "anthropic" and rec.images[0].source == "base64"
    assert rec.images[0].declared_mime == "image/jpeg"


def test_anthropic_stream_events(http: httpx.Client) -> None:
    r = http.post("/v1/messages", json=_an_body(stream=True), headers=AN_HEADERS)
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert events[-2] == "message_delta"
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(events)
    payloads = [json.loads(d) for d in _sse_data(r.text)]
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text == f"There are {len(SCENE.shapes)} shapes."
    delta = next(p for p in payloads if p["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] > 0
    # The same counts as the answer without streaming: input on message_start, the cumulative
    # input and output on message_delta.
    whole = http.post("/v1/messages", json=_an_body(), headers=AN_HEADERS).json()["usage"]
    assert payloads[0]["message"]["usage"]["input_tokens"] == whole["input_tokens"]
    assert delta["usage"]["input_tokens"] == whole["input_tokens"]
    assert delta["usage"]["output_tokens"] == whole["output_tokens"]


@pytest.mark.parametrize(
    ("headers", "status", "etype"),
    [
        pytest.param(
            {"anthropic-version": "2023-06-01"}, 401, "authentication_error", id="missing-key"
        ),
        pytest.param(
            {"x-api-key": "nope", "anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            id="wrong-key",
        ),
        pytest.param({"x-api-key": KEY}, 400, "invalid_request_error", id="missing-version"),
    ],
)
def test_anthropic_auth(
    http: httpx.Client, headers: dict[str, str], status: int, etype: str
) -> None:
    r = http.post("/v1/messages", json=_an_body(), headers=headers)
    assert r.status_code == status
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == etype


def test_anthropic_requires_max_tokens(http: httpx.Client) -> None:
    body = _an_body()
    del body["max_tokens"]
    r = http.post("/v1/messages", json=body, headers=AN_HEADERS)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


# --- Gemini --------------------------------------------------------------------------------------


def _gm_body(camel: bool = False, **gc: Any) -> dict[str, Any]:
    inline = (
        {"inlineData": {"mimeType": "image/jpeg", "data": B64}}
        if camel
        else {"inline_data": {"mime_type": "image/jpeg", "data": B64}}
    )
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [inline, {"text": "Describe the image"}]}]
    }
    if gc:
        body["generationConfig"] = gc
    return body


@pytest.mark.parametrize("camel", [False, True], ids=["snake", "camel"])
def test_gemini_generate_content(emu: Emulator, http: httpx.Client, camel: bool) -> None:
    r = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        json=_gm_body(camel),
        headers={"x-goog-api-key": KEY},
    )
    assert r.status_code == 200
    body = r.json()
    cand = body["candidates"][0]
    assert cand["content"]["role"] == "model" and cand["finishReason"] == "STOP"
    assert_describes(cand["content"]["parts"][0]["text"], SCENE)
    um = body["usageMetadata"]
    assert um["totalTokenCount"] == um["promptTokenCount"] + um["candidatesTokenCount"]
    rec = emu.requests[-1]
    assert rec.protocol == "gemini" and rec.model == "gemini-2.5-flash"
    assert rec.images[0].declared_mime == "image/jpeg" and rec.images[0].size == (640, 480)


def test_gemini_key_in_query_and_unprefixed_path(http: httpx.Client) -> None:
    r = http.post(f"/models/gemini-2.5-flash:generateContent?key={KEY}", json=_gm_body())
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "gstatus"),
    [
        pytest.param({}, 403, "PERMISSION_DENIED", id="missing"),
        pytest.param({"x-goog-api-key": "bad"}, 400, "INVALID_ARGUMENT", id="wrong"),
    ],
)
def test_gemini_auth(
    http: httpx.Client, headers: dict[str, str], status: int, gstatus: str
) -> None:
    r = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent", json=_gm_body(), headers=headers
    )
    assert r.status_code == status
    assert r.json()["error"]["status"] == gstatus and r.json()["error"]["code"] == status


def test_gemini_sse_stream_and_json_array_stream(http: httpx.Client) -> None:
    h = {"x-goog-api-key": KEY}
    r = http.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", json=_gm_body(), headers=h
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    parts = [json.loads(d) for d in _sse_data(r.text)]
    sse_text = "".join(p["candidates"][0]["content"]["parts"][0]["text"] for p in parts)
    assert parts[-1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in parts[-1]
    whole = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent", json=_gm_body(), headers=h
    ).json()["usageMetadata"]
    assert parts[-1]["usageMetadata"] == whole  # the last chunk's counts are the final ones
    assert all(p["usageMetadata"]["promptTokenCount"] == whole["promptTokenCount"] for p in parts)
    r2 = http.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent", json=_gm_body(), headers=h
    )
    arr = r2.json()
    assert isinstance(arr, list) and len(arr) == len(parts)
    assert "".join(p["candidates"][0]["content"]["parts"][0]["text"] for p in arr) == sse_text


def test_gemini_response_schema(http: httpx.Client) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "count": {"type": "INTEGER"},
            "labels": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
    }
    r = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        json=_gm_body(responseMimeType="application/json", responseSchema=schema),
        headers={"x-goog-api-key": KEY},
    )
    out = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert out["count"] == len(SCENE.shapes)
    assert sorted(out["labels"]) == sorted(s.label for s in SCENE.shapes)


def test_gemini_schema_without_json_mime_is_rejected(http: httpx.Client) -> None:
    r = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        json=_gm_body(responseSchema={"type": "OBJECT"}),
        headers={"x-goog-api-key": KEY},
    )
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


# --- Ollama --------------------------------------------------------------------------------------


def test_ollama_native_chat_streams_ndjson_by_default(emu: Emulator, http: httpx.Client) -> None:
    body = {
        "model": "llava:7b",
        "messages": [{"role": "user", "content": "Describe this", "images": [B64]}],
    }
    r = http.post("/api/chat", json=body)
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert all(not x["done"] for x in lines[:-1]) and lines[-1]["done"] is True
    assert lines[-1]["done_reason"] == "stop" and lines[-1]["eval_count"] > 0
    text = "".join(x["message"]["content"] for x in lines)
    assert_describes(text, SCENE)
    rec = emu.requests[-1]
    assert rec.protocol == "ollama" and rec.stream is True
    assert rec.images[0].source == "base64" and rec.images[0].declared_mime is None


def test_ollama_native_chat_no_stream(http: httpx.Client) -> None:
    body = {
        "model": "llava:7b",
        "stream": False,
        "messages": [{"role": "user", "content": "How many shapes?", "images": [B64]}],
    }
    r = http.post("/api/chat", json=body)
    out = r.json()
    assert out["done"] is True and out["message"] == {
        "role": "assistant",
        "content": f"There are {len(SCENE.shapes)} shapes.",
    }


def test_ollama_native_rejects_data_uri_prefix(http: httpx.Client) -> None:
    body = {
        "model": "llava:7b",
        "stream": False,
        "messages": [{"role": "user", "content": "x", "images": ["data:image/jpeg;base64," + B64]}],
    }
    r = http.post("/api/chat", json=body)
    assert r.status_code == 400 and r.json() == {"error": "illegal base64 data at input byte 4"}


def test_ollama_v1_needs_no_key(http: httpx.Client) -> None:
    body = _oa_body()
    body["model"] = "llava:7b"
    r = http.post("/ollama/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"


def test_keyless_emulator_accepts_anything() -> None:
    with Emulator(api_key=None) as e, httpx.Client(base_url=e.url) as c:
        r = c.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200


# --- openai SDK end to end ------------------------------------------------------------------------


def test_openai_sdk_against_emulator(emu: Emulator) -> None:
    import openai

    emu.clear()
    client = openai.OpenAI(base_url=emu.openai_base, api_key=KEY, max_retries=0)
    out = client.chat.completions.create(**_oa_body("How many red shapes are there?"))
    n_red = SCENE.counts.get("red", 0)
    expected = "There is 1 red shape." if n_red == 1 else f"There are {n_red} red shapes."
    assert out.choices[0].message.content == expected
    assert emu.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=emu.openai_base, api_key="wrong", max_retries=0
        ).chat.completions.create(**_oa_body())


def test_plugin_and_package_import_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, vlgate.testing.pytest_plugin, vlgate.testing;"
        "print('aiohttp' in sys.modules, 'vlgate.testing.emulator' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # vlgate/__init__ may import other things; the emulator itself must stay unloaded.
    assert out.stdout.split()[1] == "False"


def test_cli_module_serves_until_terminated() -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlgate.testing", "--port", str(port), "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"Authorization": "Bearer k"},
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
