"""The LiteLLM gateway: Anthropic, Gemini, Bedrock, Azure, Vertex and any other LiteLLM model.

vlgate hands LiteLLM OpenAI-format messages whose images are always data URIs with a MIME type
sniffed from the bytes (LiteLLM trusts the declared type and would otherwise fetch URLs itself with
a 6000 s timeout). LiteLLM's retries are off; vlgate's runtime retries.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import AsyncIterator
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import errors
from .base import ChatRequest, Completion, Provider, Usage, response_format, to_openai_messages

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..registry import Route

__all__ = ["LiteLLMProvider", "load_litellm"]

log = logging.getLogger("vlgate")

INSTALL_HINT = "LiteLLM is not installed; install the extra: pip install 'vlgate[litellm]'"


def _require_installed() -> None:
    if importlib.util.find_spec("litellm") is None:
        raise ImportError(INSTALL_HINT)


@lru_cache(maxsize=1)
def load_litellm() -> ModuleType:
    """Import LiteLLM once, offline: its cost map comes from the wheel, never the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:  # pragma: no cover - guarded by _require_installed
        raise ImportError(INSTALL_HINT) from exc
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class LiteLLMProvider(Provider):
    """Any LiteLLM model string, e.g. ``anthropic/claude-sonnet-4-6``."""

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        _require_installed()
        super().__init__(route, config, api_key, api_base)
        self._supported: frozenset[str] | None = None

    def _supported_params(self, litellm: ModuleType) -> frozenset[str] | None:
        if self._supported is None:
            try:
                got = litellm.get_supported_openai_params(model=self.route.model)
            except Exception:  # unknown model: let drop_params decide
                got = None
            self._supported = frozenset(got) if got else frozenset()
        return self._supported or None

    def _kwargs(
        self, request: ChatRequest, litellm: ModuleType
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        params = dict(request.params)
        supported = self._supported_params(litellm)
        dropped: tuple[str, ...] = ()
        if supported is not None:
            dropped = tuple(sorted(k for k in params if k not in supported))
            if dropped:
                log.debug("%s does not take %s; dropped", self.route.model, ", ".join(dropped))
                for k in dropped:
                    params.pop(k)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request),
            "drop_params": True,
            "num_retries": 0,
            "max_retries": 0,
            "timeout": request.timeout,
            **params,
        }
        if self._api_key:
            kwargs["api_key"] = self._api_key
        if self.api_base:
            kwargs["api_base"] = self.api_base
        fmt = response_format(request)
        if fmt is not None and (request.json_schema is not None or "response_format" not in kwargs):
            kwargs["response_format"] = fmt
        headers = {**self.config.extra_headers, **request.extra_headers}
        if headers:
            kwargs["extra_headers"] = headers
        return kwargs, dropped

    def _map(self, exc: BaseException) -> errors.VlgateError:
        from ._errors import map_openai_error

        return map_openai_error(
            exc, provider="litellm", model=self.route.model, secrets=(self._api_key,)
        )

    async def complete(self, request: ChatRequest) -> Completion:
        litellm = load_litellm()
        kwargs, dropped = self._kwargs(request, litellm)
        try:
            resp = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise self._map(exc) from None
        choices = getattr(resp, "choices", None)
        text = choices[0].message.content if choices else None
        if not text:
            err = errors.ResponseError("the model returned an empty answer", raw=text)
            err.retryable = True  # type: ignore[attr-defined]
            raise err
        usage = Usage(requests=1)
        raw_usage = getattr(resp, "usage", None)
        if raw_usage is not None:
            usage.input_tokens = getattr(raw_usage, "prompt_tokens", 0) or 0
            usage.output_tokens = getattr(raw_usage, "completion_tokens", 0) or 0
        hidden = getattr(resp, "_hidden_params", None) or {}
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if isinstance(cost, int | float):
            usage.cost = float(cost)
        return Completion(
            text=text,
            usage=usage,
            model=getattr(resp, "model", None),
            finish_reason=choices[0].finish_reason if choices else None,
            dropped_params=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        litellm = load_litellm()
        kwargs, _ = self._kwargs(request, litellm)
        kwargs["stream"] = True
        try:
            stream = await litellm.acompletion(**kwargs)
            async for chunk in stream:
                choices = getattr(chunk, "choices", None)
                if choices and choices[0].delta and choices[0].delta.content:
                    yield choices[0].delta.content
        except Exception as exc:
            raise self._map(exc) from None
