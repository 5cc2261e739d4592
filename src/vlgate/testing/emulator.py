"""The provider emulator: a loopback aiohttp server speaking OpenAI, Anthropic, Gemini, Ollama and
Moondream.

It runs on its own event loop in a background thread, so both sync and async tests can use it.
It validates requests as the real services do, looks at the images it receives
(:mod:`vlgate.testing.vision`), answers by prompt intent (:mod:`vlgate.testing.answers`),
injects faults (:mod:`vlgate.testing.faults`) and records every request.

Endpoints (``emu.url`` = ``http://127.0.0.1:PORT``):

* ``POST /v1/chat/completions``, ``GET /v1/models`` — OpenAI; ``Authorization: Bearer KEY``.
* ``POST /ollama/v1/chat/completions`` — Ollama's OpenAI-compatible API (its image rules); no key.
* ``POST /api/chat``, ``POST /api/generate``, ``GET /api/tags`` — Ollama native; no key.
* ``POST /v1/messages`` — Anthropic; ``x-api-key: KEY`` and ``anthropic-version`` headers.
* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (``?alt=sse``
  for SSE, else a JSON array) — Gemini; ``x-goog-api-key: KEY`` header or ``?key=KEY``.
* ``POST /moondream/v1/{caption,query,detect,point}`` — Moondream's skill API
  (api.moondream.ai/v1, Moondream Station); ``X-Moondream-Auth: KEY`` header.

Gemini is also served without the version prefix (``/models/{model}:...``), which is what
LiteLLM calls when given ``api_base=emu.url``. Bases: ``emu.openai_base`` (OpenAI, vLLM,
DashScope-style), ``emu.ollama_base`` (Ollama's OpenAI-compatible API), ``emu.anthropic_base``,
``emu.gemini_base``, ``emu.moondream_base``, and ``emu.url`` for LiteLLM's ``anthropic/``,
``gemini/`` and ``ollama_chat/``.

Moondream: ``/detect`` answers ``{"objects": [{"x_min", "y_min", "x_max", "y_max"}]}`` and
``/point`` ``{"points": [{"x", "y"}]}``, fractions 0-1 of the full image, for the shapes matching
``object`` (never noisy: these are structured answers); ``/query`` answers ``{"answer": ...}`` by
the usual intent rules and ``/caption`` ``{"caption": ...}``. With ``"stream": true`` query and
caption send SSE events ``data: {"chunk": "..."}`` then ``data: {"completed": true}`` (vlgate's
reading of moondream-python's ``_stream_response``). Requests carry no model name unless the
body has the optional ``model``: they are recorded, scripted and rate-limited as ``"moondream"``
(``emu.script("moondream", ["429", "ok"])``). Errors are ``{"error": message, "status": code}``
(undocumented by Moondream; an assumption).

Auth failures answer as the services do: OpenAI 401 ``invalid_api_key``; Anthropic 401
``authentication_error``; Gemini 400 ``INVALID_ARGUMENT`` "API key not valid" for a wrong key
and 403 ``PERMISSION_DENIED`` for a missing one; Moondream 401 for a missing or wrong key.
``api_key=None`` accepts any key.

Faults: ``emu.script(model, [...])``, the request header ``x-emulator-fault: <outcome>``, or
``emu.set_faults(rate, kinds, seed)``; syntax in :mod:`vlgate.testing.faults`.

Example::

    with Emulator() as emu:
        client = openai.OpenAI(base_url=emu.openai_base, api_key=emu.api_key)
        emu.script("gpt-4o", ["429", "ok"])
        ...
        assert [r.status for r in emu.requests] == [429, 200]
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from .faults import FaultBook
from .handlers import SCENE_HEADER, Latency, RequestHandlers, add_scene_header, scene_status
from .records import Protocol, RecordedRequest
from .wire import MOONDREAM_SKILLS

__all__ = ["ROUTE_PLUGINS", "SCENE_HEADER", "Emulator", "Latency", "scene_status", "serve"]

ROUTE_PLUGINS: tuple[str, ...] = ("batches", "batches_native")
"""Modules of this package that add endpoints to every emulator (the batch APIs): each has
``install(emu: Emulator, app: web.Application) -> None``, called once per start, before the chat
routes (so a plug-in's more specific paths win over their patterns). It may keep its state on
``emu`` (``emu.batches``) and answer a request exactly as the live endpoint would with
:meth:`Emulator.answer_offline`."""

_MAX_BODY = 80 * 1024 * 1024

# The chat endpoints: path -> the wire protocol spoken there and its variant (Emulator._handle).
_CHAT_ROUTES: tuple[tuple[str, Protocol, str], ...] = (
    ("/v1/chat/completions", "openai", "openai"),
    ("/chat/completions", "openai", "openai"),
    ("/ollama/v1/chat/completions", "ollama", "ollama-v1"),
    ("/api/chat", "ollama", "ollama-chat"),
    ("/api/generate", "ollama", "ollama-generate"),
    ("/v1/messages", "anthropic", "anthropic"),
    *((prefix + "/models/{target}", "gemini", "gemini") for prefix in ("/v1beta", "/v1", "")),
)


class Emulator(RequestHandlers):
    """A loopback fake of the VLM providers, for tests and demos.

    Args:
        api_key: the key every protocol expects (``None``: accept any or none).
        latency: each answer's response time in seconds (the emulator's own work runs inside it),
            or ``(lo, hi)`` for a seeded uniform one.
        seed: seeds answer noise and random latency.
        host, port: where to listen (``port=0``: an ephemeral port). Loopback only by default.
        noise: add realistic noise (fences, chatter, truncation) to grounding answers.
        retry_after: the ``Retry-After`` seconds sent with injected 429s.
        hang_seconds: how long ``hang`` faults hold the request (ended early by shutdown).
        keep_requests: keep only the latest this many recorded requests (``None``: all). A
            served emulator nobody inspects keeps a few: each record holds its request body.

    Example::

        with Emulator(api_key="emu-key") as emu:
            emu.url, emu.openai_base, emu.requests
    """

    def __init__(
        self,
        api_key: str | None = "emu-key",
        latency: Latency = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        noise: bool = True,
        retry_after: float = 0.02,
        hang_seconds: float = 30.0,
        keep_requests: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency: Latency = latency
        self.seed = seed
        self.host = host
        self.noise = noise
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.faults = FaultBook()
        self._port = port
        self._records: deque[RecordedRequest] = deque(maxlen=keep_requests)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._canned: dict[str, list[str]] = {}
        self.batches: Any = None
        """The OpenAI Batch API's jobs and test controls (:mod:`vlgate.testing.batches`)."""

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving in a background thread; returns ``self``. Idempotent."""
        if self._thread is not None:
            return self
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="vlgate-emulator", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(
                f"emulator failed to start: {self._start_error}"
            ) from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving, end hanging requests, join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=_MAX_BODY)
        app.on_response_prepare.append(add_scene_header)
        self._routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        await site.start()
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self._port = int(sockets[0].getsockname()[1]) if sockets else self._port

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- public state ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (known after start)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` — the api_base for LiteLLM ``anthropic/``, ``gemini/``,
        ``ollama_chat/``."""
        return f"http://{self.host}:{self._port}"

    @property
    def openai_base(self) -> str:
        """OpenAI-compatible base (``.../v1``): OpenAI SDK, vLLM, DashScope, ``hosted_vllm/``."""
        return self.url + "/v1"

    @property
    def ollama_base(self) -> str:
        """Ollama's OpenAI-compatible base (``.../ollama/v1``), with Ollama's image rules."""
        return self.url + "/ollama/v1"

    @property
    def anthropic_base(self) -> str:
        """Base URL for the Anthropic SDK (it appends ``/v1/messages``)."""
        return self.url

    @property
    def gemini_base(self) -> str:
        """Base for Gemini REST calls (``.../v1beta``)."""
        return self.url + "/v1beta"

    @property
    def moondream_base(self) -> str:
        """Base of Moondream's skill API (``.../moondream/v1``), like ``https://api.moondream.ai/v1``
        or a Moondream Station's ``http://localhost:2020/v1``."""
        return self.url + "/moondream/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the list of recorded requests, oldest first (thread-safe)."""
        with self._lock:
            return list(self._records)

    @property
    def last(self) -> RecordedRequest:
        """The most recent request (``IndexError`` if none)."""
        with self._lock:
            return self._records[-1]

    def clear(self) -> None:
        """Forget recorded requests, scripts, canned answers, random faults and rate limits."""
        with self._lock:
            self._records.clear()
            self._canned.clear()
        self.faults.clear()

    def script(self, model: str, outcomes: Iterable[str]) -> None:
        """Queue outcomes (``"429"``, ``"500"``, ``"ok"``, ``"hang"``...) for the next requests
        naming ``model`` (``"*"`` for any model), consumed in order.

        Example::

            emu.script("gpt-4o", ["429", "500", "ok"])
        """
        self.faults.script(model, outcomes)

    def say(self, model: str, texts: Iterable[str]) -> None:
        """Answer the next requests naming ``model`` (``"*"``: any model) with exactly these
        texts, in order, instead of what the emulator sees: for testing what a hostile or broken
        model could send (control characters, lone surrogates, huge numbers).

        Example::

            emu.say("gpt-4o", ["A cat.\\x1b]0;pwned\\x07", "\\ud800"])
        """
        with self._lock:
            self._canned.setdefault(model, []).extend(texts)

    def set_faults(
        self, rate: float, kinds: Iterable[str] = ("429", "500", "503"), seed: int = 0
    ) -> None:
        """Inject a random fault from ``kinds`` into a ``rate`` fraction of requests (seeded).

        Example::

            emu.set_faults(rate=0.3, kinds=["429", "503", "reset"], seed=1)
        """
        self.faults.set_random(rate, kinds, seed)

    def rate_limit(
        self,
        model: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        window: float = 60.0,
    ) -> None:
        """Enforce requests/tokens per minute for ``model`` (429 with Retry-After when over).

        ``window`` shortens the minute for fast tests and benchmarks: ``rpm`` requests per
        ``window`` seconds.

        Example::

            emu.rate_limit("gpt-4o", rpm=2)
            emu.rate_limit("gpt-4o", rpm=20, window=1.0)   # 20 requests a second
        """
        self.faults.set_limit(model, rpm, tpm, window)

    # --- routing -----------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        # Plug-ins first: aiohttp takes the first route that matches, and a plug-in's paths
        # can be more specific than a live route's pattern (``models/{m}:batchGenerateContent``
        # against Gemini's ``models/{target}``).
        for name in ROUTE_PLUGINS:
            importlib.import_module(f"{__package__}.{name}").install(self, app)
        r = app.router
        for path, protocol, variant in _CHAT_ROUTES:
            r.add_post(path, functools.partial(self._handle, protocol=protocol, variant=variant))
        r.add_get("/v1/models", self._h_models)
        r.add_get("/ollama/v1/models", self._h_models)
        r.add_get("/api/tags", self._h_ollama_tags)
        r.add_post("/moondream/v1/{skill}", self._h_moondream)
        r.add_get("/health", self._h_health)

    async def _h_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _h_models(self, request: web.Request) -> web.Response:
        models = ["gpt-4o", "gpt-4o-mini", "qwen2.5-vl-7b-instruct", "qwen3-vl-plus"]
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "emulator"}
            for m in models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _h_ollama_tags(self, request: web.Request) -> web.Response:
        names = ["qwen2.5vl:7b", "llava:7b", "gemma3:4b"]
        return web.json_response({"models": [{"name": n, "model": n, "size": 0} for n in names]})

    async def _h_moondream(self, request: web.Request) -> web.StreamResponse:
        skill = request.match_info.get("skill", "")
        if skill not in MOONDREAM_SKILLS:
            body = {"error": f"no such skill: {skill}", "status": 404}
            return web.json_response(body, status=404)
        return await self._handle(request, "moondream", f"moondream-{skill}")


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = "emu-key",
    latency: float = 0.0,
    *,
    on_ready: Callable[[Emulator], None] | None = None,
) -> None:
    """Run an emulator in the foreground until interrupted (``vlgate emulate``).

    Example::

        serve(port=8765)   # blocks; Ctrl-C to stop
    """
    # Nothing reads the records of a served emulator: keeping every body would grow without end.
    emu = Emulator(api_key=api_key, latency=latency, host=host, port=port, keep_requests=64)
    with emu:
        if on_ready is not None:
            on_ready(emu)
        else:
            print(
                f"vlgate emulator listening on {emu.url} (OpenAI base {emu.openai_base}, key "
                f"{api_key!r})",
                flush=True,
            )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
