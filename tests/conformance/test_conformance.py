"""The bodies vlgate sends on its three native paths, validated against the providers' own
published request definitions (transcribed in this package), not only against the emulator.

Each route makes the calls users make (a plain query, several images, a JSON-schema query, a
stream, the provider's own parameters) and every recorded body must validate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import vlgate
from vlgate.testing import Emulator

from ..conftest import KEY, jpeg_bytes, png_bytes
from .anthropic_messages import MessageCreateParams
from .gemini_generate import GenerateContentRequest
from .openai_chat import CreateChatCompletionRequest


class Shape(BaseModel):
    count: int
    colours: list[str]


ROUTES: dict[str, tuple[str, Callable[[Emulator], str], type[BaseModel], dict[str, Any]]] = {
    "openai": (
        "openai/gpt-4o-mini",
        lambda e: e.openai_base,
        CreateChatCompletionRequest,
        {"temperature": 0.2, "seed": 1, "stop": ["END"], "max_tokens": 200, "detail": "low"},
    ),
    "anthropic": (
        "anthropic/claude-sonnet-4-5",
        lambda e: e.url,
        MessageCreateParams,
        {
            "temperature": 0.2,
            "top_k": 5,
            "stop": "END",
            "max_tokens": 3000,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
    ),
    "gemini": (
        "gemini/gemini-2.5-flash",
        lambda e: e.url,
        GenerateContentRequest,
        {
            "temperature": 0.2,
            "top_k": 4,
            "stop": "END",
            "max_tokens": 300,
            "thinking_config": {"thinking_budget": 0},
            "media_resolution": "MEDIA_RESOLUTION_LOW",
            "safety_settings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
        },
    ),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_body_sent_validates_against_the_published_request_type(
    emulator: Emulator, route: str
) -> None:
    model_name, base, schema, params = ROUTES[route]
    m = vlgate.create(model_name, api_key=KEY, api_base=base(emulator), backoff_base=0)
    m.query(png_bytes(), "What is this?")
    m.query_images([png_bytes(), jpeg_bytes()], "Compare these.")
    m.query_json(png_bytes(), "Count the shapes and name their colours.", schema=Shape)
    assert "".join(m.stream(jpeg_bytes(), "Describe this image."))
    m.query(png_bytes(), "With parameters.", **params)
    m.detect(png_bytes(), "shape")
    assert len(emulator.requests) >= 6
    for rec in emulator.requests:
        assert rec.status == 200, rec.error
        schema.model_validate(rec.body)


@pytest.mark.parametrize(
    ("schema", "body", "problem"),
    [
        (
            CreateChatCompletionRequest,
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_k": 3},
            "top_k",
        ),
        (
            MessageCreateParams,
            {
                "model": "m",
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/jpg", "data": ""},
                            }
                        ],
                    }
                ],
            },
            "media_type",
        ),
        (
            MessageCreateParams,
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
        ),
        (
            GenerateContentRequest,
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseJsonSchema": {"type": "object"}},
            },
            "application/json",
        ),
        (
            GenerateContentRequest,
            {"contents": [{"parts": [{"text": "x"}]}], "generation_config": {}},
            "generation_config",
        ),
    ],
)
def test_the_definitions_reject_what_the_providers_reject(
    schema: type[BaseModel], body: dict[str, Any], problem: str
) -> None:
    """The conformance models are strict enough to fail: each body here is one the provider
    answers with 400."""
    with pytest.raises(ValidationError, match=problem):
        schema.model_validate(body)
