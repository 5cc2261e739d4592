"""Per-protocol request parsing and response rendering (OpenAI, Anthropic, Gemini, Ollama,
Moondream).

Parsing turns a request body into a provider-neutral :class:`Parsed`; a protocol mistake raises
:class:`WireError` carrying the status and the provider's wording. Rendering builds the exact
JSON bodies and stream events each provider sends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .imageio import b64decode_strict, parse_data_uri, probe
from .records import Protocol, RecordedImage, Source

__all__ = [
    "Parsed",
    "WireError",
    "chunks_of",
    "error_body",
    "parse_anthropic",
    "parse_gemini",
    "parse_moondream",
    "parse_ollama_native",
    "parse_openai",
]


class WireError(Exception):
    """A request the provider would reject: HTTP ``status`` and the provider's message."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


@dataclass
class Parsed:
    """The provider-neutral view of one chat request."""

    model: str | None
    stream: bool = False
    texts: list[str] = field(default_factory=list)
    images: list[tuple[RecordedImage, str]] = field(default_factory=list)
    """Each image with its location in the request (used in error messages)."""
    schema: dict[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None
    include_usage: bool = False
    details: list[str | None] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)


def _image(
    data: bytes,
    declared: str | None,
    source: Source,
    *,
    url: str | None = None,
    detail: str | None = None,
) -> RecordedImage:
    info = probe(data) if data else None
    return RecordedImage(
        declared_mime=declared,
        actual_mime=info.mime if info else None,
        size=info.size if info else None,
        nbytes=len(data),
        source=source,
        data=data,
        url=url,
        exif_orientation=info.orientation if info else None,
        detail=detail,
    )


def _need(body: Any, key: str, status_msg: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise WireError(400, status_msg)
    return body[key]


# --- OpenAI chat completions (also vLLM, DashScope compatible mode, Ollama /v1) ---------------


def parse_openai(body: Any, *, ollama: bool = False) -> Parsed:
    """Parse a ``POST /v1/chat/completions`` body. ``ollama=True`` applies Ollama's /v1 image
    rules (ollama openai/openai.go ``decodeImageURL``: only jpeg/jpg/png/webp data URIs or
    ``data:;base64,``; http(s) URLs and GIF rejected; a bare-string ``image_url`` is accepted)."""
    if not isinstance(body, dict):
        raise WireError(400, "We could not parse the JSON body of your request.")
    model = body.get("model")
    if not model:
        raise WireError(400, "you must provide a model parameter", param="model")
    messages = _need(body, "messages", "Missing required parameter: 'messages'.")
    if not isinstance(messages, list) or not messages:
        raise WireError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
        )
    p = Parsed(model=str(model), stream=bool(body.get("stream", False)))
    so = body.get("stream_options")
    p.include_usage = bool(isinstance(so, dict) and so.get("include_usage"))
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    p.max_tokens = int(mt) if isinstance(mt, int) else None
    rf = body.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_object":
            p.json_mode = True
        elif rf.get("type") == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or "name" not in js:
                raise WireError(
                    400,
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    param="response_format.json_schema.name",
                )
            schema = js.get("schema")
            p.schema = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
    elif ollama and isinstance(body.get("format"), dict):
        p.schema = body["format"]
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg:
            raise WireError(
                400,
                f"Missing required parameter: 'messages[{i}].role'.",
                param=f"messages[{i}].role",
            )
        content = msg.get("content")
        if isinstance(content, str):
            p.texts.append(content)
            continue
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            typ = part.get("type")
            if typ == "text":
                p.texts.append(str(part.get("text", "")))
            elif typ == "image_url":
                where = f"messages[{i}].content[{j}].image_url"
                iu = part.get("image_url")
                if isinstance(iu, str) and not ollama:
                    raise WireError(
                        400,
                        f"Invalid type for '{where}': expected an object, but got a string "
                        "instead.",
                        param=where,
                        code="invalid_type",
                    )
                url = (
                    iu
                    if isinstance(iu, str)
                    else (iu or {}).get("url")
                    if isinstance(iu, dict)
                    else None
                )
                detail = iu.get("detail") if isinstance(iu, dict) else None
                if not isinstance(url, str):
                    raise WireError(
                        400, f"Missing required parameter: '{where}.url'.", param=f"{where}.url"
                    )
                p.images.append((_openai_image(url, detail, ollama, where), where))
                p.details.append(detail)
    return p


_OLLAMA_PREFIXES = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
    "data:;base64,",
)


def _openai_image(url: str, detail: str | None, ollama: bool, where: str) -> RecordedImage:
    if ollama:
        if url.startswith(("http://", "https://")):
            raise WireError(
                400,
                "image URLs are not currently supported, please use base64 encoded data instead",
            )
        prefix = next((pre for pre in _OLLAMA_PREFIXES if url.startswith(pre)), None)
        if prefix is None:
            raise WireError(400, "invalid image input")
        try:
            data = b64decode_strict(url[len(prefix) :])
        except ValueError:
            raise WireError(400, "invalid image input") from None
        declared = prefix[5:].split(";")[0] or None
        return _image(data, declared, "data-uri", detail=detail)
    if url.startswith(("http://", "https://")):
        # The emulator does not download: it records the URL (real OpenAI would fetch it).
        return RecordedImage(None, None, None, 0, "url", b"", url=url, detail=detail)
    parts = parse_data_uri(url)
    if parts is None or not parts[1]:
        raise WireError(
            400,
            "Invalid image URL: expected a data URL with base64 data or an http(s) URL.",
            param=f"{where}.url",
            code="invalid_image_url",
        )
    try:
        data = b64decode_strict(parts[2])
    except ValueError:
        raise WireError(
            400, "Invalid base64 image_url.", param=f"{where}.url", code="invalid_image_url"
        ) from None
    return _image(data, parts[0], "data-uri", detail=detail)


# --- Anthropic messages -------------------------------------------------------------------------


def parse_anthropic(body: Any) -> Parsed:
    """Parse a ``POST /v1/messages`` body (max_tokens required; image blocks with base64 or url
    sources; ``system`` as a string or text blocks)."""
    if not isinstance(body, dict):
        raise WireError(400, "Request body must be a JSON object")
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            raise WireError(400, f"{key}: Field required")
    mt = body["max_tokens"]
    if not isinstance(mt, int) or mt < 1:
        raise WireError(
            400, "max_tokens: Input should be a valid integer greater than or equal to 1"
        )
    p = Parsed(model=str(body["model"]), stream=bool(body.get("stream", False)), max_tokens=mt)
    _anthropic_options(body, p)
    system = body.get("system")
    if isinstance(system, str):
        p.texts.append(system)
    elif isinstance(system, list):
        p.texts.extend(str(b.get("text", "")) for b in system if isinstance(b, dict))
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "messages: at least one message is required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise WireError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if isinstance(content, str):
            p.texts.append(content)
            continue
        if not isinstance(content, list):
            raise WireError(400, f"messages.{i}.content: Input should be a valid list")
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            typ = block.get("type")
            where = f"messages.{i}.content.{j}.image.source"
            if typ == "text":
                p.texts.append(str(block.get("text", "")))
            elif typ == "image":
                src = block.get("source") or {}
                st = src.get("type")
                if st == "base64":
                    where += ".base64"
                    if "media_type" not in src or "data" not in src:
                        raise WireError(400, f"{where}.media_type: Field required")
                    try:
                        data = b64decode_strict(str(src["data"]))
                    except ValueError:
                        raise WireError(400, f"{where}.data: Invalid base64 data") from None
                    p.images.append((_image(data, str(src["media_type"]), "base64"), where))
                elif st == "url":
                    url = str(src.get("url", ""))
                    p.images.append(
                        (RecordedImage(None, None, None, 0, "url", b"", url=url), where)
                    )
                else:
                    raise WireError(
                        400,
                        f"{where}: Input tag '{st}' found using 'type' does not match any of the "
                        "expected tags: 'base64', 'url', 'file'",
                    )
                p.details.append(None)
    return p


def _anthropic_options(body: dict[str, Any], p: Parsed) -> None:
    """Validate the optional fields vlgate sends as the Messages API types them, and read the
    structured-output schema (GA ``output_config.format``; the beta top-level ``output_format``)."""
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(x, str) for x in stops)
    ):
        raise WireError(400, "stop_sequences: Input should be a valid list of strings")
    for key in ("top_k",):
        if key in body and (not isinstance(body[key], int) or body[key] < 0):
            raise WireError(400, f"{key}: Input should be a non-negative integer")
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise WireError(400, f"{key}: Input should be a number between 0 and 1")
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled", "adaptive"):
            raise WireError(
                400, "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'"
            )
        budget = thinking.get("budget_tokens")
        if kind == "enabled" and not (
            isinstance(budget, int) and 1024 <= budget < int(body["max_tokens"])
        ):
            raise WireError(400, "thinking.budget_tokens: must be >= 1024 and less than max_tokens")
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if config is not None and not isinstance(config, dict):
        raise WireError(400, "output_config: Input should be a valid dictionary")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise WireError(400, "output_config.format.type: Input should be 'json_schema'")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise WireError(400, "output_config.format.schema: Field required")
        p.schema = schema


# --- Gemini generateContent ---------------------------------------------------------------------


def parse_gemini(body: Any, model: str, stream: bool) -> Parsed:
    """Parse a ``generateContent`` body (snake_case and camelCase field names both accepted, as
    the real API's JSON mapping does)."""
    if not isinstance(body, dict):
        raise WireError(400, "Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise WireError(400, "* GenerateContentRequest.contents: contents is not specified\n")
    p = Parsed(model=model, stream=stream)
    gc = body.get("generationConfig") or body.get("generation_config") or {}
    if isinstance(gc, dict):
        mt = gc.get("maxOutputTokens", gc.get("max_output_tokens"))
        p.max_tokens = int(mt) if isinstance(mt, int) else None
        schema = None
        for key in (
            "responseJsonSchema",
            "response_json_schema",
            "responseSchema",
            "response_schema",
        ):
            if isinstance(gc.get(key), dict):
                schema = _lower_types(gc[key])
                break
        mime = gc.get("responseMimeType", gc.get("response_mime_type"))
        if schema is not None:
            if mime != "application/json":
                raise WireError(
                    400,
                    "* GenerationConfig.response_mime_type: response_mime_type must be "
                    "application/json when response_schema is set.\n",
                )
            p.schema = schema
        elif mime == "application/json":
            p.json_mode = True
    si = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(si, dict):
        p.texts.extend(
            str(part.get("text", "")) for part in si.get("parts", []) if isinstance(part, dict)
        )
    for i, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise WireError(
                400,
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be "
                "empty.\n",
            )
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                continue
            if "text" in part:
                p.texts.append(str(part["text"]))
            inline = part.get("inline_data") or part.get("inlineData")
            if isinstance(inline, dict):
                where = f"contents[{i}].parts[{j}].inline_data"
                mime = inline.get("mime_type") or inline.get("mimeType")
                try:
                    data = b64decode_strict(str(inline.get("data", "")))
                except ValueError:
                    raise WireError(
                        400, f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed"
                    ) from None
                p.images.append((_image(data, str(mime) if mime else None, "base64"), where))
                p.details.append(None)
            fd = part.get("file_data") or part.get("fileData")
            if isinstance(fd, dict):
                where = f"contents[{i}].parts[{j}].file_data"
                uri = str(fd.get("file_uri") or fd.get("fileUri") or "")
                mime = fd.get("mime_type") or fd.get("mimeType")
                img = RecordedImage(str(mime) if mime else None, None, None, 0, "url", b"", url=uri)
                p.images.append((img, where))
                p.details.append(None)
    return p


def _lower_types(schema: Any) -> Any:
    # Gemini's OpenAPI-style schemas spell types in capitals ("OBJECT"); normalise for filling.
    if isinstance(schema, dict):
        out = {k: _lower_types(v) for k, v in schema.items()}
        if isinstance(out.get("type"), str):
            out["type"] = out["type"].lower()
        return out
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


# --- Ollama native /api/chat ---------------------------------------------------------------------


def parse_ollama_native(body: Any, *, generate: bool = False) -> Parsed:
    """Parse ``POST /api/chat`` (or ``/api/generate``): images are raw base64 strings (no
    ``data:`` prefix; ollama docs/api.md), streaming is on unless ``"stream": false``."""
    if not isinstance(body, dict):
        raise WireError(400, "invalid request body")
    if not body.get("model"):
        raise WireError(400, "model is required")
    p = Parsed(model=str(body["model"]), stream=body.get("stream", True) is not False)
    fmt = body.get("format")
    if fmt == "json":
        p.json_mode = True
    elif isinstance(fmt, dict):
        p.schema = fmt
    opts = body.get("options") or {}
    if (
        isinstance(opts, dict)
        and isinstance(opts.get("num_predict"), int)
        and opts["num_predict"] > 0
    ):
        p.max_tokens = opts["num_predict"]
    carriers: list[tuple[dict[str, Any], str]] = []
    if generate:
        carriers.append((body, ""))
        if isinstance(body.get("system"), str):
            p.texts.append(body["system"])
    else:
        msgs = body.get("messages") or []
        if not isinstance(msgs, list):
            raise WireError(400, "messages must be an array")
        carriers.extend((m, f"messages[{i}]") for i, m in enumerate(msgs) if isinstance(m, dict))
    for msg, where in carriers:
        text = msg.get("prompt" if generate else "content")
        if isinstance(text, str):
            p.texts.append(text)
        for k, b64 in enumerate(msg.get("images") or []):
            try:
                data = b64decode_strict(str(b64))
            except ValueError as exc:
                raise WireError(400, str(exc)) from None
            p.images.append((_image(data, None, "base64"), f"{where}.images[{k}]"))
            p.details.append(None)
    return p


# --- Moondream skills (/v1/caption, /query, /detect, /point) -------------------------------------

MOONDREAM_MODEL = "moondream"
"""The model name Moondream requests are recorded, scripted and rate-limited under when the body
names none (the ``model`` field is optional in the skill APIs)."""

MOONDREAM_SKILLS = ("caption", "query", "detect", "point")

# Moondream's sampling ``settings`` (moondream-python types.py SamplingSettings).
_MOONDREAM_SETTINGS = frozenset({"temperature", "top_p", "max_tokens", "max_objects"})


def parse_moondream(body: Any, skill: str) -> Parsed:
    """Parse a Moondream skill body: ``image_url`` (a base64 data URI) plus ``question``
    (query), ``object`` (detect/point) or ``length`` (caption); optional ``stream`` (query and
    caption only), ``settings`` and ``model``.

    The text the emulated model sees is the question for ``/query``, ``"describe the image"``
    for ``/caption`` and ``"/detect <object>"`` / ``"/point <object>"`` for the grounding skills
    (the answer rules know those words).
    """
    if not isinstance(body, dict):
        raise WireError(400, "request body must be a JSON object")
    model = body.get("model")
    p = Parsed(model=str(model) if model else MOONDREAM_MODEL)
    if skill in ("query", "caption"):
        p.stream = body.get("stream", False) is True
    if skill == "query":
        question = body.get("question")
        if not isinstance(question, str) or not question.strip():
            raise WireError(422, "question: field required (a non-empty string)")
        p.texts.append(question)
    elif skill == "caption":
        length = body.get("length", "normal")
        if length not in ("short", "normal", "long"):
            raise WireError(422, "length: must be one of 'short', 'normal', 'long'")
        p.texts.append("describe the image")
    else:
        target = body.get("object")
        if not isinstance(target, str) or not target.strip():
            raise WireError(422, "object: field required (a non-empty string)")
        p.texts.append(f"/{skill} {target}")
    settings = body.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            raise WireError(422, "settings: must be an object")
        unknown = sorted(set(settings) - _MOONDREAM_SETTINGS)
        if unknown:
            raise WireError(422, f"settings: unknown field(s) {', '.join(unknown)}")
        mt = settings.get("max_tokens")
        if skill in ("query", "caption") and isinstance(mt, int) and mt > 0:
            p.max_tokens = mt
    url = body.get("image_url")
    if url is None:
        if skill != "query":
            raise WireError(422, "image_url: field required")
        return p
    if not isinstance(url, str):
        raise WireError(422, "image_url: must be a string")
    parts = parse_data_uri(url)
    if parts is None or not parts[1]:
        raise WireError(400, "image_url must be a base64 data URI (data:image/jpeg;base64,...)")
    try:
        data = b64decode_strict(parts[2])
    except ValueError:
        raise WireError(400, "image_url: invalid base64 data") from None
    p.images.append((_image(data, parts[0], "data-uri"), "image_url"))
    p.details.append(None)
    return p


# --- rendering -----------------------------------------------------------------------------------


def error_body(
    protocol: Protocol,
    status: int,
    message: str,
    *,
    native_ollama: bool = False,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The provider's JSON error body for ``status``.

    Example:
        >>> error_body("anthropic", 529, "Overloaded")["error"]["type"]
        'overloaded_error'
    """
    if protocol == "anthropic":
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        return {
            "type": "error",
            "error": {"type": kinds.get(status, "api_error"), "message": message},
            "request_id": "req_emu" + uuid.uuid4().hex[:20],
        }
    if protocol == "gemini":
        names = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
            504: "DEADLINE_EXCEEDED",
        }
        return {
            "error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}
        }
    if protocol == "ollama" and native_ollama:
        return {"error": message}
    if protocol == "moondream":
        # Not documented by Moondream; a flat ``{"error": ...}`` is vlgate's assumption.
        return {"error": message, "status": status}
    types = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "invalid_request_error",
        404: "invalid_request_error",
        429: "requests",
        503: "server_error",
    }
    codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
    return {
        "error": {
            "message": message,
            "type": types.get(status, "server_error"),
            "param": param,
            "code": code if code is not None else codes.get(status),
        }
    }


def chunks_of(text: str, size: int = 12) -> Iterator[str]:
    """Split ``text`` into stream deltas of about ``size`` characters, at spaces when possible."""
    i = 0
    while i < len(text):
        j = min(len(text), i + size)
        if j < len(text):
            sp = text.rfind(" ", i + 1, j + 1)
            if sp > i:
                j = sp + 1
        yield text[i:j]
        i = j


def now_s() -> int:
    return int(time.time())


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
