"""Google's Gemini API, natively: ``models/{model}:generateContent`` on the shared HTTP client.

``gemini/gemini-...`` comes here; ``litellm/gemini/...`` still goes through LiteLLM, and so does
Vertex-hosted Gemini (``vertex_ai/...``). What is sent (Gemini API reference, ``GenerateContent``):

* header ``x-goog-api-key`` (never ``?key=``, so keys stay out of URLs and tracebacks);
* ``contents`` with ``inlineData`` parts (``mimeType`` sniffed from the bytes) before the text;
  an ``assistant`` turn is role ``model``; a ``system`` turn becomes ``systemInstruction``;
* the caller's (snake_case) parameters placed by the ``gemini`` table in ``registry.PARAMS``:
  ``generationConfig`` (``topP``, ``topK``, ``maxOutputTokens``, ``stopSequences``, ``seed``,
  ``thinkingConfig`` with camelCase keys, ``mediaResolution`` as ``MEDIA_RESOLUTION_*``...),
  top-level ``safetySettings`` and ``cachedContent``; ``extra_body`` merged last;
* native structured output as ``responseMimeType: application/json`` + ``responseJsonSchema``
  (JSON mode: the MIME type alone).

``api_base`` defaults to ``https://generativelanguage.googleapis.com/v1beta``; a bare host gets
``/v1beta`` appended, any other path is used as given (as LiteLLM does). Streaming uses
``:streamGenerateContent?alt=sse``.

Outcomes that are not errors of the wire: a blocked prompt (``promptFeedback.blockReason``) and a
candidate stopped for ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``,
``LANGUAGE`` or an ``IMAGE_*`` reason raise :class:`~vlgate.ContentFilteredError` with that reason
(never retried; the partial text, if any, on ``raw``). A 200 body that is not the JSON promised is
a retried ``ProviderError``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import errors
from ..registry import GENERATION, PARAMS
from ._errors import malformed_answer
from ._http import HttpProvider
from .base import ChatRequest, Completion, Message, Usage, count_of
from .params import place

if TYPE_CHECKING:
    from ..registry import BatchSpec
    from ._batch import BatchApi

__all__ = ["FILTERED_REASONS", "GeminiProvider", "gemini_base"]

FILTERED_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
"""``finishReason`` / ``blockReason`` values raised as :class:`~vlgate.ContentFilteredError`."""

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


def gemini_base(base: str) -> str:
    """The API root models hang off: a bare host gets ``/v1beta``.

    Example:
        >>> gemini_base("http://127.0.0.1:8000"), gemini_base("https://proxy/gemini/")
        ('http://127.0.0.1:8000/v1beta', 'https://proxy/gemini')
    """
    base = base.rstrip("/")
    return base + "/v1beta" if urlsplit(base).path in ("", "/") else base


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): v for k, v in value.items()}
    return value


def _parts(msg: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in msg.parts:
        if isinstance(part, str):
            parts.append({"text": part})
        else:
            parts.append({"inlineData": {"mimeType": part.mime, "data": part.b64}})
    return parts


class GeminiProvider(HttpProvider):
    """Gemini through the Gemini API (API key), or any server speaking generateContent."""

    def endpoint(self, base: str) -> str:
        return f"{gemini_base(base)}/models/{self.route.model}:generateContent"

    def key_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    @functools.cached_property
    def _stream_url(self) -> str:
        return self._url.removesuffix(":generateContent") + ":streamGenerateContent?alt=sse"

    def body(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        """The generateContent body as sent, and the caller parameters dropped (with reasons)."""
        contents: list[dict[str, Any]] = []
        system: list[dict[str, Any]] = []
        for msg in request.messages:
            if msg.role == "system":
                system.extend(_parts(msg))
            else:
                role = "model" if msg.role == "assistant" else "user"
                contents.append({"role": role, "parts": _parts(msg)})
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        dropped = place(body, request.params, PARAMS["gemini"])
        config = body.get(GENERATION)
        if isinstance(config, dict):
            if isinstance(config.get("stopSequences"), str):
                config["stopSequences"] = [config["stopSequences"]]
            if isinstance(config.get("thinkingConfig"), dict):
                config["thinkingConfig"] = _camel_keys(config["thinkingConfig"])
            level = config.get("mediaResolution")
            if isinstance(level, str) and not level.upper().startswith("MEDIA_RESOLUTION_"):
                config["mediaResolution"] = "MEDIA_RESOLUTION_" + level.upper()
        if request.json_schema is not None or request.json_mode:
            config = body.setdefault(GENERATION, {})
            config["responseMimeType"] = "application/json"
            if request.json_schema is not None:
                config["responseJsonSchema"] = request.json_schema["schema"]
        return body, dropped

    def _filtered(self, reason: str, text: str, blocked: bool) -> errors.ContentFilteredError:
        what = "the prompt was blocked" if blocked else "the answer was stopped"
        return errors.ContentFilteredError(
            f"Gemini withheld the answer: {what} ({reason})",
            reason=reason,
            raw=text or None,
            **self._where(),
        )

    def _blocked(self, data: dict[str, Any]) -> errors.ContentFilteredError | None:
        feedback = data.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        return self._filtered(str(reason), "", True) if reason else None

    async def complete(self, request: ChatRequest) -> Completion:
        body, dropped = self.body(request)
        return self.completion_from(await self.post(body, request), dropped, request.model)

    def completion_from(
        self, data: dict[str, Any], dropped: dict[str, str], model: str
    ) -> Completion:
        """The :class:`Completion` in a ``GenerateContentResponse`` (a live answer, or one
        result of a batch); raises the vlgate error a blocked or empty answer is."""
        candidates = data.get("candidates")
        if not candidates:
            blocked = self._blocked(data)
            if blocked is not None:
                raise blocked
            if "candidates" not in data and "usageMetadata" not in data:
                raise malformed_answer("no 'candidates'", **self._where())
            raise errors.ResponseError("the model returned no candidates", retryable=True)
        cand = candidates[0] if isinstance(candidates[0], dict) else {}
        text = _text(cand)
        reason = cand.get("finishReason")
        if reason in FILTERED_REASONS:
            raise self._filtered(str(reason), text, False)
        if not text:
            raise errors.ResponseError("the model returned an empty answer", retryable=True)
        return Completion(
            text=text,
            usage=_usage(data.get("usageMetadata")),
            model=data.get("modelVersion") or model,
            finish_reason=_FINISH.get(str(reason), str(reason).lower() if reason else None),
            dropped_params=tuple(sorted(dropped)),
            dropped_reasons=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        body, _ = self.body(request)
        done = False
        got: list[str] = []
        # Every chunk may carry usageMetadata, cumulative; the last one has the final counts.
        counts: Any = None
        async for _event, data in self._http.sse(
            self._stream_url, body, timeout=request.timeout, headers=request.extra_headers or None
        ):
            chunk = self.stream_chunk(data)
            blocked = self._blocked(chunk)
            if blocked is not None:
                raise blocked
            counts = chunk.get("usageMetadata", counts)
            candidates = chunk.get("candidates") or []
            cand = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
            text = _text(cand)
            reason = cand.get("finishReason")
            if reason in FILTERED_REASONS:
                raise self._filtered(str(reason), "".join(got) + text, False)
            if text:
                got.append(text)
                yield text
            if reason:
                done = True
        if not done:
            raise self._http.cut_short()
        if isinstance(counts, dict):
            yield _usage(counts, requests=0)

    def batch_adapter(self, spec: BatchSpec) -> BatchApi:
        """Gemini batch mode (``providers/_batch_gemini.py``)."""
        from ._batch_gemini import GeminiBatchApi

        return GeminiBatchApi(spec, self)


def _text(candidate: dict[str, Any]) -> str:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )


def _usage(raw: Any, requests: int = 1) -> Usage:
    """Token counts from the answer's usage object; a stream's (``requests=0``) is added to the
    request the attempt loop already counted."""
    usage = Usage(requests=requests)
    if isinstance(raw, dict):
        usage.input_tokens = count_of(raw.get("promptTokenCount"))
        # Thinking tokens are billed as output but counted outside candidatesTokenCount.
        usage.output_tokens = count_of(raw.get("candidatesTokenCount")) + count_of(
            raw.get("thoughtsTokenCount")
        )
        # The server's own image count (per-modality details), preferred over the estimate.
        details = raw.get("promptTokensDetails")
        if isinstance(details, list):
            counts = [
                count_of(d.get("tokenCount"))
                for d in details
                if isinstance(d, dict) and d.get("modality") == "IMAGE"
            ]
            if counts:
                usage.image_tokens = sum(counts)
    return usage
