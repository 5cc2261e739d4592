"""Every provider's native parameters arrive on the wire where the provider takes them.

One test per provider: parameters from the registry's table (``vlgate.registry.PARAMS``) are
passed to a call, and the body the emulator recorded is checked key by key. Parameters a
provider is known to reject are dropped with the reason on the answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import vlgate
from vlgate.registry import PARAMS
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes


def make(emu: Emulator, model: str, base: str | None = None, **kw: Any) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", base or emu.openai_base)
    kw.setdefault("backoff_base", 0.0)
    kw.setdefault("max_retries", 0)
    return vlgate.create(model, **kw)


def image_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        item["image_url"]
        for msg in body["messages"]
        if isinstance(msg.get("content"), list)
        for item in msg["content"]
        if item.get("type") == "image_url"
    ]


def test_openai_detail_reasoning_service_tier_and_escape_hatches(emulator: Emulator) -> None:
    model = make(emulator, "openai/gpt-4o")
    answer = model.query(
        png_bytes(),
        "describe",
        detail="low",
        reasoning_effort="low",
        service_tier="flex",
        extra_body={"metadata": {"run": "7"}},
        extra_headers={"X-Trace": "abc"},
        top_k=5,
    )
    [req] = emulator.requests
    assert [p["detail"] for p in image_parts(req.body)] == ["low"]
    assert req.images[0].detail == "low"
    assert req.body["reasoning_effort"] == "low"
    assert req.body["service_tier"] == "flex"
    assert req.body["metadata"] == {"run": "7"}
    assert req.headers["x-trace"] == "abc"
    assert "detail" not in req.body and "extra_body" not in req.body
    assert "top_k" not in req.body
    assert answer.dropped_params == ("top_k",)
    assert "no top_k" in answer.dropped_reasons["top_k"]


def test_openai_detail_as_a_model_option_reaches_every_image(emulator: Emulator) -> None:
    model = make(emulator, "openai/gpt-4o", params={"detail": "high"})
    model.query_images([png_bytes(), png_bytes((32, 32))], "compare")
    [req] = emulator.requests
    assert [p["detail"] for p in image_parts(req.body)] == ["high", "high"]


def test_qwen_dashscope_extra_body_keys_arrive_top_level(emulator: Emulator) -> None:
    model = make(emulator, "qwen/qwen-vl-max")
    answer = model.query(
        png_bytes(), "describe", vl_high_resolution_images=True, enable_thinking=False, top_k=3
    )
    [req] = emulator.requests
    assert req.body["vl_high_resolution_images"] is True
    assert req.body["enable_thinking"] is False
    assert req.body["top_k"] == 3
    assert answer.dropped_params == ()


def test_vllm_sampling_processor_and_guided_decoding_keys(emulator: Emulator) -> None:
    model = make(emulator, "vllm/Qwen/Qwen2.5-VL-7B-Instruct")
    model.query(
        png_bytes(),
        "describe",
        top_k=20,
        min_p=0.05,
        mm_processor_kwargs={"max_pixels": 1003520},
        guided_json={"type": "object"},
        extra_body={"repetition_penalty": 1.05},
    )
    [req] = emulator.requests
    assert req.body["top_k"] == 20 and req.body["min_p"] == 0.05
    assert req.body["mm_processor_kwargs"] == {"max_pixels": 1003520}
    assert req.body["guided_json"] == {"type": "object"}
    assert req.body["repetition_penalty"] == 1.05


def test_ollama_options_keep_alive_and_think(emulator: Emulator) -> None:
    model = make(emulator, "ollama/qwen2.5vl:7b", base=emulator.ollama_base)
    model.query(png_bytes(), "describe", options={"num_ctx": 8192}, keep_alive="10m", think=False)
    [req] = emulator.requests
    assert req.body["options"] == {"num_ctx": 8192}
    assert req.body["keep_alive"] == "10m"
    assert req.body["think"] is False


def test_every_table_row_names_a_known_placement() -> None:
    places = {"body", "image", "generationConfig", "options", "settings"}
    for table in PARAMS.values():
        for name, spec in table.params.items():
            assert spec.where in places, (table.name, name)
            assert name not in table.rejects, (table.name, name)


@pytest.mark.parametrize(
    "route",
    [
        "anthropic/claude-sonnet-4-5",
        pytest.param("litellm/anthropic/claude-sonnet-4-5", marks=pytest.mark.litellm),
    ],
)
def test_anthropic_top_k_thinking_and_extra_body(emulator: Emulator, route: str) -> None:
    model = make(emulator, route, base=emulator.url)
    answer = model.query(
        png_bytes(),
        "describe",
        top_k=5,
        thinking={"type": "enabled", "budget_tokens": 1024},
        max_tokens=2048,
        extra_body={"metadata": {"user_id": "u1"}},
        seed=3,
        detail="low",
    )
    [req] = emulator.requests
    assert req.protocol == "anthropic"
    assert req.body["top_k"] == 5
    assert req.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert req.body["metadata"] == {"user_id": "u1"}
    assert "seed" not in req.body and "extra_body" not in req.body
    assert answer.dropped_params == ("detail", "seed")
    assert "Anthropic" in answer.dropped_reasons["seed"]


@pytest.mark.parametrize(
    "route",
    [
        "gemini/gemini-2.5-flash",
        pytest.param("litellm/gemini/gemini-2.5-flash", marks=pytest.mark.litellm),
    ],
)
def test_gemini_media_resolution_thinking_and_safety(emulator: Emulator, route: str) -> None:
    model = make(emulator, route, base=emulator.url)
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    answer = model.query(
        png_bytes(),
        "describe",
        media_resolution="MEDIA_RESOLUTION_LOW",
        thinking_config={"thinkingBudget": 0},
        safety_settings=safety,
        top_k=8,
    )
    [req] = emulator.requests
    assert req.protocol == "gemini"
    gc = req.body["generationConfig"]
    # proto3 JSON takes snake_case and lowerCamelCase alike.
    assert gc.get("mediaResolution", gc.get("media_resolution")) == "MEDIA_RESOLUTION_LOW"
    assert gc.get("thinkingConfig", gc.get("thinking_config")) == {"thinkingBudget": 0}
    assert gc.get("topK", gc.get("top_k")) == 8
    assert req.body["safetySettings"] == safety
    assert answer.dropped_params == ()


# --- native structured output ------------------------------------------------------------------


class Count(BaseModel):
    people: int
    label: str


class Loose(BaseModel):
    people: int
    note: str = ""


def test_openai_json_schema_is_strict_when_the_schema_allows(emulator: Emulator) -> None:
    out = make(emulator, "openai/gpt-4o").query_json(png_bytes(), "Count.", Count)
    assert isinstance(out, Count)
    [req] = emulator.requests
    spec = req.body["response_format"]["json_schema"]
    assert spec["strict"] is True and spec["name"] == "Count"
    assert spec["schema"]["additionalProperties"] is False
    assert set(spec["schema"]["required"]) == {"people", "label"}


def test_openai_optional_fields_are_sent_without_strict(emulator: Emulator) -> None:
    make(emulator, "openai/gpt-4o").query_json(png_bytes(), "Count.", Loose)
    [req] = emulator.requests
    spec = req.body["response_format"]["json_schema"]
    assert "strict" not in spec
    assert spec["schema"]["properties"]["note"]["default"] == ""


def test_vllm_gets_the_schema_without_openai_strict(emulator: Emulator) -> None:
    make(emulator, "vllm/Qwen/Qwen2.5-VL-7B-Instruct").query_json(png_bytes(), "Count.", Count)
    [req] = emulator.requests
    assert req.body["response_format"]["type"] == "json_schema"
    assert "strict" not in req.body["response_format"]["json_schema"]


@pytest.mark.parametrize(
    "route",
    [
        "anthropic/claude-sonnet-4-5",
        pytest.param("litellm/anthropic/claude-sonnet-4-5", marks=pytest.mark.litellm),
    ],
)
def test_anthropic_query_json_sends_native_structured_output(
    emulator: Emulator, route: str
) -> None:
    model = make(emulator, route, base=emulator.url)
    out = model.query_json(png_bytes(), "Count.", Count)
    assert isinstance(out, Count)
    [req] = emulator.requests
    fmt = req.body.get("output_format") or req.body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["properties"]) == {"people", "label"}


@pytest.mark.parametrize(
    "route",
    [
        "gemini/gemini-2.5-flash",
        pytest.param("litellm/gemini/gemini-2.5-flash", marks=pytest.mark.litellm),
    ],
)
def test_gemini_query_json_sends_the_response_schema(emulator: Emulator, route: str) -> None:
    model = make(emulator, route, base=emulator.url)
    out = model.query_json(png_bytes(), "Count.", Count)
    assert isinstance(out, Count)
    [req] = emulator.requests
    gc = req.body["generationConfig"]
    schema = gc.get("responseJsonSchema", gc.get("response_json_schema"))
    assert set(schema["properties"]) == {"people", "label"}
    assert gc.get("responseMimeType", gc.get("response_mime_type")) == "application/json"


def test_models_catalog_says_what_is_sent() -> None:
    from vlgate.cli.info import model_catalog

    families = {f["name"]: f for f in model_catalog()["families"]}
    # Claude and Gemini: the provider's native mode (LiteLLM sends it natively), not "prompted".
    assert families["claude"]["native_json_schema"] is None
    assert families["gemini"]["native_json_schema"] is None
    providers = {p["name"]: p for p in model_catalog()["providers"]}
    assert providers["litellm"]["native_json_schema"] is True


def test_gemini_image_tokens_are_the_servers_own_count(emulator: Emulator) -> None:
    # Claude's rule as vlgate's (wrong) estimate: 1000*800/750 = 1067; the server says 1032.
    model = make(emulator, "gemini/gemini-2.5-flash", base=emulator.url, family="claude")
    image = png_bytes((1000, 800))
    assert vlgate.estimate_tokens(image, model) == 1067
    answer = model.query(image, "describe")
    # The emulator reports an IMAGE modality count of 4 tiles x 258 (1000x800 > 768 px).
    assert answer.usage.image_tokens == 4 * 258 <= answer.usage.input_tokens
