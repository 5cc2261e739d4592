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
import hashlib
import importlib
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from .answers import Ask, answer, estimate_text_tokens
from .families import family_for, image_tokens
from .faults import Fault, FaultBook
from .records import Protocol, RecordedRequest
from .rules import check_images
from .vision import Sight, analyze
from .wire import (
    MOONDREAM_SKILLS,
    Parsed,
    WireError,
    chunks_of,
    dumps,
    error_body,
    now_s,
    parse_anthropic,
    parse_gemini,
    parse_moondream,
    parse_ollama_native,
    parse_openai,
)

__all__ = ["Emulator", "serve"]

ROUTE_PLUGINS: tuple[str, ...] = ("batches", "batches_native")
"""Modules of this package that add endpoints to every emulator (the batch APIs): each has
``install(emu: Emulator, app: web.Application) -> None``, called once per start, before the chat
routes (so a plug-in's more specific paths win over their patterns). It may keep its state on
``emu`` (``emu.batches``) and answer a request exactly as the live endpoint would with
:meth:`Emulator.answer_offline`."""

_MAX_BODY = 80 * 1024 * 1024
_ANTHROPIC_MAX_REQUEST = 32 * 1024 * 1024  # platform.claude.com: 32 MB per Messages request
_BIG_IMAGE = 256 * 1024  # images larger than this are analysed off the event loop

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
Latency = float | tuple[float, float]


class Emulator:
    """A loopback fake of the VLM providers, for tests and demos.

    Args:
        api_key: the key every protocol expects (``None``: accept any or none).
        latency: seconds added to every answer, or ``(lo, hi)`` for a seeded uniform delay.
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
        app.on_response_prepare.append(_scene_header)
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

    def _next_canned(self, model: str | None) -> str | None:
        with self._lock:
            for name in (model or "", "*"):
                queue = self._canned.get(name)
                if queue:
                    return queue.pop(0)
        return None

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

    # --- the request path --------------------------------------------------------------------

    def _received(self, request: web.Request, protocol: Protocol, body: Any) -> RecordedRequest:
        """The request recorded as it arrives (``requests`` lists it at once; the rest of the
        record is filled in as it is answered)."""
        rec = RecordedRequest(
            protocol=protocol,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            t_received=time.time(),
        )
        with self._lock:
            self._records.append(rec)
        return rec

    async def _handle(
        self, request: web.Request, protocol: Protocol, variant: str
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = None, True
        rec = self._received(request, protocol, body)
        try:
            return await self._serve(request, rec, variant, raw, bad_json)
        except WireError as exc:
            return self._error(
                rec, variant, exc.status, exc.message, param=exc.param, code=exc.code
            )

    def _error(
        self,
        rec: RecordedRequest,
        variant: str,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> web.Response:
        rec.status, rec.error = status, message
        body = error_body(
            rec.protocol,
            status,
            message,
            native_ollama=variant.startswith("ollama-") and variant != "ollama-v1",
            param=param,
            code=code,
        )
        return web.Response(
            status=status, body=dumps(body), content_type="application/json", headers=headers
        )

    def _auth(self, request: web.Request, protocol: Protocol, variant: str) -> WireError | None:
        key = self.api_key
        if key is None or protocol == "ollama":
            return None
        h = request.headers
        if protocol == "openai":
            auth = h.get("Authorization", "")
            got = auth[7:] if auth.startswith("Bearer ") else None
            if got is None:
                return WireError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
            if got != key:
                return WireError(
                    401,
                    f"Incorrect API key provided: {_mask(got)}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            return None
        if protocol == "anthropic":
            got = h.get("x-api-key")
            if got is None:
                return WireError(401, "x-api-key header is required")
            if got != key:
                return WireError(401, "invalid x-api-key")
            if "anthropic-version" not in h:
                return WireError(400, "anthropic-version: header is required")
            return None
        if protocol == "moondream":
            got = h.get("X-Moondream-Auth")
            if got is None:
                return WireError(401, "Missing X-Moondream-Auth header")
            if got != key:
                return WireError(401, "Invalid API key")
            return None
        got = h.get("x-goog-api-key") or request.query.get("key")
        if got is None:
            return WireError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity "
                "to call this API.",
            )
        if got != key:
            return WireError(400, "API key not valid. Please pass a valid API key.")
        return None

    async def _serve(
        self, request: web.Request, rec: RecordedRequest, variant: str, raw: bytes, bad_json: bool
    ) -> web.StreamResponse:
        protocol = rec.protocol
        problem = self._auth(request, protocol, variant)
        if problem is not None:
            return self._error(rec, variant, problem.status, problem.message, code=problem.code)
        if protocol == "anthropic" and len(raw) > _ANTHROPIC_MAX_REQUEST:
            return self._error(
                rec, variant, 413, "Request exceeds the maximum allowed number of bytes."
            )
        if bad_json:
            raise WireError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)",
            )
        parsed = self._parse(request, rec, variant)
        rec.model, rec.stream = parsed.model, parsed.stream
        rec.images = [img for img, _ in parsed.images]

        try:
            fault = self.faults.next_fault(parsed.model, request.headers.get("x-emulator-fault"))
        except ValueError as exc:
            raise WireError(400, f"x-emulator-fault: {exc}") from None
        delay = self._delay()
        if fault is not None and fault.kind == "slow":
            delay += fault.seconds or 0.5
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind != "ok":
            rec.fault = fault.spec
            early = await self._apply_early_fault(request, rec, variant, fault)
            if early is not None:
                return early
        text_tokens = estimate_text_tokens(parsed.prompt)
        wait = self.faults.check_limit(parsed.model, text_tokens + 258 * len(parsed.images))
        if wait is not None:
            return self._error(
                rec,
                variant,
                429,
                f"Rate limit reached for {parsed.model}: please try again in {wait:.3f}s.",
                headers={"Retry-After": f"{wait:.3f}"},
            )
        reply = await self._reply(rec, variant, parsed, fault, text_tokens)
        request[_SCENE_KEY] = reply.scene
        kind = fault.kind if fault is not None else "ok"
        content, finish, usage = reply.content, reply.finish, reply.usage
        prompt_tokens = usage[0]
        if kind == "malformed":
            return web.Response(
                status=200,
                body=b'{"id": "x", "choices": [{"message": {"content": "unterminat',
                content_type="application/json",
            )
        if kind in ("blocked", "recitation"):
            rec.response_text = None
            filtered = _filtered(variant, parsed, kind, (prompt_tokens, 0))
            if parsed.stream:
                resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                for event in filtered:
                    await resp.write(event)
                await resp.write_eof()
                return resp
            return web.Response(
                status=200, body=dumps(filtered[0]), content_type="application/json"
            )
        if parsed.stream:
            return await self._stream(
                request, rec, variant, parsed, content, finish, usage, truncate=kind == "truncate"
            )
        body = _render(variant, parsed, content, finish, usage)
        data = dumps(body)
        if kind == "truncate":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            self._abort(request)
            return resp
        return web.Response(status=200, body=data, content_type="application/json")

    async def _reply(
        self,
        rec: RecordedRequest,
        variant: str,
        parsed: Parsed,
        fault: Fault | None,
        text_tokens: int,
    ) -> _Reply:
        """The answer to a parsed request: image rules, vision, intent, canned texts, the
        ``max_tokens`` cut, content faults and token counts. Raises :class:`WireError` for an
        image the service rejects. Shared by live requests and batch lines."""
        protocol = rec.protocol
        service = {"ollama-v1": "ollama", "ollama-chat": "ollama", "ollama-generate": "ollama"}.get(
            variant, protocol
        )
        msg = check_images(service, parsed.model, parsed.images)
        if msg is not None:
            raise WireError(400, msg)
        sights = await self._look(parsed)
        structured = variant in ("moondream-detect", "moondream-point")
        text = answer(
            Ask(
                model=parsed.model or "",
                prompt=parsed.prompt,
                sights=sights,
                schema=parsed.schema,
                json_mode=parsed.json_mode,
                noise=self.noise and not structured,
                seed=self.seed,
                image_keys=[hashlib.sha1(img.data).hexdigest()[:16] for img, _ in parsed.images],
            )
        )
        canned = self._next_canned(parsed.model)
        if canned is not None:
            text = canned
        prompt_tokens = text_tokens + self._image_tokens(parsed)
        finish = "stop"
        if parsed.max_tokens is not None and estimate_text_tokens(text) > parsed.max_tokens:
            text, finish = text[: parsed.max_tokens * 4], "length"
        kind = fault.kind if fault is not None else "ok"
        content: str | None = text
        if kind == "empty":
            content = ""
        elif kind == "null":
            content = None
        elif kind == "prose":
            content = "Sure! I looked carefully at the picture and it shows a few shapes."
        rec.response_text = content
        rec.status = 200
        completion_tokens = estimate_text_tokens(content or "") if content else 0
        return _Reply(
            content, finish, (prompt_tokens, completion_tokens), scene_status(sights) or ""
        )

    async def answer_offline(
        self, rec: RecordedRequest, variant: str, *, target: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """Answer ``rec.body`` exactly as the live endpoint of ``variant`` would, without HTTP:
        one request inside a batch job (:mod:`vlgate.testing.batches`).

        The same parsing, image rules, vision, answer and usage as a live request; ``target``
        is the path's model target for Gemini (``gemini-2.5-flash:generateContent``). A
        scripted or random fault with a status (``"429"``, ``"500"``) for the request's model
        fails this one request, ``"blocked"`` / ``"recitation"`` withhold its answer as live;
        faults about the connection do not apply. ``rec`` is recorded
        in :attr:`requests` and filled in (status, images, answer). Returns
        ``(status, body)``: the live response body, or the protocol's error body.
        """
        with self._lock:
            self._records.append(rec)
        try:
            parsed = self._parse_body(rec, variant, target)
            rec.model, rec.stream = parsed.model, False
            rec.images = [img for img, _ in parsed.images]
            fault = self.faults.next_fault(parsed.model, None)
            if fault is not None and fault.kind == "status":
                rec.fault = fault.spec
                status = fault.status
                raise WireError(status, _FAULT_MESSAGES.get(status, f"Emulated error {status}."))
            kind_fault = fault if fault is not None and fault.kind in _CONTENT_FAULTS else None
            if kind_fault is not None:
                rec.fault = kind_fault.spec
            reply = await self._reply(
                rec, variant, parsed, kind_fault, estimate_text_tokens(parsed.prompt)
            )
        except WireError as exc:
            rec.status, rec.error = exc.status, exc.message
            body = error_body(rec.protocol, exc.status, exc.message, param=exc.param, code=exc.code)
            return exc.status, body
        if fault is not None and fault.kind in ("blocked", "recitation"):
            # A withheld answer is a 200 with the provider's refusal / block shape, as live.
            rec.fault, rec.response_text = fault.spec, None
            return 200, _filtered(variant, parsed, fault.kind, (reply.usage[0], 0))[0]
        return 200, _render(variant, parsed, reply.content, reply.finish, reply.usage)

    def _parse(self, request: web.Request, rec: RecordedRequest, variant: str) -> Parsed:
        return self._parse_body(rec, variant, request.match_info.get("target", ""))

    def _parse_body(self, rec: RecordedRequest, variant: str, target: str) -> Parsed:
        body = rec.body
        if variant == "openai":
            return parse_openai(body)
        if variant == "ollama-v1":
            return parse_openai(body, ollama=True)
        if variant == "ollama-chat":
            return parse_ollama_native(body)
        if variant == "ollama-generate":
            return parse_ollama_native(body, generate=True)
        if variant == "anthropic":
            return parse_anthropic(body)
        if variant.startswith("moondream-"):
            return parse_moondream(body, variant.removeprefix("moondream-"))
        model, _, op = target.rpartition(":")
        if op not in ("generateContent", "streamGenerateContent") or not model:
            raise WireError(
                404,
                f"models/{target} is not found for API version v1beta, or is not supported for "
                "generateContent.",
            )
        rec.model = model
        return parse_gemini(body, model, stream=op == "streamGenerateContent")

    def _delay(self) -> float:
        lat = self.latency
        if isinstance(lat, tuple):
            with self._lock:
                return self._rng.uniform(lat[0], lat[1])
        return float(lat)

    async def _apply_early_fault(
        self, request: web.Request, rec: RecordedRequest, variant: str, fault: Fault
    ) -> web.StreamResponse | None:
        if fault.kind == "status":
            st = fault.status
            headers: dict[str, str] = {}
            if st == 429:
                ra = fault.seconds if fault.seconds is not None else self.retry_after
                headers["Retry-After"] = f"{ra:g}"
                msg = "Rate limit exceeded (emulated)."
            elif st == 529:
                msg = "Overloaded"
            elif st >= 500:
                msg = "The server had an error while processing your request (emulated)."
            else:
                msg = f"Emulated error {st}."
            return self._error(rec, variant, st, msg, headers=headers)
        if fault.kind == "hang":
            rec.error = "hang (emulated)"
            seconds = fault.seconds if fault.seconds is not None else self.hang_seconds
            assert self._stopping is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
            rec.status = 504
            return self._error(rec, variant, 504, "hang ended (emulated)")
        if fault.kind == "reset":
            rec.error = "connection reset (emulated)"
            rec.status = 0
            self._abort(request)
            # Nothing reaches the client: the transport is gone, aiohttp drops this response.
            return web.Response(status=500)
        return None

    def _abort(self, request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    async def _look(self, parsed: Parsed) -> list[Sight | None]:
        out: list[Sight | None] = []
        for img, _ in parsed.images:
            if not img.data:
                continue
            if img.nbytes > _BIG_IMAGE:
                out.append(await asyncio.to_thread(analyze, img.data))
            else:
                out.append(analyze(img.data))
        return out

    def _image_tokens(self, parsed: Parsed) -> int:
        return _parsed_image_tokens(parsed)

    async def _stream(
        self,
        request: web.Request,
        rec: RecordedRequest,
        variant: str,
        parsed: Parsed,
        content: str | None,
        finish: str,
        usage: tuple[int, int],
        *,
        truncate: bool,
    ) -> web.StreamResponse:
        events = list(
            _stream_events(
                variant, parsed, content, finish, usage, request.query.get("alt") == "sse"
            )
        )
        ndjson = variant in ("ollama-chat", "ollama-generate")
        gemini_array = variant == "gemini" and request.query.get("alt") != "sse"
        ctype = (
            "application/x-ndjson"
            if ndjson
            else "application/json"
            if gemini_array
            else "text/event-stream"
        )
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        limit = len(events) // 2 if truncate else len(events)
        for i, ev in enumerate(events[:limit]):
            if gemini_array:
                await resp.write((b"[" if i == 0 else b",\r\n") + ev)
            else:
                await resp.write(ev)
        if truncate:
            self._abort(request)
            return resp
        if gemini_array:
            await resp.write(b"]")
        await resp.write_eof()
        return resp


@dataclass(frozen=True)
class _Reply:
    """What the emulator answers to one parsed request, before rendering."""

    content: str | None
    finish: str
    usage: tuple[int, int]
    scene: str


_FAULT_MESSAGES = {
    429: "Rate limit exceeded (emulated).",
    500: "The server had an error while processing your request (emulated).",
    503: "The server is overloaded (emulated).",
}

_CONTENT_FAULTS = frozenset({"empty", "null", "prose"})
"""Faults that change the answer's text (the others are about the connection or the status)."""

_SCENE_KEY = web.RequestKey("scene", str)
SCENE_HEADER = "x-emulator-scene"
"""Response header: ``recognised`` (synthetic scenes), ``unrecognised`` (an image the emulator
cannot see into, e.g. a photograph: it answered as a model that names nothing) or
``unreadable``; absent when the request held no image."""


def scene_status(sights: list[Sight | None]) -> str | None:
    """The :data:`SCENE_HEADER` value for the images of one request."""
    if not sights:
        return None
    if any(s is None for s in sights):
        return "unreadable"
    return "recognised" if all(s is not None and s.scene for s in sights) else "unrecognised"


async def _scene_header(request: web.Request, response: web.StreamResponse) -> None:
    status = request.get(_SCENE_KEY)
    if status:
        response.headers[SCENE_HEADER] = status


def _mask(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


# --- rendering ---------------------------------------------------------------------------------


def _render(
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


def _filtered(variant: str, p: Parsed, kind: str, usage: tuple[int, int]) -> list[Any]:
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
        body = _render(variant, p, None, "stop", usage)
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
    body = _render(variant, p, None, "content_filter", usage)
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


def _parsed_image_tokens(parsed: Parsed) -> int:
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
        img_tokens = min(pt, _parsed_image_tokens(p)) if p.images else 0
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


def _stream_events(
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
