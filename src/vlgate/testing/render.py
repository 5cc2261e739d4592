"""How the emulator's answer is rendered on each protocol's wire: the response bodies of OpenAI
chat completions, Anthropic messages, Gemini generateContent, Ollama native and Moondream skills,
their withheld (blocked / refused) forms, and their streams (SSE, NDJSON, Gemini's JSON array).

The request path (:mod:`vlgate.testing.handlers`) decides *what* to answer; this module only
decides how it looks. Example::

    body = render("openai", parsed, "A red circle.", "stop", (120, 5))
    body["choices"][0]["message"]["content"]   # "A red circle."
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .families import family_for, image_tokens
from .wire import Parsed, chunks_of, dumps, now_s

__all__ = ["parsed_image_tokens", "render", "stream_events", "withheld"]


def render(
    variant: str, p: Parsed, content: str | None, finish: str, usage: tuple[int, int]
) -> dict[str, Any]:
    pt, ct = usage
    model = p.model or ""
    if variant in ("openai", "ollama-v1"):
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": now_s(),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": _openai_usage(pt, ct),
            "system_fingerprint": "fp_emulator",
            "service_tier": "default",
        }
    if variant == "anthropic":
        blocks = [] if content is None else [{"type": "text", "text": content}]
        return {
            "id": "msg_emu" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": "max_tokens" if finish == "length" else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": pt,
                "output_tokens": ct,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
    if variant == "gemini":
        return _gemini_chunk(p, content, "MAX_TOKENS" if finish == "length" else "STOP", usage)
    if variant.startswith("moondream-"):
        return _moondream_body(variant.removeprefix("moondream-"), content)
    msg = {"role": "assistant", "content": content or ""}
    base: dict[str, Any] = {"model": model, "created_at": _iso_now()}
    if variant == "ollama-generate":
        base["response"] = content or ""
    else:
        base["message"] = msg
    base.update(_ollama_done(finish, usage))
    return base


def withheld(variant: str, p: Parsed, kind: str, usage: tuple[int, int]) -> list[Any]:
    """A withheld answer: ``[plain body]``, or the SSE events when ``p.stream``."""
    pt, _ = usage
    if variant == "gemini":
        if kind == "recitation":
            body = _gemini_chunk(p, None, "RECITATION", usage)
        else:
            body = {
                "promptFeedback": {
                    "blockReason": "SAFETY",
                    "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                    ],
                },
                "usageMetadata": {"promptTokenCount": pt, "totalTokenCount": pt},
                "modelVersion": p.model,
            }
        if p.stream:
            return [_sse(body)]
        return [body]
    if variant == "anthropic":
        body = render(variant, p, None, "stop", usage)
        body["stop_reason"] = "refusal"
        if not p.stream:
            return [body]
        start = {**body, "stop_reason": None}
        return [
            _sse({"type": "message_start", "message": start}, "message_start"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "refusal", "stop_sequence": None},
                    "usage": {"output_tokens": 0},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
    body = render(variant, p, None, "content_filter", usage)
    if not p.stream or variant not in ("openai", "ollama-v1"):
        return [body]
    chunk = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
        "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}],
    }
    return [_sse(chunk), _sse("[DONE]")]


def _moondream_body(skill: str, content: str | None) -> dict[str, Any]:
    # Shapes from moondream.ai docs (skills/detect, point, query, caption): the skill's key plus
    # a request_id.
    out: dict[str, Any] = {
        "request_id": f"{time.strftime('%Y-%m-%d')}_{skill}_{uuid.uuid4().hex[:6]}"
    }
    if skill in ("detect", "point"):
        key = "objects" if skill == "detect" else "points"
        if content:
            out[key] = json.loads(content).get(key, [])
        else:
            out[key] = None if content is None else []
        return out
    out["answer" if skill == "query" else "caption"] = content
    return out


def _openai_usage(pt: int, ct: int) -> dict[str, Any]:
    return {
        "prompt_tokens": pt,
        "completion_tokens": ct,
        "total_tokens": pt + ct,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def parsed_image_tokens(parsed: Parsed) -> int:
    fam = family_for(parsed.model)
    total = 0
    for (img, _), detail in zip(parsed.images, parsed.details, strict=False):
        if img.size is None:
            total += 85
            continue
        total += image_tokens(fam.tokens, img.size[0], img.size[1], detail)
    return total


def _gemini_chunk(
    p: Parsed, text: str | None, finish: str | None, usage: tuple[int, int] | None
) -> dict[str, Any]:
    cand: dict[str, Any] = {"index": 0}
    if text is not None:
        cand["content"] = {"parts": [{"text": text}], "role": "model"}
    else:
        cand["content"] = {"role": "model"}
    if finish:
        cand["finishReason"] = finish
    out: dict[str, Any] = {
        "candidates": [cand],
        "modelVersion": p.model,
        "responseId": uuid.uuid4().hex[:22],
    }
    if usage is not None:
        pt, ct = usage
        img_tokens = min(pt, parsed_image_tokens(p)) if p.images else 0
        out["usageMetadata"] = {
            "promptTokenCount": pt,
            "candidatesTokenCount": ct,
            "totalTokenCount": pt + ct,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": pt - img_tokens}]
            + ([{"modality": "IMAGE", "tokenCount": img_tokens}] if p.images else []),
        }
    return out


def _ollama_done(finish: str, usage: tuple[int, int]) -> dict[str, Any]:
    pt, ct = usage
    return {
        "done_reason": "length" if finish == "length" else "stop",
        "done": True,
        "total_duration": 1_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": pt,
        "prompt_eval_duration": 400_000,
        "eval_count": ct,
        "eval_duration": 500_000,
    }


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def stream_events(
    variant: str, p: Parsed, content: str | None, finish: str, usage: tuple[int, int], alt_sse: bool
) -> list[bytes]:
    pieces = list(chunks_of(content)) if content else []
    pt, ct = usage
    model = p.model or ""
    out: list[bytes] = []
    if variant in ("openai", "ollama-v1"):
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], now_s()

        def chunk(delta: dict[str, Any], fin: str | None) -> dict[str, Any]:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_emulator",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}],
            }
            if p.include_usage:
                c["usage"] = None
            return c

        out.append(
            _sse(
                chunk(
                    {
                        "role": "assistant",
                        "content": "" if content is not None else None,
                        "refusal": None,
                    },
                    None,
                )
            )
        )
        out.extend(_sse(chunk({"content": piece}, None)) for piece in pieces)
        out.append(_sse(chunk({}, finish)))
        if p.include_usage:
            out.append(
                _sse(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_emulator",
                        "choices": [],
                        "usage": _openai_usage(pt, ct),
                    }
                )
            )
        out.append(_sse("[DONE]"))
        return out
    if variant == "anthropic":
        mid = "msg_emu" + uuid.uuid4().hex[:20]
        start = {
            "type": "message_start",
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": pt,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        }
        out.append(_sse(start, "message_start"))
        if content is not None:
            out.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                )
            )
            out.append(_sse({"type": "ping"}, "ping"))
            out.extend(
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    "content_block_delta",
                )
                for piece in pieces
            )
            out.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        stop = "max_tokens" if finish == "length" else "end_turn"
        out.append(
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    # Cumulative counts, input included, as the Messages API sends them now.
                    "usage": {
                        "input_tokens": pt,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": ct,
                    },
                },
                "message_delta",
            )
        )
        out.append(_sse({"type": "message_stop"}, "message_stop"))
        return out
    if variant.startswith("moondream-"):
        out.extend(_sse({"chunk": piece}) for piece in pieces)
        out.append(_sse({"completed": True}))
        return out
    if variant == "gemini":
        fin = "MAX_TOKENS" if finish == "length" else "STOP"
        bodies: list[dict[str, Any]] = []
        if not pieces:
            bodies.append(_gemini_chunk(p, content, fin, usage))
        for i, piece in enumerate(pieces):
            is_last = i == len(pieces) - 1
            bodies.append(
                _gemini_chunk(p, piece, fin if is_last else None, usage if is_last else (pt, 0))
            )
        if alt_sse:
            return [
                f"data: {json.dumps(b, separators=(',', ':'))}\r\n\r\n".encode() for b in bodies
            ]
        return [json.dumps(b, separators=(",", ":")).encode() for b in bodies]
    # Ollama native: NDJSON lines, the last one carries done=true and the counts.
    key = "response" if variant == "ollama-generate" else "message"
    for piece in pieces:
        val: Any = piece if key == "response" else {"role": "assistant", "content": piece}
        out.append(
            dumps({"model": model, "created_at": _iso_now(), key: val, "done": False}) + b"\n"
        )
    last: dict[str, Any] = {
        "model": model,
        "created_at": _iso_now(),
        key: "" if key == "response" else {"role": "assistant", "content": ""},
    }
    last.update(_ollama_done(finish, usage))
    out.append(dumps(last) + b"\n")
    return out
