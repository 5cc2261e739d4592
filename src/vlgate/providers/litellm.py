"""The LiteLLM gateway: Anthropic, Gemini, Bedrock, Azure, Vertex and any other LiteLLM model.

vlgate hands LiteLLM OpenAI-format messages whose images are always data URIs with a MIME type
sniffed from the bytes (LiteLLM trusts the declared type and would otherwise fetch URLs itself with
a 6000 s timeout). LiteLLM's retries are off; vlgate's runtime retries.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import errors
from ..registry import IMAGE, gateway_route, param_table
from ..runtime.loop import run_on_background
from ._errors import (
    _chain,
    _is_transport,
    error_for_status,
    error_for_transport,
    malformed_answer,
    map_openai_error,
)
from .base import ChatRequest, Completion, Provider, Usage, response_format, to_openai_messages
from .params import EXTRA_BODY, openai_image_parts, split

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
    # LiteLLM would otherwise fetch Anthropic's beta-header table from the network per request.
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    try:
        import litellm
    except ImportError as exc:  # pragma: no cover - guarded by _require_installed
        raise ImportError(INSTALL_HINT) from exc
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    # Registered after LiteLLM's own exit hook, so it runs first: LiteLLM would otherwise replay
    # queued logging callbacks on a fresh loop at exit, detached from the loop they belong to.
    atexit.register(_flush_logging_at_exit)
    return litellm


async def _flush_logging(timeout: float = 2.0) -> None:
    """Run LiteLLM's queued success/failure logging callbacks on this loop now."""
    if "litellm" not in sys.modules:
        return
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    with contextlib.suppress(Exception):
        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout)


def _flush_logging_at_exit() -> None:
    with contextlib.suppress(Exception):
        run_on_background(_flush_logging(), timeout=3.0)


class LiteLLMProvider(Provider):
    """Any LiteLLM model string, e.g. ``anthropic/claude-sonnet-4-6``."""

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        _require_installed()
        super().__init__(route, config, api_key, api_base)
        self._supported: frozenset[str] | None = None
        self._gateway = gateway_route(route.model)

    def _supported_params(self, litellm: ModuleType) -> frozenset[str]:
        """The OpenAI-style parameters LiteLLM translates for this model itself."""
        if self._supported is None:
            try:
                got = litellm.get_supported_openai_params(model=self.route.model)
            except Exception:  # unknown model: only the provider's own table decides
                got = None
            self._supported = frozenset(got or ())
        return self._supported

    def _split(
        self, params: dict[str, Any], litellm: ModuleType
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """``(kwargs, image-part keys, dropped)``. LiteLLM translates its OpenAI-style list; the
        service's native parameters (Anthropic ``top_k``, Gemini ``safety_settings``...) pass
        through as provider kwargs, which LiteLLM forwards into the body."""
        supported = self._supported_params(litellm)
        table = param_table(self.route.service.name)
        kwargs: dict[str, Any] = {}
        image: dict[str, Any] = {}
        dropped: dict[str, str] = {}
        native: dict[str, Any] = {}  # not in LiteLLM's list: the service's own table decides
        for name, value in params.items():
            spec = table.params.get(name) if table is not None else None
            if spec is not None and spec.where == IMAGE:
                image[spec.key or name] = value
            elif name == EXTRA_BODY or name in supported:
                kwargs[name] = value
            elif table is not None:
                native[name] = value
            elif supported:
                dropped[name] = f"LiteLLM lists no {name} for {self.route.model}"
            else:
                kwargs[name] = value
        if table is not None and native:
            kept, why = split(native, table)
            kwargs.update(kept)
            dropped.update(why)
        if dropped:
            log.debug("%s does not take %s; dropped", self.route.model, ", ".join(sorted(dropped)))
        extra = kwargs.pop(EXTRA_BODY, None)
        if isinstance(extra, dict) and self._gateway.extra_body_as_kwargs:
            kwargs.update(extra)
        elif extra is not None:
            kwargs[EXTRA_BODY] = extra
        return kwargs, image, dropped

    def _kwargs(
        self, request: ChatRequest, litellm: ModuleType
    ) -> tuple[dict[str, Any], dict[str, str]]:
        params, image, dropped = self._split(dict(request.params), litellm)
        messages = to_openai_messages(request)
        for part in openai_image_parts(messages):
            part.update(image)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
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
        table = param_table(self.route.service.name)
        fmt = response_format(request, strict=table is not None and table.strict_json_schema)
        if fmt is not None and (request.json_schema is not None or "response_format" not in kwargs):
            kwargs["response_format"] = fmt
        headers = {**self.config.extra_headers, **request.extra_headers}
        if headers:
            kwargs["extra_headers"] = headers
        return kwargs, dropped

    async def warmup(self) -> None:
        """Import LiteLLM (seconds) and its route-specific code now, off the event loop, so the
        first answer does not wait for them: one ``mock_response`` call, nothing sent."""
        litellm = await asyncio.to_thread(load_litellm)
        try:
            await litellm.acompletion(
                model=self.route.model,
                messages=[{"role": "user", "content": "warm-up"}],
                mock_response="ok",
            )
        except Exception as exc:  # a model LiteLLM cannot map fails the first request instead
            log.debug("LiteLLM warm-up of %s: %s", self.route.model, type(exc).__name__)
        await _flush_logging()

    async def aclose(self) -> None:
        await _flush_logging()

    def _map(self, exc: BaseException, request: ChatRequest) -> errors.VlgateError:
        # LiteLLM re-wraps what went wrong (a refused connect becomes InternalServerError 500,
        # a 413 becomes BadRequestError 400, a body that is not JSON a 422 or 500); the original
        # is on the cause chain, so that decides, as it would on the native routes.
        chain = _chain(exc)
        where: dict[str, Any] = {"provider": "litellm", "model": self.route.model}
        if any(isinstance(link, json.JSONDecodeError) for link in chain):
            return malformed_answer("the provider's answer is not JSON", **where)
        if any(_is_transport(link) for link in chain):
            return error_for_transport(
                exc, secrets=(self._api_key,), timeout=request.timeout, **where
            )
        statuses = [getattr(link, "status_code", None) for link in chain]
        inner = next((c for c in reversed(statuses) if isinstance(c, int) and c >= 400), None)
        if inner is not None and statuses[0] != inner:
            return error_for_status(
                inner,
                getattr(exc, "body", None),
                getattr(getattr(exc, "response", None), "headers", None),
                message=getattr(exc, "message", None) or str(exc),
                secrets=(self._api_key,),
                **where,
            )
        return map_openai_error(
            exc,
            provider="litellm",
            model=self.route.model,
            secrets=(self._api_key,),
            timeout=request.timeout,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        litellm = load_litellm()
        kwargs, dropped = self._kwargs(request, litellm)
        failure: errors.VlgateError | None = None
        try:
            resp = await litellm.acompletion(**kwargs)
        except Exception as exc:
            failure = self._map(exc, request)
        if failure is not None:
            # Raised outside the handler: no __context__ holds the SDK error (and its headers).
            raise failure
        choices = getattr(resp, "choices", None)
        text = choices[0].message.content if choices else None
        if not text:
            raise errors.ResponseError(
                "the model returned an empty answer", raw=text, retryable=True
            )
        usage = Usage(requests=1)
        raw_usage = getattr(resp, "usage", None)
        if raw_usage is not None:
            usage.input_tokens = getattr(raw_usage, "prompt_tokens", 0) or 0
            usage.output_tokens = getattr(raw_usage, "completion_tokens", 0) or 0
            details = getattr(raw_usage, "prompt_tokens_details", None)
            server_images = getattr(details, "image_tokens", None)
            if isinstance(server_images, int) and server_images > 0:
                usage.image_tokens = server_images  # Gemini reports its own IMAGE count
        hidden = getattr(resp, "_hidden_params", None) or {}
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if isinstance(cost, int | float):
            usage.cost = float(cost)
        return Completion(
            text=text,
            usage=usage,
            model=getattr(resp, "model", None),
            finish_reason=choices[0].finish_reason if choices else None,
            dropped_params=tuple(sorted(dropped)),
            dropped_reasons=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        litellm = load_litellm()
        kwargs, _ = self._kwargs(request, litellm)
        kwargs["stream"] = True
        failure: errors.VlgateError | None = None
        try:
            stream = await litellm.acompletion(**kwargs)
            async for chunk in stream:
                choices = getattr(chunk, "choices", None)
                if choices and choices[0].delta and choices[0].delta.content:
                    yield choices[0].delta.content
        except Exception as exc:
            failure = self._map(exc, request)
        if failure is not None:
            raise failure  # outside the handler, as in complete()
