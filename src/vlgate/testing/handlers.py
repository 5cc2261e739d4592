"""The emulator's request path, shared by every chat endpoint: record the request, check the
key as each service does, parse and validate the body (:mod:`vlgate.testing.wire`), apply
faults and rate limits, look at the images, answer by intent and send the answer in the
protocol's shape (:mod:`vlgate.testing.render`), whole or streamed.

:class:`RequestHandlers` is mixed into :class:`vlgate.testing.emulator.Emulator`, which owns
the state it reads (key, faults, latency, records); the batch plug-ins call its
``_received``, ``_auth`` and ``answer_offline`` too. Each chat route is one partial of
:meth:`RequestHandlers._handle`, e.g. for OpenAI's::

    app.router.add_post(
        "/v1/chat/completions",
        functools.partial(emu._handle, protocol="openai", variant="openai"),
    )
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .answers import Ask, answer, estimate_text_tokens
from .faults import Fault, FaultBook
from .imageio import content_key
from .records import Protocol, RecordedRequest
from .render import parsed_image_tokens, render, stream_events, withheld
from .rules import check_images
from .vision import Sight, analyze
from .wire import (
    Parsed,
    WireError,
    dumps,
    error_body,
    parse_anthropic,
    parse_gemini,
    parse_moondream,
    parse_ollama_native,
    parse_openai,
)

__all__ = ["SCENE_HEADER", "Latency", "RequestHandlers", "add_scene_header", "scene_status"]

_ANTHROPIC_MAX_REQUEST = 32 * 1024 * 1024  # platform.claude.com: 32 MB per Messages request
_BIG_IMAGE = 256 * 1024  # images larger than this are analysed off the event loop

Latency = float | tuple[float, float]


class RequestHandlers:
    """The chat endpoints' request path (a mixin of :class:`~vlgate.testing.emulator.Emulator`,
    which sets these attributes in its ``__init__``)."""

    api_key: str | None
    latency: Latency
    seed: int
    noise: bool
    retry_after: float
    hang_seconds: float
    faults: FaultBook
    _records: deque[RecordedRequest]
    _lock: threading.Lock
    _rng: random.Random
    _stopping: asyncio.Event | None
    _canned: dict[str, list[str]]

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
        started = asyncio.get_running_loop().time()
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = None, True
        rec = self._received(request, protocol, body)
        try:
            return await self._serve(request, rec, variant, raw, bad_json, started)
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
        self,
        request: web.Request,
        rec: RecordedRequest,
        variant: str,
        raw: bytes,
        bad_json: bool,
        started: float,
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
        # The latency is the whole response time, as a client sees a provider's: the emulator's
        # own work (validation, image analysis) happens inside it, not after it. Work done after
        # the sleep would add to every answer and, at high concurrency, bunch the requests of a
        # round into bursts that each wait for the whole burst's analysis (+17 % wall time at
        # concurrency 32 and 100 ms for any client, measured).
        due = started + delay
        if fault is not None and fault.kind != "ok":
            await _sleep_until(due)
            rec.fault = fault.spec
            early = await self._apply_early_fault(request, rec, variant, fault)
            if early is not None:
                return early
        text_tokens = estimate_text_tokens(parsed.prompt)
        wait = self.faults.check_limit(parsed.model, text_tokens + 258 * len(parsed.images))
        if wait is not None:
            await _sleep_until(due)
            return self._error(
                rec,
                variant,
                429,
                f"Rate limit reached for {parsed.model}: please try again in {wait:.3f}s.",
                headers={"Retry-After": f"{wait:.3f}"},
            )
        try:
            reply = await self._reply(rec, variant, parsed, fault, text_tokens)
        except WireError:
            await _sleep_until(due)  # a rejected image is answered after the latency too
            raise
        await _sleep_until(due)
        reply.record(rec)  # answered now, not while the latency runs
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
            filtered = withheld(variant, parsed, kind, (prompt_tokens, 0))
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
        body = render(variant, parsed, content, finish, usage)
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
                image_keys=[content_key(img.data)[:16] for img, _ in parsed.images],
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
            reply.record(rec)
        except WireError as exc:
            rec.status, rec.error = exc.status, exc.message
            body = error_body(rec.protocol, exc.status, exc.message, param=exc.param, code=exc.code)
            return exc.status, body
        if fault is not None and fault.kind in ("blocked", "recitation"):
            # A withheld answer is a 200 with the provider's refusal / block shape, as live.
            rec.fault, rec.response_text = fault.spec, None
            return 200, withheld(variant, parsed, fault.kind, (reply.usage[0], 0))[0]
        return 200, render(variant, parsed, reply.content, reply.finish, reply.usage)

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
        return parsed_image_tokens(parsed)

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
            stream_events(
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

    def _next_canned(self, model: str | None) -> str | None:
        with self._lock:
            for name in (model or "", "*"):
                queue = self._canned.get(name)
                if queue:
                    return queue.pop(0)
        return None


@dataclass(frozen=True)
class _Reply:
    """What the emulator answers to one parsed request, before rendering."""

    content: str | None
    finish: str
    usage: tuple[int, int]
    scene: str

    def record(self, rec: RecordedRequest) -> None:
        """Mark ``rec`` answered with this reply."""
        rec.response_text = self.content
        rec.status = 200


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


async def add_scene_header(request: web.Request, response: web.StreamResponse) -> None:
    """The app's ``on_response_prepare`` hook that sends :data:`SCENE_HEADER`."""
    status = request.get(_SCENE_KEY)
    if status:
        response.headers[SCENE_HEADER] = status


def _mask(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


async def _sleep_until(due: float) -> None:
    """Sleep until the event loop's clock reads ``due`` (at once when it already has)."""
    remaining = due - asyncio.get_running_loop().time()
    if remaining > 0:
        await asyncio.sleep(remaining)
