"""LiteLLM (not vlgate) through the emulator: what arrives for anthropic/ and gemini/.

api_base: ``emu.url`` for both (LiteLLM appends ``/v1/messages`` for Anthropic and
``/models/{model}:generateContent`` for Gemini).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import assert_describes

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

pytestmark = pytest.mark.litellm

KEY = "emu-key"
SCENE = make_scene(13, size=(800, 600), n_shapes=3)
JPEG_URI = "data:image/jpeg;base64," + base64.b64encode(SCENE.to_jpeg_bytes()).decode()
PNG_AS_JPEG_URI = "data:image/jpeg;base64," + base64.b64encode(SCENE.to_png_bytes()).decode()


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, noise=False) as e:
        yield e


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> Any:
    # LiteLLM caches async HTTP clients per event loop; close them before this test's loop ends.
    yield
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    await close_litellm_async_clients()


def msgs(prompt: str, uri: str = JPEG_URI) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": uri}},
            ],
        }
    ]


async def test_anthropic_through_litellm(emu: Emulator) -> None:
    emu.clear()
    r = await litellm.acompletion(
        model="anthropic/claude-sonnet-4-5",
        messages=msgs("How many shapes are there?"),
        api_base=emu.url,
        api_key=KEY,
        max_tokens=100,
    )
    assert r.choices[0].message.content == f"There are {len(SCENE.shapes)} shapes."
    assert r.usage.prompt_tokens > 0
    (rec,) = emu.requests
    assert (rec.protocol, rec.path, rec.status) == ("anthropic", "/v1/messages", 200)
    assert rec.headers["x-api-key"] == KEY and "anthropic-version" in rec.headers
    assert rec.body["max_tokens"] == 100 and rec.model == "claude-sonnet-4-5"
    block = rec.body["messages"][0]["content"][1]
    assert block["type"] == "image" and block["source"]["media_type"] == "image/jpeg"
    assert rec.images[0].actual_mime == "image/jpeg" and rec.images[0].size == (800, 600)


async def test_anthropic_stream_through_litellm(emu: Emulator) -> None:
    r = await litellm.acompletion(
        model="anthropic/claude-sonnet-4-5",
        messages=msgs("Describe the image."),
        api_base=emu.url,
        api_key=KEY,
        max_tokens=200,
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in r])
    assert text == emu.requests[-1].response_text  # the whole answer, streamed
    assert_describes(text, SCENE)
    assert emu.requests[-1].stream is True


async def test_litellm_forwards_wrong_media_type_and_anthropic_rejects(emu: Emulator) -> None:
    # LiteLLM trusts the data-URI type (litellm#24900); the emulator answers like Anthropic.
    with pytest.raises(litellm.BadRequestError, match="appears to be a image/png image"):
        await litellm.acompletion(
            model="anthropic/claude-sonnet-4-5",
            messages=msgs("hi", PNG_AS_JPEG_URI),
            api_base=emu.url,
            api_key=KEY,
            max_tokens=10,
        )
    assert emu.requests[-1].status == 400


async def test_anthropic_errors_map_through_litellm(emu: Emulator) -> None:
    emu.script("claude-sonnet-4-5", ["429", "529"])
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(
            model="anthropic/claude-sonnet-4-5",
            messages=msgs("hi"),
            api_base=emu.url,
            api_key=KEY,
            max_tokens=10,
        )
    with pytest.raises(litellm.InternalServerError):
        await litellm.acompletion(
            model="anthropic/claude-sonnet-4-5",
            messages=msgs("hi"),
            api_base=emu.url,
            api_key=KEY,
            max_tokens=10,
        )
    with pytest.raises(litellm.AuthenticationError):
        await litellm.acompletion(
            model="anthropic/claude-sonnet-4-5",
            messages=msgs("hi"),
            api_base=emu.url,
            api_key="bad",
            max_tokens=10,
        )


async def test_gemini_through_litellm(emu: Emulator) -> None:
    emu.clear()
    r = await litellm.acompletion(
        model="gemini/gemini-2.5-flash",
        messages=msgs("Detect all shapes, output box_2d."),
        api_base=emu.url,
        api_key=KEY,
    )
    boxes = json.loads(r.choices[0].message.content)
    assert sorted(b["label"] for b in boxes) == sorted(s.label for s in SCENE.shapes)
    for b in boxes:
        _, xmin, ymax, _ = b["box_2d"]
        truth = next(s for s in SCENE.shapes if s.label == b["label"])
        assert (
            abs(xmin / 1000 * 800 - truth.box[0]) < 3 and abs(ymax / 1000 * 600 - truth.box[3]) < 3
        )
    (rec,) = emu.requests
    assert (rec.protocol, rec.path, rec.model) == (
        "gemini",
        "/models/gemini-2.5-flash:generateContent",
        "gemini-2.5-flash",
    )
    assert rec.headers["x-goog-api-key"] == KEY
    part = rec.body["contents"][0]["parts"][1]
    assert part["inline_data"]["mime_type"] == "image/jpeg"
    assert rec.images[0].size == (800, 600)


async def test_gemini_stream_and_schema_through_litellm(emu: Emulator) -> None:
    r = await litellm.acompletion(
        model="gemini/gemini-2.5-flash",
        messages=msgs("How many shapes?"),
        api_base=emu.url,
        api_key=KEY,
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in r])
    assert text == f"There are {len(SCENE.shapes)} shapes."
    assert emu.requests[-1].query == {"alt": "sse"}
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    rf = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    r2 = await litellm.acompletion(
        model="gemini/gemini-2.5-flash",
        messages=msgs("Count"),
        api_base=emu.url,
        api_key=KEY,
        response_format=rf,
    )
    assert json.loads(r2.choices[0].message.content) == {"count": len(SCENE.shapes)}


async def test_hosted_vllm_and_ollama_chat_through_litellm(emu: Emulator) -> None:
    r = await litellm.acompletion(
        model="hosted_vllm/Qwen/Qwen2.5-VL-7B-Instruct",
        messages=msgs("How many shapes?"),
        api_base=emu.openai_base,
        api_key=KEY,
    )
    assert r.choices[0].message.content == f"There are {len(SCENE.shapes)} shapes."
    r = await litellm.acompletion(
        model="ollama_chat/qwen2.5vl:7b", messages=msgs("How many shapes?"), api_base=emu.url
    )
    assert r.choices[0].message.content == f"There are {len(SCENE.shapes)} shapes."
    rec = emu.requests[-1]
    assert rec.path == "/api/chat" and rec.images[0].source == "base64"
