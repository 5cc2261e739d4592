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


def test_bare_provider_names_come_from_the_provider_rows() -> None:
    """A bare prefix is a provider row: its default model when it has one, else a clear ask."""
    from vlgate.registry import PROVIDERS, resolve

    assert resolve("moondream").model == PROVIDERS["moondream"].default_model
    for name, spec in PROVIDERS.items():
        if spec.default_model is None and name != "litellm":
            with pytest.raises(vlgate.ConfigError, match=f"'{name}' needs a model name"):
                resolve(name)
    with pytest.raises(vlgate.ConfigError, match="no provider prefix"):
        resolve("gpt-4o")
