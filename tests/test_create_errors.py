"""Configuration errors surface at ``create()``, before anything is sent."""

from __future__ import annotations

import pytest

import vlgate
from vlgate.registry import known_prefixes
from vlgate.testing import Emulator

from .conftest import KEY


def test_unknown_prefix_is_a_config_error_listing_prefixes(emulator: Emulator) -> None:
    with pytest.raises(vlgate.ConfigError) as err:
        vlgate.create("nosuchprovider/model", api_key=KEY, api_base=emulator.url)
    message = str(err.value)
    assert "nosuchprovider" in message
    for prefix in ("openai", "anthropic", "gemini", "vllm", "ollama", "litellm"):
        assert prefix in message
    assert "litellm/nosuchprovider/model" in message
    assert emulator.requests == []


def test_known_prefixes_are_the_registry_tables() -> None:
    prefixes = known_prefixes()
    assert prefixes == sorted(prefixes)
    assert {"openai", "qwen", "vllm", "ollama", "moondream", "local", "litellm"} <= set(prefixes)
    assert {"anthropic", "gemini", "bedrock", "azure", "vertex_ai"} <= set(prefixes)
