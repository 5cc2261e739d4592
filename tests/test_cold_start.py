"""Cold start: ``start()`` does the slow work up front, and no route is noisy at exit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes

SRC = str(Path(vlgate.__file__).resolve().parent.parent)


class CountingServer:
    """A minimal OpenAI-compatible server that records which client connection (peer port)
    each request came on, so a test can see a connection opened by start() being reused."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _any(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append((request.method, peer[1] if peer else None))
        if request.method == "POST":
            body = {
                "id": "x",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "red"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
            return web.json_response(body)
        return web.json_response({"error": {"message": "not found"}}, status=404)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> CountingServer:
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def counting() -> Iterator[CountingServer]:
    with CountingServer() as server:
        yield server


def test_start_opens_the_connection_the_first_answer_reuses(counting: CountingServer) -> None:
    model = vlgate.create(
        "openai/gpt-4o", api_key=KEY, api_base=f"http://127.0.0.1:{counting.port}/v1"
    )
    with model:
        # start() sent one bare GET (no answer is billed) on a connection it keeps.
        assert [m for m, _ in counting.peers] == ["GET"]
        assert model.query(png_bytes(), "What colour?") == "red"
    (_, warm_port), (method, ask_port) = counting.peers
    assert method == "POST" and ask_port == warm_port


def test_start_of_a_server_that_is_down_is_not_an_error() -> None:
    model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base="http://127.0.0.1:9/v1")
    model.start()  # the first request reports the refused connection, not start()
    model.stop()


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=240,
    )


@pytest.mark.litellm
def test_litellm_route_start_imports_litellm_and_exit_is_silent(emulator: Emulator) -> None:
    code = f"""
        import json, sys, vlgate
        m = vlgate.create("litellm/anthropic/claude-sonnet-4-5", api_key="{KEY}",
                          api_base="{emulator.url}", max_retries=0)
        before = "litellm" in sys.modules
        m.start()
        after = "litellm" in sys.modules
        answer = m.query({png_bytes()!r}, "What colour?")
        print(json.dumps([before, after, bool(answer)]))
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True, True]
    assert done.stderr == ""  # no logging-worker traceback, no unclosed-session warning
    assert [r.protocol for r in emulator.requests] == ["anthropic"]


@pytest.mark.parametrize("route", ["openai", "anthropic", "gemini"])
def test_native_routes_never_import_litellm_and_exit_silently(
    emulator: Emulator, route: str
) -> None:
    model, base = {
        "openai": ("openai/gpt-4o", emulator.openai_base),
        "anthropic": ("anthropic/claude-sonnet-4-5", emulator.anthropic_base),
        "gemini": ("gemini/gemini-2.5-flash", emulator.gemini_base),
    }[route]
    code = f"""
        import sys, vlgate
        with vlgate.create("{model}", api_key="{KEY}", api_base="{base}") as m:
            m.query({png_bytes()!r}, "What colour?")
        print("litellm" in sys.modules)
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert done.stderr == ""
