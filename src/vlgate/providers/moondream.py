"""Moondream's own REST skills: ``/query``, ``/detect`` and ``/point`` (cloud or Moondream Station).

``vlgate.create("moondream/moondream-3", api_key=...)`` talks to ``https://api.moondream.ai/v1``;
``api_base="http://localhost:2020/v1"`` reaches a local Moondream Station. Each call is one JSON
POST with the image as a base64 data URI in ``image_url`` and the key in ``X-Moondream-Auth``
(moondream.ai docs quickstart; m87-labs/moondream-python ``cloud_vl.py``):

* :meth:`~MoondreamProvider.ground` (``detect`` / ``point``) goes to ``/detect`` / ``/point``
  with ``object`` = the target. The answer text is ``{"objects": [...]}`` / ``{"points": [...]}``
  exactly as sent, fractions 0-1 of the full image, which the ``moondream`` grounding
  convention turns into pixels.
* everything else goes to ``/query`` with the request's text as ``question``; Moondream takes
  one image per call.
* sampling parameters travel in ``settings`` (temperature, top_p, max_tokens, max_objects);
  others are dropped and reported in ``answer.dropped_params``.
* ``model``: the default name (``moondream-3``) means "whatever the endpoint serves" and is not
  sent; any other name (``moondream/moondream3-preview``) is sent as the body's optional
  ``model`` field, as moondream-python does.

Streaming (``"stream": true`` on ``/query``): server-sent events ``data: {"chunk": "..."}`` and
a final ``data: {"completed": true}`` — vlgate's reading of moondream-python's
``_stream_response`` (the docs' streaming page shows ``curl -N`` output without naming the
fields). ``{"text": ...}`` deltas are accepted too. A stream that ends without ``completed`` is a
:class:`~vlgate.ConnectionError`, never a silently truncated answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from .. import errors
from ..registry import PARAMS
from ._errors import error_message, malformed_answer
from ._http import HttpProvider
from .base import ChatRequest, Completion, Usage
from .params import place

__all__ = ["MoondreamProvider"]

# Grounding task -> (endpoint, key of the answer list).
_SKILLS: dict[str, tuple[str, str]] = {
    "detect": ("detect", "objects"),
    "point": ("point", "points"),
}
_CAPTION = "caption"
_TEXT_KEYS = frozenset({"caption"})

_AUTH_HEADER = "X-Moondream-Auth"


class MoondreamProvider(HttpProvider):
    """Moondream cloud or Moondream Station through its skill endpoints."""

    def endpoint(self, base: str) -> str:
        """The API root with a slash; each skill is a path below it (``detect``, ``query``)."""
        return base.rstrip("/") + "/"

    def key_headers(self, api_key: str) -> dict[str, str]:
        return {_AUTH_HEADER: api_key}

    def _clean(self, text: str) -> str:
        return errors.redact(text, self._api_key)

    def _body(
        self, request: ChatRequest, task: str | None = None, target: str | None = None
    ) -> tuple[str, str | None, dict[str, Any], dict[str, str]]:
        """(endpoint, answer key or None for /query, JSON body, {dropped parameter: reason}).

        ``task``: None for ``/query``, ``"caption"``, ``"detect"`` or ``"point"``.
        """
        images = request.images
        if len(images) > 1:
            raise errors.ConfigError(
                f"Moondream takes one image per call, got {len(images)}; use query_batch for "
                "one answer per image"
            )
        body: dict[str, Any] = {}
        if images:
            body["image_url"] = images[0].data_uri
        if task == _CAPTION:
            if not images:
                raise errors.ConfigError("caption needs an image")
            endpoint, key = _CAPTION, "caption"
            body["stream"] = False
        elif task is not None:
            if task not in _SKILLS:
                raise errors.ConfigError(f"Moondream has no {task!r} skill")
            if not target or not target.strip():
                raise errors.ConfigError(f"{task} needs a non-empty target")
            if not images:
                raise errors.ConfigError(f"{task} needs an image")
            endpoint, key = _SKILLS[task]
            body["object"] = target
        else:
            endpoint, key = "query", None
            body["question"] = _question(request)
            body["stream"] = False
        params = dict(request.params)
        if endpoint != _CAPTION and "length" in params:
            params.pop("length")
            reasons = {"length": "only Moondream's /caption takes length"}
        else:
            reasons = {}
        reasons.update(place(body, params, PARAMS["moondream"]))
        if self.route.model != self.route.provider.default_model:
            body["model"] = self.route.model
        return endpoint, key, body, reasons

    # --- the Provider interface ---------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._call(request)

    async def caption(self, request: ChatRequest) -> Completion:
        """Moondream's own ``/caption`` (takes ``length``); the prompt is not sent."""
        return await self._call(request, _CAPTION)

    async def ground(
        self, request: ChatRequest, task: Literal["detect", "point"], target: str
    ) -> Completion:
        """Moondream's own ``/detect`` or ``/point`` with ``object=target``."""
        return await self._call(request, task, target)

    async def _call(
        self, request: ChatRequest, task: str | None = None, target: str | None = None
    ) -> Completion:
        endpoint, key, body, dropped = self._body(request, task, target)
        data = await self.post(body, request, self._url + endpoint)
        usage = Usage(requests=1)
        if key is not None and key in _TEXT_KEYS:
            answer = data.get(key)
            if not isinstance(answer, str) or not answer:
                raise errors.ResponseError(
                    "the model returned an empty caption", raw=json.dumps(data), retryable=True
                )
            text = answer
        elif key is not None:
            found = data.get(key)
            if not isinstance(found, list):
                raise errors.ResponseError(
                    f"Moondream's /{endpoint} answer has no {key!r} list", raw=json.dumps(data)
                )
            # The answer keeps Moondream's own shape: the moondream convention parses it.
            text = json.dumps({key: found})
        else:
            answer = data.get("answer")
            if not isinstance(answer, str) or not answer:
                raise errors.ResponseError(
                    "the model returned an empty answer", raw=json.dumps(data), retryable=True
                )
            text = answer
        return Completion(
            text=text,
            usage=usage,
            model=data.get("model") if isinstance(data.get("model"), str) else self.route.model,
            finish_reason="stop",
            dropped_params=tuple(sorted(dropped)),
            dropped_reasons=dropped,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        endpoint, _, body, _ = self._body(request)
        body["stream"] = True
        completed = False
        async for kind, data in self._http.sse(
            self._url + endpoint,
            body,
            timeout=request.timeout,
            headers=request.extra_headers or None,
        ):
            if kind == "application/json":
                # A server that ignores "stream": one JSON answer.
                whole = self._http.parse_event(data)
                answer = (
                    whole.get("answer", whole.get("caption")) if isinstance(whole, dict) else None
                )
                if isinstance(answer, str) and answer:
                    yield answer
                return
            if data == "[DONE]":
                continue
            event = self._http.parse_event(data)
            if not isinstance(event, dict):
                raise malformed_answer("stream event is not a JSON object", **self._where())
            if "error" in event:
                msg, _ = error_message(data)
                raise errors.ProviderError(self._clean(msg), retryable=True, **self._where())
            delta = event.get("chunk", event.get("text"))
            if isinstance(delta, str) and delta:
                yield delta
            if event.get("completed"):
                completed = True
                break
        if not completed:
            raise errors.ConnectionError(
                "the stream ended before the answer was complete (no 'completed' event)",
                **self._where(),
            )


def _question(request: ChatRequest) -> str:
    """The request's text as one question: the first turn's text, later turns labelled by role
    (Moondream's skill API is single-turn; vlgate's JSON repair adds two turns)."""
    parts: list[str] = []
    for i, msg in enumerate(request.messages):
        text = "\n".join(p for p in msg.parts if isinstance(p, str)).strip()
        if not text:
            continue
        parts.append(text if i == 0 else f"{msg.role.capitalize()}: {text}")
    question = "\n\n".join(parts)
    if not question:
        raise errors.ConfigError("Moondream's /query needs a question")
    return question
