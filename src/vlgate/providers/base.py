"""The provider interface and the provider-neutral request/response types.

A provider turns a :class:`ChatRequest` into its wire format, sends it once (no retries — the
runtime owns retrying), and maps its SDK's exceptions to vlgate errors at that one boundary.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .schema import strict_schema

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..image import EncodedImage
    from ..registry import Route
    from ._batch import BatchApi

__all__ = [
    "ChatRequest",
    "Completion",
    "Message",
    "Provider",
    "Task",
    "Usage",
    "response_format",
    "split_params",
    "to_openai_messages",
]

log = logging.getLogger("vlgate")


@dataclass(frozen=True)
class Message:
    """One chat message: a role and an ordered list of text strings and encoded images."""

    role: str
    parts: tuple[str | EncodedImage, ...]


@dataclass(frozen=True)
class ChatRequest:
    """What to send, independent of any wire format."""

    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    """Caller parameters (temperature, max_tokens, seed, stop, ...), not yet filtered."""
    json_schema: dict[str, Any] | None = None
    """``{"name": ..., "schema": {...}}`` when native structured output is wanted."""
    json_mode: bool = False
    """Ask for a JSON object (``response_format={"type": "json_object"}``)."""
    timeout: float = 60.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    """Per-call HTTP headers (``extra_headers=`` kwarg), on top of the model's own."""

    @property
    def images(self) -> list[EncodedImage]:
        return [p for m in self.messages for p in m.parts if not isinstance(p, str)]


@dataclass
class Usage:
    """Token usage of one answer (or a running total). ``cost`` is in US dollars when known.

    ``discount`` is the price factor ``cost`` was computed with: ``0.5`` for an answer from a
    provider Batch API (``VlModel.submit_batch``: the list price times the batch discount);
    ``None`` for the list price (or a total mixing both).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int | None = None
    cost: float | None = None
    requests: int = 0
    discount: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost is None and other.cost is None
            else (self.cost or 0) + (other.cost or 0)
        )
        images = (
            None
            if self.image_tokens is None and other.image_tokens is None
            else (self.image_tokens or 0) + (other.image_tokens or 0)
        )
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            images,
            cost,
            self.requests + other.requests,
            _discount(self, other),
        )


def count_of(value: Any, cap: int = 10**12) -> int:
    """A count read from a provider's JSON (tokens, requests): a non-negative int (a string of
    digits too: proto JSON writes int64 as strings), ``0`` for anything else (another string,
    ``NaN``, ``Infinity``, a negative number, a bool), at most ``cap``.

    Example:
        >>> [count_of(v) for v in (12, "7", "x", float("nan"), -3, 2.0, True, None)]
        [12, 7, 0, 0, 0, 2, 0, 0]
    """
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not (value == value and abs(value) < 1e18):
        return 0
    return min(max(int(value), 0), cap)


def _discount(a: Usage, b: Usage) -> float | None:
    """The price factor of a sum: an empty side takes the other's; a mix is ``None``."""
    if not (a.requests or a.total_tokens):
        return b.discount
    if not (b.requests or b.total_tokens):
        return a.discount
    return a.discount if a.discount == b.discount else None


@dataclass
class Completion:
    """One answer from a provider."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    finish_reason: str | None = None
    dropped_params: tuple[str, ...] = ()
    dropped_reasons: dict[str, str] = field(default_factory=dict)
    """Why each dropped parameter was dropped (the API is known to reject it)."""


@dataclass(frozen=True)
class Task:
    """What a request is for. It picks the provider method that answers (:meth:`Provider.complete`,
    :meth:`Provider.caption` or :meth:`Provider.ground`) and keeps native calls apart in the
    cache; it is never sent, so :class:`ChatRequest` stays free of provider specifics.

    Example:
        >>> Task("detect", "mug").name
        'detect'
    """

    name: Literal["query", "caption", "detect", "point"] = "query"
    target: str | None = None

    async def send(self, provider: Provider, request: ChatRequest) -> Completion:
        """Ask ``provider`` through the method this task needs."""
        if self.name == "caption":
            return await provider.caption(request)
        if self.name == "detect" or self.name == "point":
            return await provider.ground(request, self.name, self.target or "")
        return await provider.complete(request)


QUERY = Task()


def split_params(
    params: dict[str, Any], supported: frozenset[str], provider: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keep the parameters the provider takes; drop the rest with a debug log naming them."""
    kept = {k: v for k, v in params.items() if k in supported}
    dropped = tuple(sorted(k for k in params if k not in supported))
    if dropped:
        log.debug("%s does not take %s; dropped", provider, ", ".join(dropped))
    return kept, dropped


def to_openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The OpenAI chat format: images as data URIs whose MIME type was sniffed from the bytes."""
    out: list[dict[str, Any]] = []
    for msg in request.messages:
        if all(isinstance(p, str) for p in msg.parts):
            out.append({"role": msg.role, "content": "".join(str(p) for p in msg.parts)})
            continue
        content: list[dict[str, Any]] = []
        for part in msg.parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                content.append({"type": "image_url", "image_url": {"url": part.data_uri}})
        out.append({"role": msg.role, "content": content})
    return out


def response_format(request: ChatRequest, *, strict: bool = False) -> dict[str, Any] | None:
    """The OpenAI-style ``response_format`` for a request's JSON schema or JSON mode.

    ``strict``: the API takes OpenAI's ``strict: true``; it is sent when the schema allows it
    (see :func:`vlgate.providers.schema.strict_schema`).
    """
    if request.json_schema is not None:
        schema = request.json_schema["schema"]
        spec: dict[str, Any] = {"name": request.json_schema.get("name", "answer")}
        strict_form = strict_schema(schema) if strict else None
        if strict_form is not None:
            spec.update(schema=strict_form, strict=True)
        else:
            spec["schema"] = schema
        return {"type": "json_schema", "json_schema": spec}
    if request.json_mode:
        return {"type": "json_object"}
    return None


class Provider(ABC):
    """A way to reach models. Subclasses implement :meth:`complete` (and :meth:`stream`).

    One instance serves one :class:`~vlgate.VlModel`; it may be used from several event loops
    (the sync facade runs on vlgate's own loop), so clients are created per loop.
    """

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        self.route = route
        self.config = config
        self._api_key = api_key
        self.api_base = api_base

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.route.model!r}, api_base={self.api_base!r})"

    def api_key_for_transfer(self) -> str | None:
        """The resolved key, for :meth:`VlModel.portable_config` only (never log it)."""
        return self._api_key

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Completion:
        """Send one request and return the answer; raise vlgate errors only."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        """Yield text deltas. A provider that learns the token counts (OpenAI's last chunk with
        ``include_usage``) may also yield one :class:`Usage` (``requests=0``); the attempt loop
        takes it off the stream and accounts it. The default sends one request and yields the
        whole answer and its usage."""
        completion = await self.complete(request)
        yield completion.text
        yield Usage(
            completion.usage.input_tokens,
            completion.usage.output_tokens,
            completion.usage.image_tokens,
            completion.usage.cost,
        )

    # --- optional capabilities: no-op or generic defaults, overridden where a provider has more

    async def warmup(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Do slow one-time work now (a local model loads its weights); ``VlModel.start()``."""

    async def caption(self, request: ChatRequest) -> Completion:
        """Describe the image. ``request`` carries ``caption_prompt``; the default sends it.

        A provider with its own caption call (Moondream ``/caption``) overrides this.
        """
        return await self.complete(request)

    async def ground(
        self, request: ChatRequest, task: Literal["detect", "point"], target: str
    ) -> Completion:
        """Detect or point at ``target``. ``request`` carries the family's native grounding
        prompt; the default sends it. A provider with its own detect/point calls (Moondream)
        overrides this and answers in its family's coordinate convention."""
        return await self.complete(request)

    def batch_api(self) -> BatchApi | None:
        """The provider's Batch API (:mod:`vlgate.providers._batch`), or ``None`` when it has
        none (the default). ``VlModel.submit_batch`` raises a ``ConfigError`` for ``None``."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections held for the current event loop."""
