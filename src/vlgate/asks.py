"""The questions whose answer vlgate reads back as data: JSON (:class:`JsonAsk`) and grounding
(:data:`DETECT`, :data:`POINT`) — the prompt sent, the native options a route takes, and how
the answer is parsed and validated. Shared by :class:`vlgate.VlModel` (``query_json``,
``detect``, ``point``) and provider batches (:mod:`vlgate.batches`).

Example::

    ask = JsonAsk.of("Count the people.", {"type": "object", "required": ["people"]})
    ask.parse('Sure: {"people": 3}')   # {'people': 3}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ._attempts import Answer, Engine
from .errors import ConfigError, ResponseError
from .grounding import detection_prompt, parse_detections, parse_points, point_prompt
from .jsonparse import extract_json

__all__ = [
    "DETECT",
    "OFF_LOOP_CHARS",
    "POINT",
    "GroundingTask",
    "JsonAsk",
    "both_turns",
    "off_loop_if_large",
    "validate_json",
]

_JSON_INSTRUCTION = "Reply with JSON only, no prose and no code fences."


@dataclass(frozen=True)
class JsonAsk:
    """A JSON question as sent: the prompt with the JSON instruction (and the schema), and the
    native structured-output options a route takes. Shared by ``query_json`` and provider
    batches (``submit_batch(task="json")``)."""

    prompt: str
    model_cls: type[BaseModel] | None
    schema: dict[str, Any] | None

    @classmethod
    def of(cls, prompt: str, schema: type[BaseModel] | dict[str, Any] | None) -> JsonAsk:
        model_cls = schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None
        if schema is not None and model_cls is None and not isinstance(schema, dict):
            raise ConfigError("schema must be a pydantic model class or a JSON-schema dict")
        schema_dict: dict[str, Any] | None = (
            model_cls.model_json_schema() if model_cls else schema  # type: ignore[assignment]
        )
        full_prompt = f"{prompt}\n\n{_JSON_INSTRUCTION}"
        if schema_dict is not None:
            full_prompt += "\nThe JSON must match this JSON schema:\n" + json.dumps(schema_dict)
        return cls(full_prompt, model_cls, schema_dict)

    def options(self, engine: Engine) -> dict[str, Any]:
        """``json_schema`` / ``json_mode`` for a route with native structured output."""
        if engine.native_json and self.schema is not None:
            cls = self.model_cls
            name = cls.__name__ if cls else str(self.schema.get("title", "answer"))
            return {"json_schema": {"name": _schema_name(name), "schema": self.schema}}
        if engine.native_json:
            return {"json_mode": True}
        return {}

    def parse(self, text: str) -> Any:
        """The answer's JSON, validated against the schema (:class:`ResponseError` if not)."""
        return validate_json(text, self.model_cls, self.schema)


@dataclass(frozen=True)
class GroundingTask:
    """detect or point: the native prompt builder and the parser for one kind of grounding."""

    name: Literal["detect", "point"]
    prompt: Callable[..., str]
    parse: Callable[..., Any]  # Detections or Points


DETECT = GroundingTask("detect", detection_prompt, parse_detections)
POINT = GroundingTask("point", point_prompt, parse_points)

OFF_LOOP_CHARS = 32_768
"""Answers longer than this are parsed in a worker thread, so parsing never stalls the loop."""


async def off_loop_if_large(text: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, in a worker thread when ``text`` is longer than
    :data:`OFF_LOOP_CHARS`."""
    if isinstance(text, str) and len(text) > OFF_LOOP_CHARS:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def _schema_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "answer"


def both_turns(first: Answer, repair: Answer) -> Answer:
    """The repaired answer, accounted as the two requests it took."""
    return Answer(
        str(repair),
        usage=first.usage + repair.usage,
        model=repair.model,
        attempts=first.attempts + repair.attempts,
        latency=first.latency + repair.latency,
        finish_reason=repair.finish_reason,
        dropped_params=repair.dropped_params,
        cached=first.cached and repair.cached,
        dropped_reasons=repair.dropped_reasons,
    )


def validate_json(
    text: str, model_cls: type[BaseModel] | None, schema: dict[str, Any] | None
) -> Any:
    """The JSON in ``text``, validated: a ``model_cls`` instance, or data of the dict schema's
    shape (:class:`ResponseError` carrying ``text`` when it is not)."""
    data = extract_json(text)
    if model_cls is not None:
        try:
            return model_cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'root'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise ResponseError(f"JSON does not match the schema: {problems}", raw=text) from None
    if schema is not None:
        _check_schema_shape(data, schema, text)
    return data


def _check_schema_shape(data: Any, schema: dict[str, Any], raw: str) -> None:
    """A light check for dict schemas: top-level type and required keys."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(data, dict):
            raise ResponseError("expected a JSON object", raw=raw)
        missing = [k for k in schema.get("required", []) if k not in data]
        if missing:
            raise ResponseError(f"JSON is missing required keys: {', '.join(missing)}", raw=raw)
    elif kind == "array" and not isinstance(data, list):
        raise ResponseError("expected a JSON array", raw=raw)
