"""``VlModel``: ask a vision-language model about images. Async core, thin sync facade.

Every public method has an async twin prefixed with ``a`` (``query`` / ``aquery``). The sync
methods run the async ones on vlgate's background event loop, so there is one implementation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel, SecretStr

from . import planning
from ._attempts import Answer, AttemptLoop, Engine, Stream, fallback_config
from .asks import (
    DETECT,
    POINT,
    GroundingTask,
    JsonAsk,
    both_turns,
    off_loop_if_large,
    validate_json,
)
from .config import ModelConfig
from .errors import ConfigError, ResponseError, VlgateError
from .grounding import (
    Detections,
    Points,
)
from .image import MAX_PIXELS, Image, ImageInput
from .image.load import check_in_memory
from .providers import Message, Usage
from .providers.base import Task
from .registry import Route
from .runtime import pipeline
from .runtime.cache import open_cache
from .runtime.concurrency import ConcurrencyLimit
from .runtime.hooks import Hook
from .runtime.limiter import RateLimiter
from .runtime.loop import close_at_exit, iterate_sync, run_sync, sync_twin
from .runtime.watch import FrameWatch, SyncFrameWatch

if TYPE_CHECKING:
    from .batches import BatchJob, BatchTask

__all__ = ["Answer", "VlModel", "create"]

log = logging.getLogger("vlgate")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


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
        # Raises ConfigError (naming the env var) before any request is possible.
        self._engines = [Engine(config)] + [
            Engine(fallback_config(config, fb)) for fb in config.fallbacks
        ]
        self._primary = self._engines[0]
        for engine in self._engines:
            close_at_exit(engine.provider)
        self._concurrency = ConcurrencyLimit(
            config.max_concurrency or self._primary.route.provider.concurrency,
            adaptive=config.adaptive_concurrency,
            initial=config.initial_concurrency,
        )
        cache = open_cache(config.cache, ttl=config.cache_ttl, max_bytes=config.cache_max_bytes)
        # Every call shape goes through this one loop (retry, fallback, limiter, cache, usage).
        self._loop = AttemptLoop(config, self._engines, cache, self._concurrency)

    # --- introspection ------------------------------------------------------------------------

    @property
    def config(self) -> ModelConfig:
        """The validated configuration (keys masked in its repr)."""
        return self._config

    @property
    def route(self) -> Route:
        """Provider, service limits and model family this model resolved to."""
        return self._primary.route

    @property
    def usage(self) -> Usage:
        """Tokens and cost of every answer so far."""
        return self._loop.usage

    def add_hook(self, hook: Hook, *, content: bool = False) -> None:
        """Call ``hook`` with an event record at every request, retry, error and response.

        The events (:mod:`vlgate.runtime.hooks`) carry names, counts, sizes and timings, never
        image bytes or keys; prompts and answers only with ``content=True``. A hook that raises
        is logged and ignored.

        Example:
            >>> model.add_hook(lambda event: print(type(event).__name__))  # doctest: +SKIP
        """
        self._loop.hooks.add(hook, content=content)

    def __repr__(self) -> str:
        route = self._primary.route
        return (
            f"VlModel(model={self._config.model!r}, provider={route.provider.name!r}, "
            f"family={route.family.name!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A model travels as its config (to Ray, Dask or multiprocessing workers) and the other
        # side builds its own clients. Keys resolved from this process's environment travel
        # inside the config (as secrets), so a worker needs no env var of its own.
        return (VlModel, (self.portable_config(),))

    def portable_config(self) -> ModelConfig:
        """This model's config with every key it resolved (from env vars too) filled in.

        What :func:`pickle` sends; build an equal model elsewhere with ``VlModel(config)``.
        The keys stay ``SecretStr`` (masked in reprs).

        Example:
            >>> cfg = model.portable_config()            # doctest: +SKIP
            >>> twin = vlgate.VlModel(cfg)               # doctest: +SKIP
        """
        keys = [engine.provider.api_key_for_transfer() for engine in self._engines]
        fallbacks: list[str | dict[str, Any]] = []
        for fb, key in zip(self._config.fallbacks, keys[1:], strict=True):
            spec = {"model": fb} if isinstance(fb, str) else dict(fb)
            if key and not spec.get("api_key"):
                spec["api_key"] = key
            fallbacks.append(spec)
        update: dict[str, Any] = {"fallbacks": fallbacks}
        if keys[0] and self._config.api_key is None:
            update["api_key"] = SecretStr(keys[0])
        return self._config.model_copy(update=update)

    def use_rate_limiter(self, limiter: RateLimiter) -> None:
        """Share one rate budget: the primary route takes its slots from ``limiter``.

        Anything with :class:`~vlgate.runtime.limiter.RateLimiter`'s ``acquire`` works, such
        as the cluster-wide budget of :mod:`vlgate.integrations.ray`.
        """
        self._primary.limiter = limiter

    # --- lifecycle ----------------------------------------------------------------------------

    async def astart(self) -> VlModel:
        """Do the slow work now rather than on the first question. Returns self.

        Every provider warms up, fallbacks included, concurrently: an HTTP provider opens its
        connection (TCP, TLS) to the endpoint on this loop, LiteLLM is imported with its
        route's code (seconds), a local model loads its weights. A server that is down is not
        an error here; the first request reports it.

        Example:
            >>> robot_vlm = vlgate.create("openai/gpt-4.1-mini").start()  # doctest: +SKIP
        """
        await asyncio.gather(*(engine.provider.warmup() for engine in self._engines))
        return self

    async def astop(self) -> None:
        """Close the connections this model holds on the current event loop."""
        for engine in self._engines:
            await engine.provider.aclose()

    def start(self) -> VlModel:
        """Sync :meth:`astart`."""
        return run_sync(self.astart())

    def stop(self) -> None:
        """Close the connections held on vlgate's background loop."""
        run_sync(self.astop())

    def __enter__(self) -> VlModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> VlModel:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # --- internals ----------------------------------------------------------------------------

    @property
    def max_concurrency(self) -> int:
        """The cap on requests in flight: ``max_concurrency``, or the provider's default."""
        return self._concurrency.maximum

    @property
    def concurrency(self) -> int:
        """Requests allowed in flight now: ``max_concurrency``, or the adapted limit when
        ``adaptive_concurrency`` is on."""
        return self._concurrency.limit

    async def _load(self, image: ImageInput) -> Image:
        if isinstance(image, Image):
            return image
        if isinstance(image, str) and image[:5].lower() != "data:" and "://" in image[:16]:
            return await Image.aload(image, allow_private_urls=self._config.allow_private_urls)
        # Decoding is CPU work: the worker pool, never the event loop.
        return await pipeline.cpu_bound(Image.load, image)

    async def _load_encoded(self, image: ImageInput, params: dict[str, Any]) -> Image:
        """:meth:`_load`, and on a one-route model a small numpy frame is read in place instead
        of copied: it is encoded here, before anything else runs on the loop, and that encoding
        is all the call uses (retries reuse it; no fallback route re-encodes). A model with
        fallbacks keeps its own copy, since a fallback encodes again later."""
        if len(self._engines) == 1 and pipeline.encodes_inline(image):
            borrowed = Image._borrow(image)
            if borrowed is not None:
                try:
                    self._primary.encode_b64(borrowed, params, 1)
                except VlgateError:
                    pass  # raised again, where it always is, by the usual path below
                else:
                    return borrowed
        return await self._load(image)

    def _run(self, op: Callable[[Engine], Awaitable[T]], name: str) -> Awaitable[T]:
        return self._loop.run(op, name)

    async def _ask(
        self, image: Image, prompt: str, params: dict[str, Any], name: str = "query"
    ) -> Answer:
        """One image, one prompt, through the attempt loop."""

        async def op(engine: Engine) -> Answer:
            encoded = [await engine.aencode(image, params)]
            return await self._loop.send(engine, encoded, prompt, params)

        return await self._run(op, name)

    # --- free-form questions ------------------------------------------------------------------

    async def aquery(self, image: ImageInput, prompt: str, **kwargs: Any) -> Answer:
        """Ask one question about one image.

        ``kwargs`` (temperature, max_tokens, seed, stop, ...) reach the provider; ones it cannot
        take are dropped with a debug log and listed in ``answer.dropped_params``. ``timeout=``
        overrides the per-attempt timeout for this call.

        Example:
            >>> model.query("shelf.jpg", "Which shelf is empty?", temperature=0)  # doctest: +SKIP
            'The top shelf.'
        """
        return await self._ask(await self._load_encoded(image, kwargs), prompt, kwargs)

    async def acaption(self, image: ImageInput, **kwargs: Any) -> Answer:
        """A short description of the image.

        A provider with its own caption call (Moondream's ``/caption``, which takes
        ``length="short"|"normal"|"long"``) is asked there; others get ``caption_prompt``.
        """
        img = await self._load(image)
        prompt = self._config.caption_prompt

        async def op(e: Engine) -> Answer:
            encoded = [await e.aencode(img, kwargs)]
            return await self._loop.send(e, encoded, prompt, kwargs, _CAPTION)

        return await self._run(op, "caption")

    async def aquery_multi(
        self, image: ImageInput, prompts: Sequence[str], **kwargs: Any
    ) -> list[Answer]:
        """Several questions about one image: one answer per prompt, the image encoded once."""
        prompts = _check_prompts(prompts)
        img = await self._load(image)
        await self._primary.aencode(img, kwargs)  # once: the answers below share its cache
        return list(await asyncio.gather(*(self._ask(img, p, kwargs, "multi") for p in prompts)))

    async def aquery_batch(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        prompt: str,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Answer | VlgateError]:
        """One question about each image: one answer per image, in input order.

        ``images`` is a list or any iterable (a generator of paths, frames from a video reader,
        an async iterable). It is streamed: at most ``max_concurrency`` images are loaded,
        encoded or in flight at once, so memory does not grow with the batch; decoding and
        encoding run in a worker thread pool, off the event loop. Without
        ``return_exceptions`` the first failure cancels the rest and is raised, and a *list* is
        checked first (format and size from each image's header), so a bad image raises
        :class:`~vlgate.ImageError` before anything is sent. With ``return_exceptions=True`` a
        failed item is its exception in the list and the others are still answered.
        :meth:`aiter_batch` yields answers as they finish instead.

        Example:
            >>> model.query_batch(["a.jpg", "b.jpg"], "Door open?")  # doctest: +SKIP
            >>> model.query_batch(Path("shots").glob("*.jpg"), "Door open?")  # doctest: +SKIP
        """
        source = _check_batch(images)
        if not return_exceptions and isinstance(source, Sequence):
            await self._precheck(source)
        results = await pipeline.collect(
            source,
            self._batch_item(prompt, kwargs),
            window=self._window,
            return_exceptions=return_exceptions,
        )
        return _batch_results(results)

    async def aiter_batch(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        prompt: str,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[tuple[int, Answer | VlgateError]]:
        """Like :meth:`aquery_batch`, but yields ``(index, answer)`` as each one finishes.

        ``index`` is the position of the image in ``images``. Nothing is checked ahead: the
        first failure (without ``return_exceptions``) cancels the rest and is raised. Leaving
        the loop early cancels the requests in flight.

        Example:
            >>> async for i, answer in model.aiter_batch(frames(), "Door?"):  # doctest: +SKIP
            ...     print(i, answer)
        """
        source = _check_batch(images)
        results = pipeline.as_completed(
            source,
            self._batch_item(prompt, kwargs),
            window=self._window,
            return_exceptions=return_exceptions,
        )
        try:
            async for i, result in results:
                if isinstance(result, BaseException) and not isinstance(result, VlgateError):
                    raise result
                yield i, result
        finally:
            await results.aclose()

    async def asubmit_batch(
        self,
        images: Iterable[ImageInput],
        prompt: str,
        *,
        task: BatchTask = "query",
        schema: type[BaseModel] | dict[str, Any] | None = None,
        max_requests: int | None = None,
        max_bytes: int | None = None,
        display_name: str | None = None,
        **kwargs: Any,
    ) -> BatchJob:
        """Submit one question about each image to the provider's Batch API (about half the
        price, answered within 24 h); returns a :class:`~vlgate.BatchJob` at once.

        ``task``: ``"query"`` (``prompt`` is the question), ``"json"`` (with ``schema``),
        ``"detect"`` or ``"point"`` (``prompt`` is the target). Each request is built exactly
        as the live call (pre-resize, MIME sniffing, limits, parameters, grounding prompt); a
        list is checked first, so a bad image raises before anything is sent. Jobs are
        uploaded as they fill (memory holds one job); from an iterator, a bad image met later
        cancels the parts already submitted. ``max_requests`` / ``max_bytes`` lower the
        API's limits per job (more jobs are submitted when needed; one ``BatchJob`` holds
        them). ``kwargs`` are the call's parameters (temperature, max_tokens, ...).

        Raises:
            ConfigError: the provider has no Batch API here (``openai/``, ``anthropic/`` and
                ``gemini/`` do), or a bad task/argument.
            ImageError: an image cannot be loaded or fitted (nothing is sent).

        Example:
            >>> job = model.submit_batch(paths, "mug", task="detect")  # doctest: +SKIP
            >>> job.wait(poll_interval=60)                               # doctest: +SKIP
            >>> boxes = job.results()                                    # doctest: +SKIP
        """
        from .batches import submit

        return await submit(
            self,
            self._load,
            images,
            prompt,
            task=task,
            schema=schema,
            max_requests=max_requests,
            max_bytes=max_bytes,
            display_name=display_name,
            params=kwargs,
        )

    submit_batch = sync_twin(asubmit_batch, run_sync, "Sync :meth:`asubmit_batch`.")

    def _window(self) -> int:
        return self._concurrency.limit

    def _batch_item(
        self, prompt: str, kwargs: dict[str, Any]
    ) -> Callable[[ImageInput], Awaitable[Answer]]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("prompt must be a non-empty string")

        async def one(item: ImageInput) -> Answer:
            return await self._ask(await self._load(item), prompt, kwargs, "batch")

        return one

    async def _precheck(self, images: Sequence[ImageInput]) -> None:
        """Check every image of a list cheaply (type, format, size) before anything is sent."""
        async for _ in pipeline.as_completed(images, self._check_one, window=4):
            pass

    async def _check_one(self, image: ImageInput) -> None:
        if isinstance(image, Image):
            return
        if isinstance(image, str) and image[:5].lower() != "data:" and "://" in image[:16]:
            return  # fetched (and checked) when its turn comes
        if check_in_memory(image, MAX_PIXELS):
            return  # an array or PIL image: its shape says it all, no thread hop
        await pipeline.offload(Image.load, image)

    async def aquery_images(
        self, images: Sequence[ImageInput], prompt: str, **kwargs: Any
    ) -> Answer:
        """One question about several images together, in one request.

        Raises:
            ConfigError: more images than the provider takes per request (nothing is sent).
        """
        if not isinstance(images, Sequence) or isinstance(images, str | bytes) or not images:
            raise ConfigError("images must be a non-empty list of images")
        limits = self._primary.route.service
        if limits.limits.max_images is not None and len(images) > limits.limits.max_images:
            raise ConfigError(
                f"{limits.name} takes at most {limits.limits.max_images} images per request, "
                f"got {len(images)}; use query_batch for one answer per image"
            )
        loaded = list(await asyncio.gather(*(self._load(i) for i in images)))

        async def op(engine: Engine) -> Answer:
            encoded = [await engine.aencode(i, kwargs, n_images=len(loaded)) for i in loaded]
            return await self._loop.send(engine, encoded, prompt, kwargs)

        return await self._run(op, "images")

    async def astream(self, image: ImageInput, prompt: str, **kwargs: Any) -> AsyncIterator[str]:
        """Yield the answer as text deltas as they arrive.

        Opening the stream goes through the same attempt loop as every call: it is retried
        (429, 5xx, timeouts) and falls back to the next model until the first delta arrives;
        once text has flowed a failure raises (a retry would repeat the text). Streams bypass
        the response cache; ``usage`` counts the request, the image-token estimate and the
        token counts the provider reports at the end of the stream (OpenAI-compatible servers,
        Anthropic, Gemini), priced like a query's.
        """
        img = await self._load(image)

        async def op(engine: Engine) -> Stream:
            encoded = [await engine.aencode(img, kwargs)]
            return await self._loop.open_stream(engine, encoded, prompt, kwargs)

        # The slot is held while the caller reads; fallbacks happen only before the first text.
        async with self._loop.slot():
            opened = await self._run(op, "stream")
            async for delta in opened:
                yield delta

    # --- live frame streams -------------------------------------------------------------------

    def awatch(
        self,
        frames: Iterable[Any] | AsyncIterable[Any],
        prompt: str,
        *,
        hz: float = 1.0,
        max_in_flight: int = 1,
        return_exceptions: bool = False,
        task: str = "query",
        **kwargs: Any,
    ) -> FrameWatch:
        """Ask about the latest frame of a live source, ``hz`` times a second at most.

        ``frames`` is an iterable or async iterable of images or ``(timestamp, image)`` pairs
        (a camera generator at 30 fps is fine). Yields ``(frame_timestamp, answer)``. Frames
        that arrive while a request is running replace each other in a one-frame slot: stale
        frames are dropped, nothing queues, at most ``max_in_flight`` requests run at once.
        With ``return_exceptions=True`` a failed request yields ``(timestamp, error)`` instead
        of ending the stream. ``.stats`` counts frames, dropped frames and answers.
        ``task="detect"`` or ``"point"`` yields :class:`~vlgate.Detections` / ``Points`` of the
        target named by ``prompt`` instead of text (``"caption"`` ignores ``prompt``).

        Example:
            >>> async for ts, answer in model.awatch(cam(), "Door open?"):  # doctest: +SKIP
            ...     print(ts, answer)
            >>> for ts, boxes in model.watch(cam(), "mug", task="detect"):  # doctest: +SKIP
            ...     print(ts, [d.xyxy for d in boxes])
        """
        return FrameWatch(
            self,
            frames,
            prompt,
            hz=hz,
            max_in_flight=max_in_flight,
            return_exceptions=return_exceptions,
            task=task,
            kwargs=kwargs,
        )

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
        for JSON and the answer is extracted tolerantly (fences, chatter, truncation). One repair
        attempt tells the model what was wrong; a second failure raises
        :class:`~vlgate.ResponseError` carrying the raw text.

        Example:
            >>> class Count(BaseModel):
            ...     people: int
            >>> model.query_json("room.jpg", "Count the people.", Count)  # doctest: +SKIP
            Count(people=3)
        """
        value, _ = await self._query_json(image, prompt, schema, kwargs)
        return value

    async def _query_json(
        self,
        image: ImageInput,
        prompt: str,
        schema: type[BaseModel] | dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> tuple[Any, Answer]:
        """:meth:`aquery_json`'s value and the answer it came from: with a repair turn, one
        :class:`Answer` of the final text whose usage, attempts and latency cover both turns
        (what a batch record or a Ray row reports for the item)."""
        ask = JsonAsk.of(prompt, schema)
        model_cls, schema_dict, full_prompt = ask.model_cls, ask.schema, ask.prompt
        img = await self._load(image)

        async def op(engine: Engine) -> tuple[Any, Answer]:
            options = ask.options(engine)
            encoded = [await engine.aencode(img, kwargs)]
            answer = await self._loop.send(engine, encoded, full_prompt, kwargs, **options)
            try:
                value = await off_loop_if_large(
                    answer, validate_json, answer, model_cls, schema_dict
                )
                return value, answer
            except ResponseError as first:
                log.debug("JSON answer unusable (%s); asking once more", first)
                repair = (
                    f"Your answer could not be used: {first}. Reply again with only the "
                    "corrected JSON."
                )
                history = (Message("assistant", (str(answer),)), Message("user", (repair,)))
                fixed = await self._loop.send(
                    engine, encoded, full_prompt, kwargs, history=history, **options
                )
                value = await off_loop_if_large(fixed, validate_json, fixed, model_cls, schema_dict)
                return value, both_turns(answer, fixed)

        return await self._run(op, "json")

    # --- grounding ----------------------------------------------------------------------------

    async def adetect(self, image: ImageInput, target: str, **kwargs: Any) -> Detections:
        """Boxes of ``target`` in pixels of the original image, whichever model family answers.

        The family's native prompt and coordinate convention are used; the answer is mapped
        back through the provider's resize and ``auto_resize`` with separate x and y factors.

        Example:
            >>> dets = model.detect("kitchen.jpg", "mug")  # doctest: +SKIP
            >>> dets[0].xyxy                                 # doctest: +SKIP
            (412.0, 230.5, 468.0, 301.0)
        """
        dets = await self._ground(DETECT, image, target, kwargs)
        return Detections(
            dets.items, image_size=dets.image_size, answer=dets.answer, dropped=dets.items.dropped
        )

    async def apoint(self, image: ImageInput, target: str, **kwargs: Any) -> Points:
        """Points on ``target`` in pixels of the original image.

        Example:
            >>> model.point("table.jpg", "the red cup")[0].xy  # doctest: +SKIP
            (233.0, 118.5)
        """
        pts = await self._ground(POINT, image, target, kwargs)
        return Points(
            pts.items, image_size=pts.image_size, answer=pts.answer, dropped=pts.items.dropped
        )

    async def _ground(
        self, task: GroundingTask, image: ImageInput, target: str, kwargs: dict[str, Any]
    ) -> _Grounded:
        """Ask in the family's native format, parse back to pixels of the original image."""
        img = await self._load(image)

        async def op(engine: Engine) -> _Grounded:
            encoded = await engine.aencode(img, kwargs)
            seen = planning.model_input_size(encoded, engine.route, engine.config)
            prompt = task.prompt(engine.convention, target, seen)
            native = Task(task.name, target)
            answer = await self._loop.send(engine, [encoded], prompt, kwargs, native)
            found = await off_loop_if_large(
                answer,
                task.parse,
                answer,
                engine.convention,
                img.size,
                model_input_size=seen,
                default_label=target,
            )
            if not found:
                log.debug("no %s results parsed from answer: %.200s", task.name, answer)
            return _Grounded(found, img.size, answer)

        return await self._run(op, task.name)

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
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        prompt: str,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Answer | VlgateError]:
        """Sync :meth:`aquery_batch`."""
        return run_sync(
            self.aquery_batch(images, prompt, return_exceptions=return_exceptions, **kwargs)
        )

    def iter_batch(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        prompt: str,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> Iterator[tuple[int, Answer | VlgateError]]:
        """Sync :meth:`aiter_batch`: a blocking iterator of ``(index, answer)`` as they finish.

        Example:
            >>> for i, answer in model.iter_batch(paths, "Door open?"):  # doctest: +SKIP
            ...     print(paths[i], answer)
        """
        return iterate_sync(  # type: ignore[no-any-return]
            self.aiter_batch(images, prompt, return_exceptions=return_exceptions, **kwargs)
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

    watch = sync_twin(
        awatch,
        SyncFrameWatch,
        """Sync :meth:`awatch`: a blocking iterator of ``(frame_timestamp, answer)``.

        Example:
            >>> for ts, answer in model.watch(camera(), "Anyone there?", hz=1):  # doctest: +SKIP
            ...     print(ts, answer)
        """,
        returns="SyncFrameWatch",
    )


_CAPTION = Task("caption")


@dataclass(frozen=True)
class _Grounded:
    items: Any  # Detections or Points
    image_size: tuple[int, int]
    answer: Answer


def _check_batch(
    images: Iterable[ImageInput] | AsyncIterable[ImageInput],
) -> Iterable[ImageInput] | AsyncIterable[ImageInput]:
    if isinstance(images, str | bytes | bytearray | memoryview | Image) or not isinstance(
        images, Iterable | AsyncIterable
    ):
        raise ConfigError(
            "images must be a list or an iterable of images (for one image, use query)"
        )
    if _is_array_like(images):
        raise ConfigError("images must be a list of images, not one array (for one, use query)")
    return images


def _is_array_like(obj: object) -> bool:
    # A (N, H, W, C) array is N frames; anything flatter is one image.
    return hasattr(obj, "__array_interface__") and getattr(obj, "ndim", 0) < 4


def _batch_results(results: list[Answer | BaseException]) -> list[Answer | VlgateError]:
    out: list[Answer | VlgateError] = []
    for r in results:
        if isinstance(r, Answer | VlgateError):
            out.append(r)
        else:
            raise r  # a bug, not an item's failure: never hidden in the list
    return out


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise ConfigError("prompts must be a list of strings")
    return list(prompts)


def create(model: str | None = None, /, **config: Any) -> VlModel:
    """Create a :class:`VlModel` for a model string.

    ``model`` is ``provider/model`` (``openai/gpt-4o-mini``, ``qwen/qwen-vl-max``,
    ``ollama/qwen2.5vl:7b``, ``vllm/Qwen/Qwen2.5-VL-7B-Instruct``) or any LiteLLM model string
    (``anthropic/claude-sonnet-4-6``, ``gemini/gemini-2.5-flash``, ``bedrock/...``), or a short
    provider name with ``model_name=...`` (``create("litellm", model_name="anthropic/...")``).
    ``config`` are :class:`~vlgate.ModelConfig` options, plus ``hooks=[callable, ...]``:
    called with an event record (:mod:`vlgate.runtime.hooks`) at every request, retry, error
    and response (see :meth:`VlModel.add_hook`).

    Raises:
        ConfigError: unknown model or option, or no API key for a hosted provider (the error
            names the env var to set). Nothing is sent.

    Example:
        >>> vlgate.create("anthropic/claude-sonnet-4-6", max_concurrency=8)  # doctest: +SKIP
    """
    model_name = config.pop("model_name", None)
    hooks = config.pop("hooks", None) or ()
    if callable(hooks) or not all(callable(h) for h in hooks):
        raise ConfigError("hooks must be a list of callables, each taking one event")
    if model is None:
        model = config.pop("model", None) or model_name
        model_name = None
    if model is None:
        raise ConfigError("create() needs a model, e.g. create('openai/gpt-4o-mini')")
    if model_name:
        model = f"{model}/{model_name}"
    cfg = ModelConfig.build(model=model, **config)
    if model.startswith("litellm_proxy/") and not (cfg.family and cfg.service):
        cfg = _learn_alias(cfg)
    vl_model = VlModel(cfg)
    for hook in hooks:
        vl_model.add_hook(hook)
    return vl_model


def _learn_alias(cfg: ModelConfig) -> ModelConfig:
    """Family and service of a LiteLLM Proxy alias, from the proxy (once per process)."""
    from .config import resolve_api_base, resolve_api_key
    from .gateway import alias_info
    from .registry import resolve

    route = resolve(cfg.model)
    api_base = resolve_api_base(cfg, route)
    key = resolve_api_key(cfg, route)
    family, service = alias_info(api_base or "", route.model, key)
    return cfg.model_copy(
        update={"family": cfg.family or family, "service": cfg.service or service}
    )
