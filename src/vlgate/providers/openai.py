"""OpenAI-compatible chat completions straight on the shared HTTP client: OpenAI, Qwen (DashScope),
Ollama ``/v1``, vLLM.

No SDK object model per request: the body is built as a plain dict (each parameter placed where
the server's table in ``registry.PARAMS`` says), serialised once, POSTed to
``{api_base}/chat/completions`` on the pooled aiohttp session of the current event loop, and the
answer parsed once (``benchmarks/overhead.py`` measures this against a raw aiohttp POST). The
openai SDK is not imported. vlgate's runtime is the one retry layer.

Streaming: ``"stream": true`` with ``stream_options.include_usage``; ``data:`` events end with
``data: [DONE]``; a stream that ends without it is a :class:`~vlgate.ConnectionError`, never a
silently truncated answer. A ``content_filter`` finish with no text is a
:class:`~vlgate.ContentFilteredError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .. import errors
from ..registry import PARAMS, param_table
from ._errors import malformed_answer
from ._http import HttpProvider
from .base import ChatRequest, Completion, Usage, count_of, response_format, to_openai_messages
from .params import openai_image_parts, place

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..registry import BatchSpec, Route
    from ._batch import BatchApi

__all__ = ["OpenAICompatProvider"]


class OpenAICompatProvider(HttpProvider):
    """Any server speaking OpenAI chat completions (OpenAI, DashScope, Ollama ``/v1``, vLLM)."""

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        super().__init__(route, config, api_key, api_base)
        self._params = param_table(route.provider.params or route.service.name) or PARAMS["vllm"]

    def endpoint(self, base: str) -> str:
        return base.rstrip("/") + "/chat/completions"

    @property
    def root(self) -> str:
        """The API root (``.../v1``): chat completions, files and batches live under it."""
        return self._url.removesuffix("/chat/completions")

    def body(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body as sent: each parameter where the server's table puts it."""
        messages = to_openai_messages(request)
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        dropped = place(
            body, request.params, self._params, image_parts=openai_image_parts(messages)
        )
        fmt = response_format(request, strict=self._params.strict_json_schema)
        if fmt is not None and (request.json_schema is not None or "response_format" not in body):
            body["response_format"] = fmt
        return body, dropped

    def batch_adapter(self, spec: BatchSpec) -> BatchApi:
        """OpenAI's Batch API: ``/files`` + ``/batches`` next to ``/chat/completions``."""
        from ._batch_openai import OpenAIBatchApi

        return OpenAIBatchApi(spec, self)

    async def complete(self, request: ChatRequest) -> Completion:
        body, dropped = self.body(request)
        return self.completion_from(await self.post(body, request), dropped)

    def completion_from(self, data: dict[str, Any], dropped: dict[str, str]) -> Completion:
        """The answer in a chat-completions response body (a live answer or a batch line's)."""
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise malformed_answer("no 'choices' list", **self._where())
        if not choices or not isinstance(choices[0], dict):
            raise errors.ResponseError("the provider returned no choices", retryable=True)
        choice = choices[0]
        text = (choice.get("message") or {}).get("content")
        finish = choice.get("finish_reason")
        if not text or not isinstance(text, str):
            if finish == "content_filter":
                raise errors.ContentFilteredError(
                    "the provider withheld the answer (finish_reason 'content_filter')",
                    reason="content_filter",
                    **self._where(),
                )
            raise errors.ResponseError("the model returned an empty answer", retryable=True)
        return Completion(
            text=text,
            usage=_usage(data.get("usage"), requests=1),
            model=data.get("model"),
            finish_reason=finish,
            dropped_params=tuple(sorted(dropped)),
            dropped_reasons=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        body, _ = self.body(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        done = False
        async for _event, data in self._http.sse(
            self._url, body, timeout=request.timeout, headers=request.extra_headers or None
        ):
            if data == "[DONE]":
                done = True
                break
            chunk = self.stream_chunk(data)
            choices = chunk.get("choices")
            if choices and isinstance(choices[0], dict):
                content = (choices[0].get("delta") or {}).get("content")
                if content:
                    yield content
            if isinstance(chunk.get("usage"), dict):  # the last chunk, with include_usage
                yield _usage(chunk["usage"])
        if not done:
            raise self._http.cut_short()


def _usage(raw: Any, requests: int = 0) -> Usage:
    """Token counts from an OpenAI ``usage`` object (absent counts are 0)."""
    raw = raw if isinstance(raw, dict) else {}
    usage = Usage(requests=requests)
    usage.input_tokens = count_of(raw.get("prompt_tokens"))
    usage.output_tokens = count_of(raw.get("completion_tokens"))
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("image_tokens"), int):
        usage.image_tokens = count_of(details["image_tokens"])  # the server's own count, when given
    return usage
