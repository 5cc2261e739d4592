"""Anthropic's Messages API, natively: ``POST {base}/v1/messages`` on the shared HTTP client.

``anthropic/claude-...`` comes here; ``litellm/anthropic/...`` still goes through LiteLLM (and
Anthropic on Bedrock or Vertex stays there too). What is sent (Anthropic API reference,
``messages.create`` parameters):

* headers ``x-api-key`` and ``anthropic-version: 2023-06-01``; no beta header is needed for images
  or structured output;
* ``messages`` with ``image`` blocks (``base64`` source, ``media_type`` sniffed from the bytes)
  before the text; a ``system`` role becomes the top-level ``system``;
* the caller's parameters placed by the ``anthropic`` table in ``registry.PARAMS`` (``stop`` as
  ``stop_sequences``, ``top_k``, ``thinking``, ``metadata``, ``service_tier``, ``output_config``;
  ``extra_body`` merged last); ``max_tokens`` always (Anthropic requires it; default
  :data:`DEFAULT_MAX_TOKENS`, raised above a ``thinking`` budget);
* native structured output as ``output_config.format = {"type": "json_schema", "schema": ...}``
  with the schema made acceptable first (``additionalProperties: false`` on every object,
  ``oneOf`` as ``anyOf``, unsupported constraints moved into ``description``).

``api_base`` may end with ``/v1`` or not (``https://api.anthropic.com`` and
``https://api.anthropic.com/v1`` both work). Errors: 529 ``overloaded_error`` and 5xx are retried
``ProviderError``s, 413 ``request_too_large`` is a ``ProviderError`` with status 413, an ``error``
event inside a 200 stream is mapped by its ``error.type``, and a ``refusal`` stop reason is a
:class:`~vlgate.ContentFilteredError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .. import errors
from ..registry import PARAMS
from ._errors import error_for_status, malformed_answer
from ._http import HttpProvider
from .base import ChatRequest, Completion, Message, Usage, count_of
from .params import place

if TYPE_CHECKING:
    from ..registry import BatchSpec
    from ._batch import BatchApi

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicProvider", "anthropic_schema", "messages_url"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` when the caller gives none (Anthropic requires the field)."""

# stop_reason -> the OpenAI-style finish reason every vlgate answer reports.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# error.type of an in-stream ``error`` event -> the HTTP status it would have had.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# JSON-schema keywords the structured-output endpoint rejects; moved into ``description``.
_UNSUPPORTED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "if",
    "then",
    "else",
    "not",
)
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


def anthropic_schema(schema: Any) -> Any:
    """A JSON schema as Anthropic's structured output takes it.

    Example:
        >>> anthropic_schema({"type": "object", "properties": {"n": {"type": "integer",
        ...                   "minimum": 0}}})["properties"]["n"]
        {'type': 'integer', 'description': 'minimum: 0'}
    """
    if isinstance(schema, list):
        return [anthropic_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in schema.items():
        if key in _UNSUPPORTED or (key == "minItems" and value not in (0, 1)):
            notes.append(f"{key}: {value}")
        elif key == "format" and value not in _FORMATS:
            notes.append(f"format: {value}")
        elif key == "oneOf":
            out["anyOf"] = anthropic_schema(value)
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: anthropic_schema(v) for k, v in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = False
        else:
            out[key] = anthropic_schema(value)
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    if notes:
        desc = out.get("description")
        out["description"] = "; ".join(([desc] if desc else []) + notes)
    return out


def messages_url(base: str) -> str:
    """``/v1/messages`` under ``base``, whether or not ``base`` already ends with ``/v1``.

    Example:
        >>> messages_url("https://api.anthropic.com"), messages_url("http://proxy/v1/")
        ('https://api.anthropic.com/v1/messages', 'http://proxy/v1/messages')
    """
    base = base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return base + "/messages"
    return base + "/v1/messages"


def _content(msg: Message) -> list[dict[str, Any]] | str:
    if len(msg.parts) == 1 and isinstance(msg.parts[0], str):
        return msg.parts[0]
    blocks: list[dict[str, Any]] = []
    for part in msg.parts:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        else:
            blocks.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": part.mime, "data": part.b64},
                }
            )
    return blocks


class AnthropicProvider(HttpProvider):
    """Claude through Anthropic's Messages API (or any server speaking it)."""

    fixed_headers: ClassVar[Mapping[str, str]] = {"anthropic-version": API_VERSION}

    def endpoint(self, base: str) -> str:
        return messages_url(base)

    def key_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def body(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        """The Messages API body as sent, and the caller parameters dropped (with reasons)."""
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        for msg in request.messages:
            if msg.role == "system":
                system.extend(p for p in msg.parts if isinstance(p, str))
            else:
                messages.append({"role": msg.role, "content": _content(msg)})
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if system:
            body["system"] = "\n\n".join(system)
        dropped = place(body, request.params, PARAMS["anthropic"])
        stops = body.get("stop_sequences")
        if isinstance(stops, str):
            body["stop_sequences"] = [stops]
        if request.json_schema is not None:
            output = body.setdefault("output_config", {})
            output["format"] = {
                "type": "json_schema",
                "schema": anthropic_schema(request.json_schema["schema"]),
            }
        if "max_tokens" not in body:
            body["max_tokens"] = DEFAULT_MAX_TOKENS
            thinking = body.get("thinking")
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if isinstance(budget, int) and budget >= DEFAULT_MAX_TOKENS:
                body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
        return body, dropped

    def _filtered(self, text: str) -> errors.ContentFilteredError:
        return errors.ContentFilteredError(
            "Claude declined to answer (stop_reason 'refusal')",
            reason="refusal",
            raw=text or None,
            provider=self.route.provider.name,
            model=self.route.model,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        body, dropped = self.body(request)
        return self.completion_from(await self.post(body, request), dropped)

    def completion_from(self, data: dict[str, Any], dropped: dict[str, str]) -> Completion:
        """The :class:`Completion` in a Messages API answer (a live one, or one result of a
        message batch); raises the vlgate error a refusal or an empty answer is."""
        content = data.get("content")
        if not isinstance(content, list):
            raise malformed_answer(
                "no 'content' list", provider=self.route.provider.name, model=self.route.model
            )
        text = "".join(
            b["text"]
            for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
        stop = data.get("stop_reason")
        if stop == "refusal":
            raise self._filtered(text)
        if not text:
            raise errors.ResponseError("the model returned an empty answer", retryable=True)
        return Completion(
            text=text,
            usage=_usage(data.get("usage")),
            model=data.get("model"),
            finish_reason=_FINISH.get(str(stop), stop),
            dropped_params=tuple(sorted(dropped)),
            dropped_reasons=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        body, _ = self.body(request)
        body["stream"] = True
        done = False
        got = False
        # message_start carries the input counts; each message_delta the cumulative counts so
        # far (the output tokens, and on newer API versions the input ones again).
        counts: dict[str, Any] = {}
        async for event, data in self._http.sse(
            self._url, body, timeout=request.timeout, headers=request.extra_headers or None
        ):
            kind = event or ""
            if kind == "ping":
                continue
            payload = self._http.parse_event(data)
            kind = kind or str(payload.get("type", ""))
            if kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    got = True
                    yield delta["text"]
            elif kind == "message_start":
                _count(counts, (payload.get("message") or {}).get("usage"))
            elif kind == "message_delta":
                if (payload.get("delta") or {}).get("stop_reason") == "refusal" and not got:
                    raise self._filtered("")
                _count(counts, payload.get("usage"))
            elif kind == "message_stop":
                done = True
            elif kind == "error":
                err = payload.get("error") or {}
                status = _ERROR_STATUS.get(str(err.get("type")), 500)
                raise error_for_status(
                    status,
                    data,
                    provider=self.route.provider.name,
                    model=self.route.model,
                    secrets=(self._api_key,),
                )
        if not done:
            raise self._http.cut_short()
        if counts:
            yield _usage(counts, requests=0)

    def batch_adapter(self, spec: BatchSpec) -> BatchApi:
        """Message Batches (``providers/_batch_anthropic.py``)."""
        from ._batch_anthropic import AnthropicBatchApi

        return AnthropicBatchApi(spec, self)


def _count(counts: dict[str, Any], usage: Any) -> None:
    # Later counts replace earlier ones (they are cumulative); a gateway may send 0 or null
    # input tokens on message_start and the real count on message_delta.
    if isinstance(usage, dict):
        counts.update((k, v) for k, v in usage.items() if v is not None)


def _usage(raw: Any, requests: int = 1) -> Usage:
    """Token counts from the answer's usage object; a stream's (``requests=0``) is added to the
    request the attempt loop already counted."""
    usage = Usage(requests=requests)
    if isinstance(raw, dict):
        usage.input_tokens = sum(
            count_of(raw.get(k))
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        usage.output_tokens = count_of(raw.get("output_tokens"))
    return usage
