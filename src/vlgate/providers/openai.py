"""OpenAI-compatible chat completions via the openai SDK: OpenAI, Qwen (DashScope), Ollama, vLLM.

The SDK's own retries are off (``max_retries=0``): vlgate's runtime is the one retry layer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .. import errors
from ..registry import PARAMS, param_table
from ..runtime.loop import PerLoop
from ._errors import map_openai_error
from .base import (
    ChatRequest,
    Completion,
    Provider,
    Usage,
    response_format,
    to_openai_messages,
)
from .params import openai_image_parts, place

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..registry import Route

__all__ = ["OpenAICompatProvider"]

# A placeholder the SDK needs for keyless local servers; such servers ignore it.
_NO_KEY = "EMPTY"


async def _close_client(client: openai.AsyncOpenAI) -> None:
    await client.close()


class OpenAICompatProvider(Provider):
    """Any server speaking OpenAI chat completions (OpenAI, DashScope, Ollama ``/v1``, vLLM)."""

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        super().__init__(route, config, api_key, api_base)
        self._params = param_table(route.service.name) or PARAMS["vllm"]
        self._clients = PerLoop(self._new_client, close=_close_client)

    def _client(self) -> openai.AsyncOpenAI:
        return self._clients.get()

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key or _NO_KEY,
            base_url=self.api_base,
            max_retries=0,
            timeout=self.config.timeout,
            default_headers=self.config.extra_headers or None,
            # httpx's own async pool queues badly past a few dozen concurrent requests; the
            # aiohttp transport keeps a 64-image batch ~3x faster (benchmarks/vs_litellm.py).
            http_client=openai.DefaultAioHttpClient(timeout=self.config.timeout),
        )

    def _body(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body as sent: each parameter where the server's table puts it."""
        messages = to_openai_messages(request)
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        dropped = place(
            body, request.params, self._params, image_parts=openai_image_parts(messages)
        )
        fmt = response_format(request)
        if fmt is not None and (request.json_schema is not None or "response_format" not in body):
            body["response_format"] = fmt
        return body, dropped

    def _options(self, request: ChatRequest) -> Any:
        options: dict[str, Any] = {"timeout": request.timeout}
        if request.extra_headers:
            options["headers"] = request.extra_headers
        return options

    async def _post(self, request: ChatRequest, body: dict[str, Any], stream: bool) -> Any:
        # ``client.post`` sends the body as built: ``chat.completions.create`` would first walk
        # every message (base64 images included) through the SDK's TypedDict transform, which
        # costs more than the rest of vlgate's client path.
        client = self._client()
        if stream:
            return await client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                options=self._options(request),
                stream=True,
                stream_cls=AsyncStream[ChatCompletionChunk],
            )
        # The raw response: vlgate reads four fields, building the SDK's pydantic model costs more.
        return await client.post(
            "/chat/completions", body=body, cast_to=httpx.Response, options=self._options(request)
        )

    def _map(self, exc: BaseException, request: ChatRequest) -> errors.VlgateError:
        # Also maps transport errors the SDK lets escape while reading a body: a connection cut
        # half-way must not pass for a complete (truncated) answer.
        return map_openai_error(
            exc,
            provider=self.route.provider.name,
            model=self.route.model,
            secrets=(self._api_key,),
            timeout=request.timeout,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        body, dropped = self._body(request)
        try:
            raw = await self._post(request, body, stream=False)
            data = json.loads(await raw.aread())
        except (openai.OpenAIError, ValueError, httpx.HTTPError) as exc:
            raise self._map(exc, request) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise errors.ResponseError("the provider returned no choices", retryable=True)
        choice = choices[0]
        text = (choice.get("message") or {}).get("content")
        if not text or not isinstance(text, str):
            raise errors.ResponseError("the model returned an empty answer", retryable=True)
        usage = Usage(requests=1)
        raw_usage = data.get("usage") or {}
        usage.input_tokens = int(raw_usage.get("prompt_tokens") or 0)
        usage.output_tokens = int(raw_usage.get("completion_tokens") or 0)
        details = raw_usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("image_tokens"), int):
            usage.image_tokens = details["image_tokens"]  # the server's own count, when given
        return Completion(
            text=text,
            usage=usage,
            model=data.get("model"),
            finish_reason=choice.get("finish_reason"),
            dropped_params=tuple(sorted(dropped)),
            dropped_reasons=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        body, _ = self._body(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        try:
            stream = await self._post(request, body, stream=True)
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except (openai.OpenAIError, ValueError, httpx.HTTPError) as exc:
            raise self._map(exc, request) from None

    async def aclose(self) -> None:
        client = self._clients.pop()
        if client is not None:
            await client.close()
