"""Put a call's parameters into a provider's request body, as the registry's table says.

Every provider builds its own messages, then calls :func:`place` once: each parameter lands where
its API takes it (top level, each image part, Gemini's ``generationConfig``, Ollama's
``options``, Moondream's ``settings``), under the wire name. A parameter is dropped only when the
table says the API rejects it; the reason is returned and ends up on the answer.

Two escape hatches work on every route: ``extra_body={...}`` is merged into the body last
(nested objects merged key by key), and ``extra_headers={...}`` is taken off the parameters by
:func:`vlgate.planning.build_request` and sent as headers.

Example:
    >>> from vlgate.registry import PARAMS
    >>> body = {"messages": []}
    >>> part = {"url": "data:..."}
    >>> place(body, {"top_k": 4, "seed": 1}, PARAMS["gemini"], image_parts=[part])
    {}
    >>> body["generationConfig"]
    {'topK': 4, 'seed': 1}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from ..registry import BODY, IMAGE, ParamTable

__all__ = ["EXTRA_BODY", "merge_into", "openai_image_parts", "place", "split"]

log = logging.getLogger("vlgate")

EXTRA_BODY = "extra_body"


def split(params: Mapping[str, Any], table: ParamTable) -> tuple[dict[str, Any], dict[str, str]]:
    """``(kept, dropped)``: the parameters sent and, for the others, why they are dropped.

    Example:
        >>> from vlgate.registry import PARAMS
        >>> split({"top_k": 3, "temperature": 0}, PARAMS["openai"])[1]["top_k"]
        'OpenAI chat completions has no top_k (400 unrecognized request argument)'
    """
    kept: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for name, value in params.items():
        if name == EXTRA_BODY:
            kept[name] = value
            continue
        reason = table.reason(name)
        if reason is None:
            kept[name] = value
        else:
            dropped[name] = reason
    if dropped:
        log.debug(
            "%s does not take %s; dropped",
            table.name,
            "; ".join(f"{k} ({v})" for k, v in sorted(dropped.items())),
        )
    return kept, dropped


def merge_into(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``target``; nested objects are merged key by key, the rest replaced."""
    for key, value in extra.items():
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged = dict(current)
            merge_into(merged, value)
            target[key] = merged
        else:
            target[key] = value


def place(
    body: dict[str, Any],
    params: Mapping[str, Any],
    table: ParamTable,
    *,
    image_parts: Iterable[dict[str, Any]] = (),
) -> dict[str, str]:
    """Place ``params`` into ``body`` per ``table``; return ``{dropped name: reason}``.

    ``image_parts`` are the dicts that take image-level keys (OpenAI: each ``image_url``
    object). Keys the body already holds are overwritten by the caller's parameters.
    """
    kept, dropped = split(params, table)
    extra = kept.pop(EXTRA_BODY, None)
    parts = list(image_parts)
    for name, value in kept.items():
        spec = table.params.get(name)
        where = spec.where if spec is not None else BODY
        key = (spec.key if spec is not None else None) or name
        if where == BODY:
            if isinstance(value, Mapping) and isinstance(body.get(key), dict):
                merge_into(body[key], value)
            else:
                body[key] = value
        elif where == IMAGE:
            for part in parts:
                part[key] = value
        else:
            nested = body.setdefault(where, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"{where} must be an object to take {name}")
            nested[key] = value
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise ConfigError("extra_body must be a dict of JSON body keys")
        merge_into(body, extra)
    return dropped


def openai_image_parts(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``image_url`` objects of OpenAI-format messages (where ``detail`` goes)."""
    parts: list[dict[str, Any]] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            for item in content:
                if item.get("type") == "image_url" and isinstance(item.get("image_url"), dict):
                    parts.append(item["image_url"])
    return parts
