"""``VlModel``: ask a vision-language model about images. Async core, thin sync facade.

Every public method has an async twin prefixed with ``a`` (``query`` / ``aquery``). The sync
methods run the async ones on vlgate's background event loop, so there is one implementation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from . import planning
from .config import ModelConfig, resolve_api_base, resolve_api_key
from .errors import ConfigError, ResponseError, VlgateError
from .grounding import (
    Detections,
    Points,
    detection_prompt,
    get_convention,
    parse_detections,
    parse_points,
    point_prompt,
)
from .image import EncodedImage, Image, ImageInput
from .jsonparse import extract_json
from .providers import Completion, Message, Provider, Usage, provider_class
from .registry import Route, resolve
from .runtime.loop import iterate_sync, run_sync
from .runtime.retry import with_retries

__all__ = ["Answer", "VlModel", "create"]

log = logging.getLogger("vlgate")
M = TypeVar("M", bound=BaseModel)


class Answer(str):
    """The text of an answer — a ``str`` — carrying how it was obtained.

    Attributes:
        usage: tokens (and cost, when priced) of this answer.
        model: the model that answered, as the provider reported it.
        attempts: how many attempts it took (1 = no retry).
        latency: seconds from the first attempt to the answer.
        dropped_params: caller parameters the provider could not take.
    """

    usage: Usage
    model: str | None
    attempts: int
    latency: float
    finish_reason: str | None
    dropped_params: tuple[str, ...]

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
    ) -> Answer:
        obj = super().__new__(cls, text)
        obj.usage = usage or Usage()
        obj.model = model
        obj.attempts = attempts
        obj.latency = latency
        obj.finish_reason = finish_reason
        obj.dropped_params = dropped_params
        return obj


_JSON_INSTRUCTION = "Reply with JSON only, no prose and no code fences."


class VlModel:
    """A configured connection to one vision-language model.

    Build it with :func:`vlgate.create`. Use it as a context manager (sync or async) or call
    :meth:`stop` when done.

    Example:
        >>> model = vlgate.create("openai/gpt-4o-mini")            # doctest: +SKIP
        >>> model.query("photo.jpg", "How many people are there?")  # doctest: +SKIP
        'Three.'
    """

    def __init__(self, config: ModelConfig) -> None:
        self._config = config
        self._route = resolve(config.model, family=config.family)
        # Raises ConfigError (naming the env var) before any request is possible.
        self._api_key = resolve_api_key(config, self._route)
        self._api_base = resolve_api_base(config, self._route)
        cls = provider_class(self._route.provider)
        self._provider: Provider = cls(self._route, config, self._api_key, self._api_base)
        self._convention = get_convention(self._route.family.grounding)
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._usage = Usage()
        self._usage_lock = threading.Lock()

    # --- introspection ------------------------------------------------------------------------

    @property
    def config(self) -> ModelConfig:
        """The validated configuration (keys masked in its repr)."""
        return self._config

    @property
    def route(self) -> Route:
        """Provider, service limits and model family this model resolved to."""
        return self._route

    @property
    def usage(self) -> Usage:
        """Tokens and cost of every answer so far."""
        with self._usage_lock:
            return Usage(**vars(self._usage))

    def __repr__(self) -> str:
        return (
            f"VlModel(model={self._config.model!r}, provider={self._route.provider.name!r}, "
            f"family={self._route.family.name!r})"
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def astart(self) -> VlModel:
        """Nothing to open eagerly; connections open on first use. Returns self."""
        return self

    async def astop(self) -> None:
        """Close the connections this model holds on the current event loop."""
        await self._provider.aclose()

    def start(self) -> VlModel:
        return self

    def stop(self) -> None:
        """Close the connections held on vlgate's background loop."""
        run_sync(self._provider.aclose())

    def __enter__(self) -> VlModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> VlModel:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # --- internals ----------------------------------------------------------------------------

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            for old in [lp for lp in self._semaphores if lp.is_closed()]:
                del self._semaphores[old]
            sem = self._semaphores[loop] = asyncio.Semaphore(self._config.max_concurrency)
        return sem

    async def _load(self, image: ImageInput) -> Image:
        return await Image.aload(image, allow_private_urls=self._config.allow_private_urls)

    def _encode(self, image: Image, n_images: int = 1) -> EncodedImage:
        return planning.encode_for(image, self._route, self._config, n_images=n_images)

    async def _send(
        self,
        images: Sequence[EncodedImage],
        prompt: str,
        params: dict[str, Any],
        **request_options: Any,
    ) -> Answer:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("prompt must be a non-empty string")
        timeout = params.pop("timeout", None)
        request = planning.build_request(
            self._route, self._config, images, prompt, params, timeout=timeout, **request_options
        )
        started = time.perf_counter()
        async with self._semaphore():
            completion, attempts = await with_retries(
                lambda: self._provider.complete(request),
                max_retries=self._config.max_retries,
                backoff_base=self._config.backoff_base,
                backoff_max=self._config.backoff_max,
            )
        return self._answer(completion, attempts, time.perf_counter() - started)

    def _answer(self, completion: Completion, attempts: int, latency: float) -> Answer:
        with self._usage_lock:
            self._usage = self._usage + completion.usage
        return Answer(
            completion.text,
            usage=completion.usage,
            model=completion.model,
            attempts=attempts,
            latency=latency,
            finish_reason=completion.finish_reason,
            dropped_params=completion.dropped_params,
        )

    # --- free-form questions ------------------------------------------------------------------

    async def aquery(self, image: ImageInput, prompt: str, **kwargs: Any) -> Answer:
        """Ask one question about one image. ``kwargs`` (temperature, max_tokens, seed, stop,
        ``timeout``...) reach the provider; ones it cannot take are dropped with a debug log."""
        img = await self._load(image)
        return await self._send([self._encode(img)], prompt, kwargs)

    async def acaption(self, image: ImageInput, **kwargs: Any) -> Answer:
        """A short description of the image."""
        return await self.aquery(image, self._config.caption_prompt, **kwargs)

    async def aquery_multi(
        self, image: ImageInput, prompts: Sequence[str], **kwargs: Any
    ) -> list[Answer]:
        """Several questions about one image: one answer per prompt, image encoded once."""
        prompts = _check_prompts(prompts)
        encoded = self._encode(await self._load(image))
        return list(
            await asyncio.gather(*(self._send([encoded], p, dict(kwargs)) for p in prompts))
        )

    async def aquery_batch(
        self,
        images: Sequence[ImageInput],
        prompt: str,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Answer | VlgateError]:
        """One question about each image: one answer per image, in input order.

        Requests run concurrently, at most ``max_concurrency`` at a time. With
        ``return_exceptions=True`` a failed item is its exception in the list; otherwise every
        image is loaded and checked first (a bad image raises before anything is sent) and the
        first failure raises.
        """
        if not isinstance(images, Sequence) or isinstance(images, str | bytes):
            raise ConfigError("images must be a list of images")

        async def one(img: ImageInput | Image) -> Answer:
            loaded = img if isinstance(img, Image) else await self._load(img)
            return await self._send([self._encode(loaded)], prompt, dict(kwargs))

        if return_exceptions:
            results = await asyncio.gather(*(one(i) for i in images), return_exceptions=True)
            out: list[Answer | VlgateError] = []
            for r in results:
                if isinstance(r, VlgateError | Answer):
                    out.append(r)
                elif isinstance(r, BaseException):
                    raise r
            return out
        loaded = [await self._load(i) for i in images]
        return list(await asyncio.gather(*(one(i) for i in loaded)))

    async def aquery_images(self, images: Sequence[ImageInput], prompt: str, **kwargs: Any) -> Answer:
        """One question about several images together, in one request."""
        if not isinstance(images, Sequence) or isinstance(images, str | bytes) or not images:
            raise ConfigError("images must be a non-empty list of images")
        cap = self._route.service.limits.max_images
        if cap is not None and len(images) > cap:
            raise ConfigError(
                f"{self._route.service.name} takes at most {cap} images per request, "
                f"got {len(images)}; use query_batch for one answer per image"
            )
        loaded = [await self._load(i) for i in images]
        encoded = [self._encode(i, n_images=len(loaded)) for i in loaded]
        return await self._send(encoded, prompt, kwargs)

    async def astream(self, image: ImageInput, prompt: str, **kwargs: Any) -> AsyncIterator[str]:
        """Yield the answer as text deltas as they arrive."""
        encoded = self._encode(await self._load(image))
        timeout = kwargs.pop("timeout", None)
        request = planning.build_request(
            self._route, self._config, [encoded], prompt, kwargs, timeout=timeout
        )
        async with self._semaphore():
            async for delta in self._provider.stream(request):
                yield delta

    # --- structured output --------------------------------------------------------------------

    @overload
    async def aquery_json(
        self, image: ImageInput, prompt: str, schema: type[M], **kwargs: Any
    ) -> M: ...

    @overload
    async def aquery_json(
        self, image: ImageInput, prompt: str, schema: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any: ...

    async def aquery_json(
        self,
        image: ImageInput,
        prompt: str,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Ask for JSON: parsed, or a validated instance when ``schema`` is a pydantic model.

        Uses the provider's native JSON-schema mode where it has one; otherwise the prompt asks
        for JSON and the answer is extracted tolerantly. One repair attempt tells the model what
        was wrong; a second failure raises :class:`~vlgate.ResponseError` with the raw text.
        """
        model_cls = schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None
        if schema is not None and model_cls is None and not isinstance(schema, dict):
            raise ConfigError("schema must be a pydantic model class or a JSON-schema dict")
        schema_dict = model_cls.model_json_schema() if model_cls else schema
        native = self._native_json()
        full_prompt = f"{prompt}\n\n{_JSON_INSTRUCTION}"
        if schema_dict is not None:
            full_prompt += "\nThe JSON must match this JSON schema:\n" + json.dumps(schema_dict)
        options: dict[str, Any] = {}
        if native and schema_dict is not None:
            name = model_cls.__name__ if model_cls else str(schema_dict.get("title", "answer"))
            options["json_schema"] = {"name": _schema_name(name), "schema": schema_dict}
        elif native:
            options["json_mode"] = True

        encoded = self._encode(await self._load(image))
        answer = await self._send([encoded], full_prompt, dict(kwargs), **options)
        try:
            return _validate_json(answer, model_cls, schema_dict)
        except ResponseError as first:
            log.debug("JSON answer unusable (%s); asking once more", first)
            repair = (
                f"Your answer could not be used: {first}. Reply again with only the corrected "
                "JSON."
            )
            history = (Message("assistant", (str(answer),)), Message("user", (repair,)))
            fixed = await self._send(
                [encoded], full_prompt, dict(kwargs), history=history, **options
            )
            return _validate_json(fixed, model_cls, schema_dict)

    def _native_json(self) -> bool:
        fam = self._route.family.native_json_schema
        return self._route.provider.native_json_schema if fam is None else fam

    # --- grounding ----------------------------------------------------------------------------

    async def adetect(self, image: ImageInput, target: str, **kwargs: Any) -> Detections:
        """Boxes of ``target`` in pixels of the original image, whichever model family answers."""
        img = await self._load(image)
        encoded = self._encode(img)
        seen = planning.model_input_size(encoded, self._route, self._config)
        prompt = detection_prompt(self._convention, target, seen)
        answer = await self._send([encoded], prompt, kwargs)
        found = parse_detections(answer, self._convention, img.size, model_input_size=seen)
        if not found:
            log.debug("no detections parsed from answer: %.200s", answer)
        return Detections(found, image_size=img.size)

    async def apoint(self, image: ImageInput, target: str, **kwargs: Any) -> Points:
        """Points on ``target`` in pixels of the original image."""
        img = await self._load(image)
        encoded = self._encode(img)
        seen = planning.model_input_size(encoded, self._route, self._config)
        prompt = point_prompt(self._convention, target, seen)
        answer = await self._send([encoded], prompt, kwargs)
        found = parse_points(answer, self._convention, img.size, model_input_size=seen)
        if not found:
            log.debug("no points parsed from answer: %.200s", answer)
        return Points(found, image_size=img.size)

    # --- sync facade --------------------------------------------------------------------------

    def query(self, image: ImageInput, prompt: str, **kwargs: Any) -> Answer:
        """Sync :meth:`aquery`."""
        return run_sync(self.aquery(image, prompt, **kwargs))

    def caption(self, image: ImageInput, **kwargs: Any) -> Answer:
        """Sync :meth:`acaption`."""
        return run_sync(self.acaption(image, **kwargs))

    def query_multi(self, image: ImageInput, prompts: Sequence[str], **kwargs: Any) -> list[Answer]:
        """Sync :meth:`aquery_multi`."""
        return run_sync(self.aquery_multi(image, prompts, **kwargs))

    def query_batch(
        self,
        images: Sequence[ImageInput],
        prompt: str,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Answer | VlgateError]:
        """Sync :meth:`aquery_batch`."""
        return run_sync(
            self.aquery_batch(images, prompt, return_exceptions=return_exceptions, **kwargs)
        )

    def query_images(self, images: Sequence[ImageInput], prompt: str, **kwargs: Any) -> Answer:
        """Sync :meth:`aquery_images`."""
        return run_sync(self.aquery_images(images, prompt, **kwargs))

    def query_json(
        self,
        image: ImageInput,
        prompt: str,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Sync :meth:`aquery_json`."""
        return run_sync(self.aquery_json(image, prompt, schema, **kwargs))

    def detect(self, image: ImageInput, target: str, **kwargs: Any) -> Detections:
        """Sync :meth:`adetect`."""
        return run_sync(self.adetect(image, target, **kwargs))

    def point(self, image: ImageInput, target: str, **kwargs: Any) -> Points:
        """Sync :meth:`apoint`."""
        return run_sync(self.apoint(image, target, **kwargs))

    def stream(self, image: ImageInput, prompt: str, **kwargs: Any) -> Iterator[str]:
        """Sync :meth:`astream`: a blocking iterator of text deltas."""
        return iterate_sync(self.astream(image, prompt, **kwargs))  # type: ignore[no-any-return]


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise ConfigError("prompts must be a list of strings")
    return list(prompts)


def _schema_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "answer"


def _validate_json(
    text: str, model_cls: type[BaseModel] | None, schema: dict[str, Any] | None
) -> Any:
    data = extract_json(text)
    if model_cls is not None:
        try:
            return model_cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'root'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise ResponseError(f"JSON does not match the schema: {problems}", raw=text) from None
    if schema is not None:
        _check_schema_shape(data, schema, text)
    return data


def _check_schema_shape(data: Any, schema: dict[str, Any], raw: str) -> None:
    """A light check for dict schemas: top-level type and required keys."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(data, dict):
            raise ResponseError("expected a JSON object", raw=raw)
        missing = [k for k in schema.get("required", []) if k not in data]
        if missing:
            raise ResponseError(f"JSON is missing required keys: {', '.join(missing)}", raw=raw)
    elif kind == "array" and not isinstance(data, list):
        raise ResponseError("expected a JSON array", raw=raw)


def create(model: str | None = None, /, **config: Any) -> VlModel:
    """Create a :class:`VlModel` for a model string.

    ``model`` is ``provider/model`` (``openai/gpt-4o-mini``, ``qwen/qwen-vl-max``,
    ``ollama/qwen2.5vl:7b``, ``vllm/Qwen/Qwen2.5-VL-7B-Instruct``) or any LiteLLM model string
    (``anthropic/claude-sonnet-4-6``, ``gemini/gemini-2.5-flash``, ``bedrock/...``), or a short
    provider name with ``model_name=...`` (``create("litellm", model_name="anthropic/...")``).
    ``config`` are :class:`~vlgate.ModelConfig` options.

    Raises:
        ConfigError: unknown model or option, or no API key for a hosted provider (the error
            names the env var to set). Nothing is sent.

    Example:
        >>> m = vlgate.create("anthropic/claude-sonnet-4-6", api_key="...", max_concurrency=8)  # doctest: +SKIP
    """
    model_name = config.pop("model_name", None)
    if model is None:
        model = config.pop("model", None) or model_name
        model_name = None
    if model is None:
        raise ConfigError("create() needs a model, e.g. create('openai/gpt-4o-mini')")
    if model_name:
        model = f"{model}/{model_name}"
    return VlModel(ModelConfig.build(model=model, **config))

