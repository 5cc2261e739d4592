"""The one attempt loop: planning -> cache -> limiter -> provider -> retry / fallback -> usage.

Every call shape of :class:`~vlgate.VlModel` — query, batch item, multi-prompt, several images,
JSON (and its repair turn), caption, detect, point and stream — goes through here, so retrying,
falling back, rate limiting, caching, usage accounting and the hook events are written once:

``AttemptLoop.run(op, name)``
    the fallback chain: ``op(engine)`` on the primary route, then on each fallback while the
    failure is transient (``retryable``) or client-side; routes that failed ``cooldown_after``
    times in a row sit out ``cooldown_seconds``; ``total_timeout`` bounds the whole call.
``AttemptLoop.send(engine, images, prompt, params, task)``
    one route: ``planning.build_request``, the response cache, the concurrency slot, then per
    attempt the rate limiter and ``task.send(provider, request)`` under the config's
    :class:`~vlgate.runtime.retry.RetryPolicy`; finally usage (image-token estimate, cost from
    ``tokens.cost_of``) is added to the model's total.
``AttemptLoop.open_stream(engine, images, prompt, params)``
    the same for a stream, up to its first delta: a stream is retried and falls back only
    before any text has been yielded. Streams bypass the cache (a partial answer must never be
    stored); their usage counts the request and the image-token estimate, as stream deltas
    carry no token counts.

Hooks (:mod:`vlgate.runtime.hooks`) are called from here only: a request event per attempt, a
retry event per wait, an error event when a route gives up, a response event per answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import SecretStr

from . import planning
from .config import ModelConfig, resolve_api_base, resolve_api_key
from .errors import ConfigError, ProviderError, TimeoutError, VlgateError
from .grounding import get_convention
from .image import EncodedImage, Image
from .providers import Completion, Provider, Usage, provider_class
from .providers.base import QUERY, ChatRequest, Task
from .registry import resolve
from .runtime import pipeline
from .runtime.cache import ResponseCache, request_key
from .runtime.concurrency import ConcurrencyLimit, Gate, is_overload
from .runtime.hooks import (
    ErrorEvent,
    Hooks,
    ImageInfo,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    next_call_id,
)
from .runtime.limiter import RateLimiter
from .runtime.loop import PerLoop
from .runtime.retry import RetryPolicy
from .tokens import cost_of, request_tokens

__all__ = ["Answer", "AttemptLoop", "Engine", "fallback_config"]

log = logging.getLogger("vlgate")
T = TypeVar("T")


class Answer(str):
    """The text of an answer — a ``str`` — carrying how it was obtained.

    Attributes:
        usage: tokens (and cost, when priced) of this answer.
        model: the model that answered, as the provider reported it.
        attempts: how many attempts it took (1 = no retry; 0 = served from the cache).
        latency: seconds from the first attempt to the answer.
        dropped_params: caller parameters the provider is known to reject (not sent).
        dropped_reasons: why each of ``dropped_params`` was dropped.
        cached: whether it came from the response cache (then ``usage`` is zero).
    """

    usage: Usage
    model: str | None
    attempts: int
    latency: float
    finish_reason: str | None
    dropped_params: tuple[str, ...]
    dropped_reasons: dict[str, str]
    cached: bool

    def __new__(
        cls,
        text: str,
        *,
        usage: Usage | None = None,
        model: str | None = None,
        attempts: int = 1,
        latency: float = 0.0,
        finish_reason: str | None = None,
        dropped_params: tuple[str, ...] = (),
        cached: bool = False,
        dropped_reasons: dict[str, str] | None = None,
    ) -> Answer:
        obj = super().__new__(cls, text)
        obj.usage = usage or Usage()
        obj.model = model
        obj.attempts = attempts
        obj.latency = latency
        obj.finish_reason = finish_reason
        obj.dropped_params = dropped_params
        obj.dropped_reasons = dict(dropped_reasons or {})
        obj.cached = cached
        return obj


class Engine:
    """One route the model can answer through: the primary model or one of its fallbacks."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.route = resolve(config.model, family=config.family, service=config.service)
        api_key = resolve_api_key(config, self.route)
        api_base = resolve_api_base(config, self.route)
        self.provider: Provider = provider_class(self.route.provider)(
            self.route, config, api_key, api_base
        )
        self.convention = get_convention(self.route.family.grounding)
        fam = self.route.family.native_json_schema
        self.native_json = self.route.provider.native_json_schema if fam is None else fam
        self.failures = 0
        self.cooldown_until = 0.0
        self.limiter: Any = RateLimiter(config.rpm, config.tpm)
        """Anything with ``RateLimiter.acquire`` (the Ray integration shares a cluster budget)."""

    def encode(
        self, image: Image, params: dict[str, Any] | None = None, n_images: int = 1
    ) -> EncodedImage:
        return planning.encode_for(image, self.route, self.config, n_images=n_images, params=params)

    async def aencode(
        self, image: Image, params: dict[str, Any] | None = None, n_images: int = 1
    ) -> EncodedImage:
        """:meth:`encode` in the worker pool (unless tiny): resize, JPEG and base64 never stall
        the event loop."""
        return await pipeline.cpu_bound(self.encode_b64, image, params, n_images)

    def encode_b64(
        self, image: Image, params: dict[str, Any] | None, n_images: int
    ) -> EncodedImage:
        """:meth:`encode` with its base64 computed (and cached) too."""
        encoded = self.encode(image, params, n_images)
        encoded.b64  # noqa: B018 - computed here (cached), not on the loop building the body
        return encoded

    def failed(self, config: ModelConfig) -> None:
        self.failures += 1
        if self.failures >= config.cooldown_after:
            self.cooldown_until = time.monotonic() + config.cooldown_seconds
            log.debug("%s cooling down for %.0fs", self.route.requested, config.cooldown_seconds)

    def succeeded(self) -> None:
        self.failures = 0
        self.cooldown_until = 0.0


def fallback_config(config: ModelConfig, fallback: str | dict[str, Any]) -> ModelConfig:
    """A fallback's config: the primary's options with its own model, key and endpoint."""
    spec = {"model": fallback} if isinstance(fallback, str) else dict(fallback)
    if "model" not in spec:
        raise ConfigError("each fallback needs a model string")
    return config.model_copy(
        update={
            "model": spec["model"],
            "api_key": SecretStr(spec["api_key"]) if spec.get("api_key") else None,
            "api_base": spec.get("api_base"),
            "family": spec.get("family"),
            "service": spec.get("service"),
            # Rate limits belong to one route (account, provider): a fallback has its own.
            "rpm": spec.get("rpm"),
            "tpm": spec.get("tpm"),
            "fallbacks": [],
        }
    )


@dataclass(frozen=True)
class _Call:
    """The call an attempt belongs to, for the hook events."""

    id: int
    op: str


# The call being run; set by ``run`` and read by ``send`` / ``open_stream`` below it (tasks
# started inside, e.g. by ``gather``, inherit it).
_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("vlgate_call", default=None)


class Stream:
    """An opened stream: its first delta is in hand; iterate for the rest.

    ``usage`` starts as the request and the image-token estimate; token counts the provider
    reports at the end of the stream are added (and accounted) when they arrive.
    """

    def __init__(
        self,
        loop: AttemptLoop,
        engine: Engine,
        call: _Call,
        opened: tuple[AsyncIterator[str | Usage], str | None],
        attempts: int,
        usage: Usage,
        started: float,
    ) -> None:
        self._loop = loop
        self._engine = engine
        self._call = call
        self._deltas, self._first = opened
        self.attempts = attempts
        self.usage = usage
        self._started = started

    async def __aiter__(self) -> AsyncIterator[str]:
        # The text is kept only for a hook that asked for content.
        parts: list[str] | None = [] if self._loop.hooks.wants_content else None
        try:
            if self._first is not None:
                if parts is not None:
                    parts.append(self._first)
                yield self._first
            async for delta in self._deltas:
                if isinstance(delta, Usage):
                    self.usage = self._loop.account_stream_usage(self._engine, self.usage, delta)
                elif delta:
                    if parts is not None:
                        parts.append(delta)
                    yield delta
        finally:
            await _aclose(self._deltas)
        latency = time.perf_counter() - self._started
        self._loop.emit_response(
            self._call,
            self._engine,
            self.usage,
            self.attempts,
            latency,
            text="".join(parts) if parts is not None else None,
        )


class AttemptLoop:
    """The one path from a planned call to an answer, shared by every call shape of a model."""

    def __init__(
        self,
        config: ModelConfig,
        engines: Sequence[Engine],
        cache: ResponseCache | None,
        concurrency: ConcurrencyLimit,
        hooks: Hooks | None = None,
    ) -> None:
        self.config = config
        self.engines = list(engines)
        self.cache = cache
        self.hooks = hooks if hooks is not None else Hooks()
        self.retry = RetryPolicy.from_config(config)
        self._gates = PerLoop(lambda: Gate(concurrency))
        self._usage = Usage()
        self._usage_lock = threading.Lock()

    # --- usage ----------------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """A copy of the running total of every answer."""
        with self._usage_lock:
            return Usage(**vars(self._usage))

    def _account(self, usage: Usage) -> None:
        with self._usage_lock:
            self._usage = self._usage + usage

    def _gate(self) -> Gate:
        return self._gates.get()

    def slot(self) -> AbstractAsyncContextManager[None]:
        """A concurrency slot (``max_concurrency``, or the adapted limit) on the running loop."""
        return self._gate().slot()

    # --- the fallback chain ---------------------------------------------------------------------

    async def run(self, op: Callable[[Engine], Awaitable[T]], name: str = "query") -> T:
        """Run ``op`` on the primary route, falling back down the chain on transient failure.

        An engine that failed ``cooldown_after`` times in a row is skipped for
        ``cooldown_seconds`` (unless every engine is cooling down). ``total_timeout`` bounds the
        whole call, retries and fallbacks included.
        """
        call = _CURRENT.get()
        token = None
        if call is None:  # a nested run (the JSON repair turn) stays in its outer call
            call = _Call(next_call_id(), name)
            token = _CURRENT.set(call)
        try:
            total = self.config.total_timeout
            if total is None:
                return await self._chain(op, call)
            try:
                return await asyncio.wait_for(self._chain(op, call), total)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"no answer within total_timeout={total}s", model=self.config.model
                ) from None
        finally:
            if token is not None:
                _CURRENT.reset(token)

    async def _chain(self, op: Callable[[Engine], Awaitable[T]], call: _Call) -> T:
        now = time.monotonic()
        ready = [e for e in self.engines if e.cooldown_until <= now] or self.engines
        last: BaseException | None = None
        for i, engine in enumerate(ready):
            try:
                result = await op(engine)
            except VlgateError as exc:
                # A client-side rate limit is no fault of the engine: fall back, no cooldown.
                fallback = (exc.retryable or exc.client_side) and engine is not ready[-1]
                next_model = ready[i + 1].route.requested if fallback else None
                self._emit_error(call, engine, exc, fallback, next_model)
                if not (exc.retryable or exc.client_side):
                    raise
                if not exc.client_side:
                    engine.failed(self.config)
                last = exc
                if fallback:
                    log.debug("%s failed (%s); falling back", engine.route.requested, exc)
                continue
            engine.succeeded()
            return result
        assert last is not None
        raise last

    # --- one route ------------------------------------------------------------------------------

    def _plan(
        self,
        engine: Engine,
        images: Sequence[EncodedImage],
        prompt: str,
        params: dict[str, Any],
        request_options: dict[str, Any],
    ) -> ChatRequest:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("prompt must be a non-empty string")
        params = dict(params)
        timeout = params.pop("timeout", None)
        return planning.build_request(
            engine.route, engine.config, images, prompt, params, timeout=timeout, **request_options
        )

    async def send(
        self,
        engine: Engine,
        images: Sequence[EncodedImage],
        prompt: str,
        params: dict[str, Any],
        task: Task = QUERY,
        **request_options: Any,
    ) -> Answer:
        """One route's answer: planned, cached, rate limited, retried, accounted."""
        call = _CURRENT.get() or _Call(next_call_id(), task.name)
        request = self._plan(engine, images, prompt, params, request_options)
        started = time.perf_counter()
        key = None
        if self.cache is not None:
            key = request_key(
                request,
                engine.route,
                engine.provider.api_base,
                task,
                extra_headers=engine.config.extra_headers,
                local_options=engine.config.local_options,
            )
            hit = self.cache.get(key)
            if hit is not None:
                latency = time.perf_counter() - started
                self.emit_response(call, engine, hit.usage, 0, latency, cached=True, completion=hit)
                return Answer(
                    hit.text,
                    usage=hit.usage,
                    model=hit.model,
                    attempts=0,
                    latency=latency,
                    finish_reason=hit.finish_reason,
                    dropped_params=hit.dropped_params,
                    cached=True,
                )
        estimate, image_tokens = request_tokens(engine.route, request, engine.config)
        gate = self._gate()
        attempt_no = 0

        async def attempt() -> Completion:
            nonlocal attempt_no
            # The rate limit is taken per attempt: a retry is a request the provider counts.
            slot = await engine.limiter.acquire(estimate, timeout=request.timeout)
            attempt_no += 1
            self._emit_request(call, engine, attempt_no, request, estimate)
            sent = time.perf_counter()
            try:
                done = await task.send(engine.provider, request)
            except BaseException as exc:
                slot.settle(None)
                if is_overload(exc):  # adaptive concurrency backs off
                    gate.record(time.perf_counter() - sent, overloaded=True)
                raise
            slot.settle(done.usage.total_tokens or estimate)
            gate.record(time.perf_counter() - sent, overloaded=False)
            return done

        async with gate.slot():
            completion, attempts = await self.retry.run(
                attempt, on_retry=self._on_retry(call, engine)
            )
        usage = completion.usage
        if usage.image_tokens is None:
            usage.image_tokens = image_tokens
        if usage.image_tokens is not None and usage.input_tokens:
            # An estimate (or a server's odd count) never exceeds the input the server billed.
            usage.image_tokens = min(usage.image_tokens, usage.input_tokens)
        if usage.cost is None:
            usage.cost = cost_of(engine.route, usage)
        if key is not None and self.cache is not None:
            self.cache.put(key, completion)
        self._account(usage)
        latency = time.perf_counter() - started
        self.emit_response(call, engine, usage, attempts, latency, completion=completion)
        return Answer(
            completion.text,
            usage=usage,
            model=completion.model,
            attempts=attempts,
            latency=latency,
            finish_reason=completion.finish_reason,
            dropped_params=completion.dropped_params,
            dropped_reasons=completion.dropped_reasons,
        )

    async def open_stream(
        self,
        engine: Engine,
        images: Sequence[EncodedImage],
        prompt: str,
        params: dict[str, Any],
    ) -> Stream:
        """One route's stream, opened up to its first delta (retried until then).

        The caller holds :meth:`slot` for as long as it reads the stream.
        """
        call = _CURRENT.get() or _Call(next_call_id(), "stream")
        request = self._plan(engine, images, prompt, params, {})
        started = time.perf_counter()
        estimate, image_tokens = request_tokens(engine.route, request, engine.config)
        attempt_no = 0

        async def attempt() -> tuple[AsyncIterator[str | Usage], str | None]:
            nonlocal attempt_no
            slot = await engine.limiter.acquire(estimate, timeout=request.timeout)
            slot.settle(estimate)  # the counts, if any, come after the limiter had to decide
            attempt_no += 1
            self._emit_request(call, engine, attempt_no, request, estimate)
            deltas = engine.provider.stream(request).__aiter__()
            try:
                async for first in deltas:
                    if isinstance(first, str) and first:
                        return deltas, first
                    if isinstance(first, Usage):
                        # Counts before any text (an empty answer): keep them for the end.
                        pending.append(first)
                return deltas, None
            except BaseException:
                await _aclose(deltas)
                raise

        pending: list[Usage] = []

        opened, attempts = await self.retry.run(attempt, on_retry=self._on_retry(call, engine))
        usage = Usage(requests=1, image_tokens=image_tokens)
        self._account(usage)
        for reported in pending:
            usage = self.account_stream_usage(engine, usage, reported)
        return Stream(self, engine, call, opened, attempts, usage, started)

    def account_stream_usage(self, engine: Engine, usage: Usage, reported: Usage) -> Usage:
        """Add the token counts a stream reported to its ``usage`` and the model's total.

        As for other answers: the server's image count replaces the estimate, the image count
        never exceeds the input tokens, and the cost comes from ``tokens.cost_of``.
        """
        added = Usage(reported.input_tokens, reported.output_tokens)
        added.cost = reported.cost if reported.cost is not None else cost_of(engine.route, added)
        image = reported.image_tokens if reported.image_tokens is not None else usage.image_tokens
        if image is not None:
            total_input = usage.input_tokens + added.input_tokens
            image = min(image, total_input) if total_input else image
            added.image_tokens = image - (usage.image_tokens or 0)
        self._account(added)
        return usage + added

    # --- hook events ----------------------------------------------------------------------------

    @staticmethod
    def _where(call: _Call, engine: Engine) -> dict[str, Any]:
        """The fields every event shares: which call, which operation, which route."""
        route = engine.route
        return {
            "call_id": call.id,
            "op": call.op,
            "model": route.requested,
            "provider": route.provider.name,
        }

    def _emit_request(
        self, call: _Call, engine: Engine, attempt: int, request: ChatRequest, estimate: int
    ) -> None:
        if self.hooks:
            images = request.images
            self.hooks.emit(
                RequestEvent(
                    **self._where(call, engine),
                    attempt=attempt,
                    images=len(images),
                    estimated_tokens=estimate,
                    server=engine.provider.api_base,
                    image_info=tuple(_image_info(img) for img in images),
                    params=tuple(sorted(request.params)),
                    prompt=_prompt_text(request) if self.hooks.wants_content else None,
                )
            )

    def _on_retry(self, call: _Call, engine: Engine) -> Callable[[BaseException, int, float], None]:
        def on_retry(exc: BaseException, attempt: int, delay: float) -> None:
            if self.hooks:
                status = exc.status if isinstance(exc, ProviderError) else None
                self.hooks.emit(
                    RetryEvent(
                        **self._where(call, engine),
                        attempt=attempt,
                        error=type(exc).__name__,
                        status=status,
                        delay=delay,
                    )
                )

        return on_retry

    def _emit_error(
        self,
        call: _Call,
        engine: Engine,
        exc: VlgateError,
        fallback: bool,
        fallback_to: str | None = None,
    ) -> None:
        if self.hooks:
            failed = exc if isinstance(exc, ProviderError) else None
            self.hooks.emit(
                ErrorEvent(
                    **self._where(call, engine),
                    attempts=failed.attempts if failed else 1,
                    error=type(exc).__name__,
                    status=failed.status if failed else None,
                    fallback=fallback,
                    fallback_to=fallback_to,
                )
            )

    def emit_response(
        self,
        call: _Call,
        engine: Engine,
        usage: Usage,
        attempts: int,
        latency: float,
        *,
        cached: bool = False,
        completion: Completion | None = None,
        text: str | None = None,
    ) -> None:
        if self.hooks:
            if text is None and completion is not None:
                text = completion.text
            self.hooks.emit(
                ResponseEvent(
                    **self._where(call, engine),
                    attempts=attempts,
                    latency=latency,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    image_tokens=usage.image_tokens,
                    cost=usage.cost,
                    cached=cached,
                    response_model=completion.model if completion is not None else None,
                    finish_reason=completion.finish_reason if completion is not None else None,
                    text=text if self.hooks.wants_content else None,
                )
            )


def _image_info(image: EncodedImage) -> ImageInfo:
    w, h = image.size
    return ImageInfo(w, h, image.mime, len(image.data), hashlib.sha256(image.data).hexdigest()[:16])


def _prompt_text(request: ChatRequest) -> str:
    return "\n".join(p for m in request.messages for p in m.parts if isinstance(p, str))


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
