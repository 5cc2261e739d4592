"""Issue 9 item 9: a mapped error holds nothing that carries the key.

The SDK exception a provider caught (and the request/response objects it holds, with their
``Authorization`` headers) must not be reachable from what vlgate raises: not through
``__cause__`` / ``__context__``, and not through any attribute, at any depth.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import png_bytes

SECRET = "sk-chain-secret-0a1b2c3d4e5f6a7b8c9d"
ROUTES = {
    "openai": ("openai/gpt-4o", "/v1"),
    "anthropic": ("anthropic/claude-sonnet-4-5", ""),
    "gemini": ("gemini/gemini-2.5-flash", ""),
    "moondream": ("moondream/moondream-3", "/moondream/v1"),
    "litellm-anthropic": ("litellm/anthropic/claude-sonnet-4-5", ""),
    "litellm-gemini": ("litellm/gemini/gemini-2.5-flash", ""),
}
FAULTS = ["401", "400", "500", "429", "malformed", "reset"]


def _objects(root: BaseException) -> Iterator[tuple[str, Any]]:
    """Everything reachable from ``root`` through exception links and attributes (not through
    tracebacks: their frames hold the provider, which must hold the key)."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("exc", root, 0)]
    while stack:
        path, obj, depth = stack.pop()
        if id(obj) in seen or depth > 8:
            continue
        seen.add(id(obj))
        yield path, obj
        if isinstance(obj, (str, bytes, bytearray, int, float, bool, type(None))):
            continue
        children: list[tuple[str, Any]] = []
        if isinstance(obj, BaseException):
            children += [("__cause__", obj.__cause__), ("__context__", obj.__context__)]
            children += [(f"args[{i}]", a) for i, a in enumerate(obj.args)]
        if isinstance(obj, dict):
            children += [(f"[{k!r}]", v) for k, v in obj.items()]
            children += [(f"key {k!r}", k) for k in obj]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += [(f"[{i}]", v) for i, v in enumerate(obj)]
        elif not callable(obj) or isinstance(obj, BaseException):
            try:
                attrs = dict(vars(obj))
            except TypeError:
                attrs = {}
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    attrs[slot] = getattr(obj, slot)
            children += [(f".{k}", v) for k, v in attrs.items() if k != "__traceback__"]
        for name, child in children:
            if child is not None and not isinstance(child, type) and not _is_frame(child):
                stack.append((f"{path}{name}", child, depth + 1))


def _is_frame(obj: Any) -> bool:
    return type(obj).__name__ in ("frame", "traceback", "module", "function", "code")


def assert_no_secret(exc: BaseException) -> None:
    for path, obj in _objects(exc):
        for view in (repr, str):
            try:
                text = view(obj)
            except Exception:
                continue
            assert SECRET not in text, f"key reachable at {path} ({type(obj).__name__})"
            assert SECRET[-12:] not in text, f"key tail reachable at {path}"


def _fail(model: vlgate.VlModel) -> BaseException:
    with pytest.raises(vlgate.VlgateError) as info:
        model.query(png_bytes(), "Describe this image.")
    return info.value


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=SECRET) as e:
        yield e


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("route", list(ROUTES))
def test_mapped_errors_carry_no_key(emu: Emulator, route: str, fault: str) -> None:
    model_name, suffix = ROUTES[route]
    if model_name.startswith("litellm/"):
        pytest.importorskip("litellm")
    model = vlgate.create(
        model_name, api_key=SECRET, api_base=emu.url + suffix, max_retries=0, timeout=5
    )
    emu.clear()
    emu.script("*", [fault])
    try:
        exc = _fail(model)
    finally:
        model.stop()
    assert emu.requests, "the fault must have been served"
    assert_no_secret(exc)


@pytest.mark.parametrize("fault", ["401", "500", "reset"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_stream_errors_carry_no_key(emu: Emulator, route: str, fault: str) -> None:
    model_name, suffix = ROUTES[route]
    if model_name.startswith("litellm/"):
        pytest.importorskip("litellm")
    model = vlgate.create(
        model_name, api_key=SECRET, api_base=emu.url + suffix, max_retries=0, timeout=5
    )
    emu.clear()
    emu.script("*", [fault])
    try:
        with pytest.raises(vlgate.VlgateError) as info:
            for _ in model.stream(png_bytes(), "Describe this image."):
                pass
    finally:
        model.stop()
    assert_no_secret(info.value)


@pytest.mark.parametrize("route", ["openai", "anthropic", "moondream"])
def test_connection_refused_carries_no_key(route: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model_name, suffix = ROUTES[route]
    model = vlgate.create(
        model_name,
        api_key=SECRET,
        api_base=f"http://127.0.0.1:{port}{suffix}",
        max_retries=0,
        timeout=5,
    )
    try:
        assert_no_secret(_fail(model))
    finally:
        model.stop()


def test_the_walk_finds_a_key_held_in_context() -> None:
    # The check itself must be able to fail: a key two links deep is found.
    class Sdk(Exception):
        def __init__(self) -> None:
            super().__init__("boom")
            self.request = {"headers": {"Authorization": f"Bearer {SECRET}"}}

    try:
        try:
            raise Sdk()
        except Sdk:
            raise vlgate.ProviderError("mapped") from None
    except vlgate.ProviderError as exc:
        with pytest.raises(AssertionError, match="__context__"):
            assert_no_secret(exc)
