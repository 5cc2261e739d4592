"""JSON schemas for native structured output: OpenAI's strict mode where a schema allows it.

OpenAI's ``strict: true`` guarantees the answer matches the schema, but only for schemas where
every object lists all its properties in ``required`` and sets ``additionalProperties: false``
(openai-python ``lib/_pydantic.py`` enforces the same). :func:`strict_schema` adds the missing
``additionalProperties: false``; a schema with optional properties or open objects is sent
without ``strict`` (making an optional field required would change what the caller asked for).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["strict_schema"]

_NESTED_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_NESTED_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_NESTED_ONE = ("items", "not", "if", "then", "else", "contains")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of ``schema`` valid for OpenAI's strict mode, or ``None`` when it cannot be.

    Example:
        >>> s = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        >>> strict_schema(s)["additionalProperties"]
        False
        >>> strict_schema({"type": "object", "properties": {"n": {"type": "integer"}}}) is None
        True
    """
    out = copy.deepcopy(schema)
    return out if _make_strict(out) else None


def _make_strict(node: Any) -> bool:
    if isinstance(node, list):
        return all(_make_strict(item) for item in node)
    if not isinstance(node, dict):
        return True
    is_object = node.get("type") == "object" or "properties" in node
    if is_object:
        extra = node.get("additionalProperties", False)
        if extra is not False:
            return False
        node["additionalProperties"] = False
        props = node.get("properties") or {}
        if set(node.get("required") or ()) != set(props):
            return False
        if "patternProperties" in node:
            return False
    for key in _NESTED_MAPS:
        value = node.get(key)
        if isinstance(value, dict) and not all(_make_strict(v) for v in value.values()):
            return False
    for key in _NESTED_LISTS:
        if key in node and not _make_strict(node[key]):
            return False
    return all(_make_strict(node[key]) for key in _NESTED_ONE if key in node)
