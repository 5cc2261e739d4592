"""Providers: one module each, registered by a row in ``vlgate.registry.PROVIDERS``.

Modules are imported on first use, so ``import vlgate`` loads no HTTP client and never LiteLLM;
no route but ``litellm/`` loads a provider SDK at all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .base import ChatRequest, Completion, Message, Provider, Usage

if TYPE_CHECKING:
    from ..registry import ProviderSpec

__all__ = ["ChatRequest", "Completion", "Message", "Provider", "Usage", "provider_class"]


def provider_class(spec: ProviderSpec) -> type[Provider]:
    """Import and return the class named by ``spec.target`` (``module:Class``)."""
    module_name, _, class_name = spec.target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{spec.target} is not a vlgate Provider")
    return cls
