"""The one HTTP client every wire provider shares (OpenAI-compatible, Anthropic, Gemini, Moondream).

Close to the wire on purpose: one pooled aiohttp session per event loop, the JSON body serialised
once into bytes, the answer read once and parsed once, server-sent events split by a small
reader. No SDK object model sits between a request and the socket, so a request costs about what a
raw aiohttp POST costs (``benchmarks/overhead.py``). Every failure leaves here as a vlgate error:
statuses through :func:`~vlgate.providers._errors.error_for_status`, transport faults through
:func:`~vlgate.providers._errors.error_for_transport`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from .. import errors
from ..runtime import pipeline
from ..runtime.loop import PerLoop
from ._errors import error_for_status, error_for_transport, malformed_answer
from .base import ChatRequest, Provider

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..registry import BatchSpec, Route
    from ._batch import BatchApi

__all__ = ["HttpClient", "HttpProvider", "dumps"]

# What the transport raises for refused/reset connections, DNS failures, cut bodies and timeouts.
log = logging.getLogger("vlgate")
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def dumps(body: Any) -> bytes:
    """The JSON body as sent: compact, serialised once.

    Example:
        >>> dumps({"a": [1, "é"]})
        b'{"a":[1,"\\\\u00e9"]}'
    """
    return json.dumps(body, separators=(",", ":")).encode()


# A body with more text than this (an image's base64) is serialised in the worker pool: dumping
# a 1080p frame's ~0.6 MB of base64 takes ~0.5 ms, and 32 requests of a batch made ready in the
# same loop iteration would otherwise stall the loop for all of them in a row.
_OFFLOAD_CHARS = 128 * 1024


def _text_at_least(obj: Any, limit: int) -> bool:
    """Whether the strings in a JSON body add up to ``limit`` characters (stops once they do)."""
    stack = [obj]
    total = 0
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
            if total >= limit:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


async def adumps(body: Any) -> bytes:
    """:func:`dumps`, in the worker pool when the body is large (off the event loop)."""
    if _text_at_least(body, _OFFLOAD_CHARS):
        return await pipeline.offload(dumps, body)
    return dumps(body)


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


class HttpClient:
    """JSON over HTTP for one provider instance: a pooled session per event loop.

    ``where`` (provider, model) and ``secrets`` label and redact every error raised.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        headers: Mapping[str, str],
        secrets: tuple[str | None, ...] = (),
    ) -> None:
        self.provider = provider
        self.model = model
        self.headers = {"Content-Type": "application/json", **headers}
        self._secrets = secrets
        self._sessions: PerLoop[aiohttp.ClientSession] = PerLoop(
            self._new_session, close=_close_session
        )
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._proxies: dict[tuple[str, str], tuple[str | None, aiohttp.BasicAuth | None]] = {}
        self._by_url: dict[str, tuple[str | None, aiohttp.BasicAuth | None]] = {}

    def _new_session(self) -> aiohttp.ClientSession:
        # limit=0: vlgate's own semaphore bounds concurrency; a second cap here only queues.
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        # No cookie jar (APIs set none vlgate needs) and no trust_env: aiohttp would look up
        # netrc and the proxy in a worker thread on every request; _proxy() does it once per host.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    def _proxy(self, url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
        """The proxy for ``url`` from HTTP(S)_PROXY / NO_PROXY, as the openai SDK's httpx took it;
        looked up once per scheme and host."""
        found = self._by_url.get(url)  # a provider POSTs to one or two URLs: skip the parse
        if found is not None:
            return found
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._proxies.get(key)
        if found is None:
            try:
                proxy, auth = get_env_proxy_for_url(URL(url))
                found = (str(proxy), auth)
            except LookupError:
                found = (None, None)
            self._proxies[key] = found
        if len(self._by_url) < 64:
            self._by_url[url] = found
        return found

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        t = self._timeouts.get(seconds)
        if t is None:
            # Per phase, as the openai SDK's httpx timeout was: connecting, and each wait for
            # the next bytes. A slow upload or a long answer still streaming is not a timeout.
            t = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=None, sock_connect=seconds, sock_read=seconds
            )
        return t

    def _merged(self, extra: Mapping[str, str] | None) -> Mapping[str, str]:
        return {**self.headers, **extra} if extra else self.headers

    def _transport(self, exc: BaseException, timeout: float) -> errors.ProviderError:
        return error_for_transport(
            exc, provider=self.provider, model=self.model, timeout=timeout, secrets=self._secrets
        )

    def _status(self, status: int, headers: Mapping[str, str], raw: bytes) -> errors.ProviderError:
        return error_for_status(
            status, raw, headers, provider=self.provider, model=self.model, secrets=self._secrets
        )

    async def request(
        self,
        url: str,
        body: bytes | None,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        max_bytes: int | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send ``body`` (POST unless ``method`` says otherwise); return (status, headers, raw
        body). Transport faults are raised mapped. ``max_bytes``: a body past it is not read
        (memory stays bounded) and is a non-retried ``ProviderError``."""
        session = self._sessions.get()
        proxy, proxy_auth = self._proxy(url)
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=self._merged(headers),
                timeout=self._timeout(timeout),
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as resp:
                if max_bytes is None:
                    raw = await resp.read()
                else:
                    raw = await self._capped(resp, max_bytes)
                return resp.status, resp.headers, raw
        except _TRANSPORT_ERRORS as exc:
            failure = self._transport(exc, timeout)
        # Raised outside the handler: aiohttp errors may hold the request and its headers.
        raise failure

    async def _capped(self, resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
        too_big = errors.ProviderError(
            f"the answer is over {max_bytes:,} bytes, more than vlgate reads",
            status=resp.status,
            provider=self.provider,
            model=self.model,
            retryable=False,
        )
        if (resp.content_length or 0) > max_bytes:
            raise too_big
        data = bytearray()
        async for chunk in resp.content.iter_chunked(1 << 20):
            data += chunk
            if len(data) > max_bytes:
                raise too_big
        return bytes(data)

    async def warm(self, url: str, *, timeout: float) -> None:
        """Open a pooled connection (TCP and TLS) to ``url``'s host on this loop now, so the
        first answer does not pay for it: one bare ``GET`` (no key sent), any answer.

        Best effort: a server that is down is reported by the first real request instead."""
        session = self._sessions.get()
        proxy, proxy_auth = self._proxy(url)
        try:
            async with session.get(
                url, timeout=self._timeout(timeout), proxy=proxy, proxy_auth=proxy_auth
            ) as resp:
                await resp.read()
        except _TRANSPORT_ERRORS as exc:
            log.debug("warm-up of %s: %s", self.provider, type(exc).__name__)

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` as JSON and return the parsed JSON object of a 2xx answer.

        Raises the mapped vlgate error for a non-2xx status; a 2xx body that is not a JSON
        object is a retried ``ProviderError`` (a proxy's HTML page, a body cut short).
        """
        status, resp_headers, raw = await self.request(
            url, await adumps(body), timeout=timeout, headers=headers
        )
        return self.json_of(status, resp_headers, raw)

    async def get_json(
        self, url: str, *, timeout: float, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET`` ``url`` and return the parsed JSON object of a 2xx answer (as
        :meth:`post_json`)."""
        status, resp_headers, raw = await self.request(
            url, None, timeout=timeout, headers=headers, method="GET"
        )
        return self.json_of(status, resp_headers, raw)

    async def get_bytes(
        self,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> bytes:
        """``GET`` ``url`` and return the raw body of a 2xx answer (a results file), at most
        ``max_bytes`` (see :meth:`request`)."""
        status, resp_headers, raw = await self.request(
            url, None, timeout=timeout, headers=headers, method="GET", max_bytes=max_bytes
        )
        if status >= 300:
            raise self._status(status, resp_headers, raw)
        return raw

    def json_of(self, status: int, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        """The JSON object of an answer: the mapped error for a non-2xx status, a retried
        ``ProviderError`` for a 2xx body that is not a JSON object."""
        if status >= 300:
            raise self._status(status, headers, raw)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise malformed_answer(
                f"not JSON: {str(exc)[:80]}",
                provider=self.provider,
                model=self.model,
                status=status,
            ) from None
        if not isinstance(data, dict):
            raise malformed_answer(
                "not a JSON object", provider=self.provider, model=self.model, status=status
            )
        return data

    async def sse(
        self,
        url: str,
        body: Any,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[str | None, str]]:
        """POST ``body`` and yield its server-sent events as ``(event name or None, data)``.

        A server that ignores ``"stream": true`` and answers with one JSON document yields it
        once as ``("application/json", text)``.

        ``timeout`` bounds connecting and each wait for the next bytes, not the whole stream
        (the same as for :meth:`request`).
        """
        session = self._sessions.get()
        limits = self._timeout(timeout)
        failure: errors.VlgateError | None = None
        payload = await adumps(body)
        try:
            proxy, proxy_auth = self._proxy(url)
            async with session.post(
                url,
                data=payload,
                headers=self._merged(headers),
                timeout=limits,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as resp:
                if resp.status >= 300:
                    raise self._status(resp.status, resp.headers, await resp.read())
                if resp.content_type == "application/json":
                    yield "application/json", (await resp.read()).decode("utf-8", "replace")
                    return
                event: str | None = None
                data: list[str] = []
                async for raw_line in resp.content:
                    line = raw_line.decode("utf-8").rstrip("\r\n")
                    if not line:
                        if data:
                            yield event, "\n".join(data)
                        event, data = None, []
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip(" ") if len(line) > 5 else "")
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    # ``id:``, ``retry:`` and ``:`` comments carry nothing vlgate needs.
                if data:
                    yield event, "\n".join(data)
        except errors.VlgateError:
            raise
        except _TRANSPORT_ERRORS as exc:
            failure = self._transport(exc, timeout)
        if failure is not None:
            raise failure  # outside the handler, as in request()

    def parse_event(self, data: str) -> Any:
        """One event's JSON; a fragment that is not JSON is a malformed (retried) answer."""
        try:
            return json.loads(data)
        except ValueError as exc:
            raise malformed_answer(
                f"stream event is not JSON ({str(exc)[:80]})",
                provider=self.provider,
                model=self.model,
            ) from None

    def cut_short(self) -> errors.ConnectionError:
        """The error for a stream that ended before its final event."""
        return errors.ConnectionError(
            "the stream ended before the answer was complete",
            provider=self.provider,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Close the current event loop's session (its pooled connections)."""
        session = self._sessions.pop()
        if session is not None:
            await session.close()


class HttpProvider(Provider):
    """A provider that answers with JSON POSTs on its own :class:`HttpClient`.

    Written once here: the client (the subclass's fixed headers, then ``extra_headers``, then
    the key), the warm-up, the POST of a built body with the request's timeout and headers, and
    closing. A subclass names its endpoint (:meth:`endpoint`) and how a key is sent
    (:meth:`key_headers`), then builds bodies and reads answers.

    Example:
        >>> class Echo(HttpProvider):  # doctest: +SKIP
        ...     def endpoint(self, base: str) -> str:
        ...         return base.rstrip("/") + "/echo"
        ...     async def complete(self, request):
        ...         return Completion(text=str(await self.post({"q": 1}, request)))
    """

    fixed_headers: ClassVar[Mapping[str, str]] = {}
    """Headers on every request, under the caller's ``extra_headers``."""

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        super().__init__(route, config, api_key, api_base)
        self._url = self.endpoint(api_base or route.provider.base_url or "")
        headers = {**self.fixed_headers, **config.extra_headers}
        if api_key:
            headers.update(self.key_headers(api_key))
        self._http = HttpClient(
            provider=route.provider.name, model=route.model, headers=headers, secrets=(api_key,)
        )

    @abstractmethod
    def endpoint(self, base: str) -> str:
        """The URL answers are POSTed to, from the API base (``api_base`` or the registry's)."""

    def key_headers(self, api_key: str) -> dict[str, str]:
        """How the key travels: a bearer token unless the API says otherwise."""
        return {"Authorization": f"Bearer {api_key}"}

    def _where(self) -> dict[str, Any]:
        """``provider`` and ``model``, the labels of every error this provider raises."""
        return {"provider": self.route.provider.name, "model": self.route.model}

    async def post(
        self, body: dict[str, Any], request: ChatRequest, url: str | None = None
    ) -> dict[str, Any]:
        """POST ``body`` to ``url`` (default: :meth:`endpoint`) with the request's timeout and
        extra headers; the answer's JSON object."""
        return await self._http.post_json(
            url or self._url, body, timeout=request.timeout, headers=request.extra_headers or None
        )

    def stream_chunk(self, data: str) -> dict[str, Any]:
        """One streamed ``data:`` event as a JSON object; an ``{"error": {"code": N}}`` event
        (OpenAI-compatible servers, Gemini) raises the error status ``N`` maps to."""
        chunk = self._http.parse_event(data)
        if not isinstance(chunk, dict):
            raise malformed_answer("stream chunk is not a JSON object", **self._where())
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            code = err.get("code")
            raise error_for_status(
                code if isinstance(code, int) else 500,
                data,
                secrets=(self._api_key,),
                **self._where(),
            )
        return chunk

    def batch_api(self) -> BatchApi | None:
        """The Batch API the registry row names (``ProviderSpec.batch``) through this provider's
        :meth:`batch_adapter`; ``None`` when the row names none."""
        name = self.route.provider.batch
        if name is None:
            return None
        from ..registry import BATCH_APIS

        return self.batch_adapter(BATCH_APIS[name])

    def batch_adapter(self, spec: BatchSpec) -> BatchApi:
        """The :class:`~vlgate.providers._batch.BatchApi` speaking this provider's Batch API
        (``spec``); asked only when the registry row names one."""
        raise NotImplementedError(f"{type(self).__name__} has no Batch API adapter")

    async def warmup(self) -> None:
        """Open the connection to the endpoint now (``VlModel.start``; ``HttpClient.warm``)."""
        await self._http.warm(self._url, timeout=min(self.config.timeout, 10.0))

    async def aclose(self) -> None:
        await self._http.aclose()
