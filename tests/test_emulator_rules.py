"""Each image rule the emulator enforces rejects what the real service rejects and accepts what
it accepts (sources cited in vlgate/testing/rules.py)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from vlgate.testing import Emulator

KEY = "emu-key"
MB = 1024 * 1024


def img_bytes(w: int, h: int, fmt: str = "PNG", pad: int = 0) -> bytes:
    """A small valid image; ``pad`` zero bytes appended (decoders ignore trailing data)."""
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue() + b"\0" * pad


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG = img_bytes(64, 48)
JPEG = img_bytes(64, 48, "JPEG")
GIF = img_bytes(64, 48, "GIF")
BMP = img_bytes(64, 48, "BMP")
GARBAGE = b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, noise=False) as e:
        yield e


@pytest.fixture(scope="module")
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=30) as c:
        yield c


# --- Anthropic -----------------------------------------------------------------------------------


def anthropic(http: httpx.Client, images: list[tuple[str, bytes]]) -> httpx.Response:
    content: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": mt, "data": b64(d)}}
        for mt, d in images
    ]
    content.append({"type": "text", "text": "What is this?"})
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": content}],
    }
    return http.post(
        "/v1/messages", json=body, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    )


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        pytest.param(
            [("image/jpeg", PNG)],
            "The image was specified using the image/jpeg media type, but the image appears to "
            "be a image/png image",
            id="declared-jpeg-actual-png",
        ),
        pytest.param(
            [("image/bmp", BMP)],
            "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
            id="bmp-type",
        ),
        pytest.param([("image/jpg", JPEG)], "Input should be 'image/jpeg'", id="image-jpg-alias"),
        pytest.param(
            [("image/png", img_bytes(8, 8, pad=5 * MB))],
            "image exceeds 5 MB maximum",
            id="over-5MB",
        ),
        pytest.param(
            [("image/png", img_bytes(8001, 4))],
            "exceed max allowed size: 8000 pixels",
            id="side-8001",
        ),
        pytest.param(
            [("image/png", img_bytes(2001, 4))] * 21,
            "many-image requests: 2000 pixels",
            id="21-images-2001px",
        ),
        pytest.param([("image/jpeg", GARBAGE)], "Could not process image", id="undecodable"),
    ],
)
def test_anthropic_rejects(
    http: httpx.Client, emu: Emulator, images: list[tuple[str, bytes]], fragment: str
) -> None:
    r = anthropic(http, images)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and fragment in err["message"]
    assert emu.requests[-1].status == 400 and fragment in (emu.requests[-1].error or "")


@pytest.mark.parametrize(
    "images",
    [
        pytest.param([("image/png", PNG)], id="png"),
        pytest.param([("image/jpeg", JPEG)], id="jpeg"),
        pytest.param([("image/gif", GIF)], id="gif"),
        pytest.param([("image/png", img_bytes(8, 8, pad=5 * MB - 200))], id="just-under-5MB"),
        pytest.param([("image/png", img_bytes(8000, 4))], id="side-8000"),
        pytest.param([("image/png", img_bytes(2000, 4))] * 21, id="21-images-2000px"),
        pytest.param([("image/png", img_bytes(2001, 4))] * 20, id="20-images-2001px"),
    ],
)
def test_anthropic_accepts(http: httpx.Client, images: list[tuple[str, bytes]]) -> None:
    r = anthropic(http, images)
    assert r.status_code == 200, r.text


# --- OpenAI --------------------------------------------------------------------------------------


def openai(
    http: httpx.Client, url: str, model: str = "gpt-4o", base: str = "/v1"
) -> httpx.Response:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return http.post(
        base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        pytest.param(
            "data:image/png;base64," + b64(img_bytes(8, 8, pad=20 * MB)),
            "exceeds the limit of 20 MB",
            id="over-20MB",
        ),
        pytest.param(
            "data:image/jpeg;base64," + b64(GARBAGE),
            "You uploaded an unsupported image",
            id="undecodable",
        ),
        pytest.param(
            "data:image/bmp;base64," + b64(BMP), "You uploaded an unsupported image", id="bmp"
        ),
    ],
)
def test_openai_rejects(http: httpx.Client, url: str, fragment: str) -> None:
    r = openai(http, url)
    assert r.status_code == 400
    assert fragment in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("data:image/jpeg;base64," + b64(PNG), id="declared-jpeg-actual-png"),
        pytest.param("data:image/jpg;base64," + b64(JPEG), id="image-jpg"),
        pytest.param("data:image/gif;base64," + b64(GIF), id="gif"),
        pytest.param(
            "data:image/png;base64," + b64(img_bytes(8, 8, pad=20 * MB - 200)), id="just-under-20MB"
        ),
        pytest.param("https://example.com/cat.png", id="https-url"),
    ],
)
def test_openai_accepts(http: httpx.Client, emu: Emulator, url: str) -> None:
    r = openai(http, url)
    assert r.status_code == 200, r.text
    img = emu.requests[-1].images[0]
    if url.startswith("https"):
        assert (img.source, img.url, img.nbytes) == ("url", url, 0)
    else:
        assert img.source == "data-uri" and img.size is not None


# --- Gemini --------------------------------------------------------------------------------------


def gemini(http: httpx.Client, images: list[tuple[str, bytes]]) -> httpx.Response:
    parts: list[dict[str, Any]] = [
        {"inline_data": {"mime_type": mt, "data": b64(d)}} for mt, d in images
    ]
    parts.append({"text": "What is this?"})
    return http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        json={"contents": [{"role": "user", "parts": parts}]},
        headers={"x-goog-api-key": KEY},
    )


BIG = img_bytes(8, 8, pad=10 * MB + 512 * 1024)


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        pytest.param(
            [("image/png", BIG), ("image/png", BIG)],
            "Request payload size exceeds the limit: 20971520 bytes",
            id="over-20MB-total",
        ),
        pytest.param([("image/gif", GIF)], "Unsupported MIME type: image/gif", id="gif"),
        pytest.param([("image/bmp", BMP)], "Unsupported MIME type: image/bmp", id="bmp"),
        pytest.param([("image/png", GARBAGE)], "Unable to process input image", id="undecodable"),
    ],
)
def test_gemini_rejects(http: httpx.Client, images: list[tuple[str, bytes]], fragment: str) -> None:
    r = gemini(http, images)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and fragment in err["message"]


@pytest.mark.parametrize(
    "images",
    [
        pytest.param([("image/png", BIG)], id="one-10.5MB"),
        pytest.param([("image/webp", img_bytes(64, 48, "WEBP"))], id="webp"),
        pytest.param([("image/jpeg", PNG)], id="lenient-declared-type"),
    ],
)
def test_gemini_accepts(http: httpx.Client, images: list[tuple[str, bytes]]) -> None:
    assert gemini(http, images).status_code == 200


# --- Ollama /v1 (ollama openai/openai.go decodeImageURL) -----------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        pytest.param(
            "https://example.com/cat.png",
            "image URLs are not currently supported, please use base64 encoded data instead",
            id="https",
        ),
        pytest.param("data:image/gif;base64," + b64(GIF), "invalid image input", id="gif"),
        pytest.param("data:image/bmp;base64," + b64(BMP), "invalid image input", id="bmp-prefix"),
    ],
)
def test_ollama_v1_rejects(http: httpx.Client, url: str, fragment: str) -> None:
    r = openai(http, url, model="llava:7b", base="/ollama/v1")
    assert r.status_code == 400 and fragment in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("data:image/jpeg;base64," + b64(JPEG), id="jpeg"),
        pytest.param("data:image/jpg;base64," + b64(JPEG), id="jpg"),
        pytest.param("data:image/png;base64," + b64(PNG), id="png"),
        pytest.param("data:image/webp;base64," + b64(img_bytes(64, 48, "WEBP")), id="webp"),
        pytest.param("data:;base64," + b64(PNG), id="no-type"),
    ],
)
def test_ollama_v1_accepts(http: httpx.Client, url: str) -> None:
    assert openai(http, url, model="llava:7b", base="/ollama/v1").status_code == 200


def test_ollama_v1_accepts_bare_string_image_url(http: httpx.Client) -> None:
    content = [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": "data:image/png;base64," + b64(PNG)},
    ]
    r = http.post(
        "/ollama/v1/chat/completions",
        json={"model": "llava:7b", "messages": [{"role": "user", "content": content}]},
    )
    assert r.status_code == 200


# --- Qwen minimum sides --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "base", "size", "ok"),
    [
        pytest.param("qwen-vl-max", "/v1", (10, 100), False, id="dashscope-10px"),
        pytest.param("qwen-vl-max", "/v1", (11, 100), True, id="dashscope-11px"),
        pytest.param("Qwen/Qwen3-VL-8B-Instruct", "/v1", (100, 8), False, id="vllm-qwen3-8px"),
        pytest.param("qwen2.5vl:7b", "/ollama/v1", (27, 100), False, id="ollama-qwen25-27px"),
        pytest.param("qwen2.5vl:7b", "/ollama/v1", (28, 100), True, id="ollama-qwen25-28px"),
        pytest.param("llava:7b", "/ollama/v1", (5, 5), True, id="ollama-llava-5px"),
        pytest.param("gpt-4o", "/v1", (5, 5), True, id="openai-5px"),
    ],
)
def test_qwen_min_side(
    http: httpx.Client, model: str, base: str, size: tuple[int, int], ok: bool
) -> None:
    r = openai(http, "data:image/png;base64," + b64(img_bytes(*size)), model=model, base=base)
    assert (r.status_code == 200) is ok, r.text
    if not ok:
        assert r.status_code == 400


def test_qwen_min_side_on_native_ollama(http: httpx.Client) -> None:
    body = {
        "model": "qwen2.5vl:7b",
        "stream": False,
        "messages": [{"role": "user", "content": "x", "images": [b64(img_bytes(20, 20))]}],
    }
    r = http.post("/api/chat", json=body)
    assert r.status_code == 400 and "28" in r.json()["error"]
    body["messages"][0]["images"] = [b64(img_bytes(28, 28))]  # type: ignore[index]
    assert http.post("/api/chat", json=body).status_code == 200
