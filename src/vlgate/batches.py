"""Provider Batch APIs: many images, one question, answered within 24 h at about half the price.

``model.submit_batch(images, prompt, task=...)`` builds every request exactly as the live call
would (the same loading, pre-resize, MIME sniffing, service limits, parameter table and, for
``detect``/``point``, the family's native grounding prompt); a list is checked first, so a bad
image raises before anything is sent. The requests are split into as many provider jobs as the
API's limits need (``registry.BATCH_APIS``: requests and bytes per job), each uploaded as soon
as it is full (memory holds one job), and wrapped in one :class:`BatchJob`. The provider
adapters (``providers/_batch*.py``) only speak the wire; see :mod:`vlgate.providers._batch` for
their contract.

Persisted facts, so a job survives a restart (``BatchJob.resume(job_id, model)``):

* ``BatchJob.id`` is ``"vlb1_"`` + base64url of a small JSON: the provider, the model, the
  provider job ids (several when the job was split), the task, the detect/point target and
  the number of items. It is the one string to keep.
* each request's ``custom_id`` (``^[a-zA-Z0-9_-]{1,64}$`` for every protocol) is
  ``i<index>-<w>x<h>-<mw>x<mh>``: its position in the input, the original image size and the
  size the model sees. That is all a resumed job needs to put results in input order and to map
  boxes and points back to pixels of the original image, as live calls do.

What comes back is read as hostile (the id may have been stored and edited, the results file is
a server's): an id is at most ``_MAX_ID`` characters, its fields are type-checked, its count
is at most the API's requests per job times its jobs and each provider job id is a plain name
(:func:`~vlgate.providers._batch.safe_id`), else ``ConfigError`` and nothing is sent. A result
whose custom id is not vlgate's pattern, or names an index past the job's count, is ignored;
two results for one image keep the answer over an error and the first answer over a later one.
The sizes a custom id names are trusted (the job does not keep the images): boxes and points are
mapped to, and clamped within, that size. Every image without a usable result is a
``ProviderError`` item, so ``results()`` always has ``len(job)`` items in input order.

Results (``BatchJob.results()``), in input order, one per image: an :class:`~vlgate.Answer`
(``task="query"``), the parsed JSON (``"json"``; a pydantic instance when ``schema`` is a model
class), :class:`~vlgate.Detections` (``"detect"``) or :class:`~vlgate.Points` (``"point"``); a
failed item is its :class:`~vlgate.VlgateError`, never a crashed job. Usage is the provider's
token counts and ``usage.cost`` is the **batch price**: the live price
(``tokens.cost_of``) times the API's ``discount`` (0.5), which ``usage.discount`` records.
There is no JSON repair turn in a batch: an answer that is not the JSON asked for is a
:class:`~vlgate.ResponseError` item.
Only the primary model is used (no fallbacks) and nothing is cached.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import planning
from ._attempts import Answer, Engine
from .errors import ConfigError, ProviderError, ResponseError, TimeoutError, VlgateError
from .grounding import Detections, Points
from .image import Image, ImageInput
from .providers import Completion, Usage
from .providers._batch import (
    CUSTOM_ID,
    TERMINAL,
    BatchApi,
    BatchLine,
    BatchState,
    BatchStatus,
    safe_id,
)
from .runtime import pipeline
from .runtime.loop import run_sync
from .runtime.retry import RetryPolicy
from .tokens import cost_of

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .model import VlModel

__all__ = ["BatchJob", "BatchStatus", "BatchTask", "ItemFacts", "submit"]

log = logging.getLogger("vlgate")
T = TypeVar("T")
BatchTask = Literal["query", "json", "detect", "point"]
_TASKS = ("query", "json", "detect", "point")
_PREFIX = "vlb1_"
_MAX_ID = 16_384
"""Characters in a ``BatchJob.id`` (about 150 provider job ids and a long target)."""
_MAX_COUNT = 10_000_000
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_LOAD_WINDOW = 8


@dataclass(frozen=True)
class ItemFacts:
    """What a result needs to be placed and mapped back, carried in the request's custom id.

    Example:
        >>> facts = ItemFacts(7, (4032, 3024), (1568, 1176))
        >>> facts.custom_id
        'i7-4032x3024-1568x1176'
        >>> ItemFacts.parse(facts.custom_id) == facts
        True
    """

    index: int
    size: tuple[int, int]
    """The original image's (w, h)."""
    seen: tuple[int, int]
    """The (w, h) the model sees (after vlgate's pre-resize and the provider's own)."""

    @property
    def custom_id(self) -> str:
        (w, h), (mw, mh) = self.size, self.seen
        return f"i{self.index}-{w}x{h}-{mw}x{mh}"

    @classmethod
    def parse(cls, custom_id: str) -> ItemFacts | None:
        """The facts in a custom id vlgate wrote; ``None`` for any other id."""
        m = _FACTS.fullmatch(custom_id)
        if m is None:
            return None
        i, w, h, mw, mh = (int(g) for g in m.groups())
        return cls(i, (w, h), (mw, mh))


_FACTS = re.compile(r"i(\d{1,9})-(\d{1,6})x(\d{1,6})-(\d{1,6})x(\d{1,6})")


@dataclass(frozen=True)
class _Ref:
    """What ``BatchJob.id`` encodes."""

    provider: str
    model: str
    jobs: tuple[str, ...]
    task: BatchTask
    target: str | None
    count: int

    def encode(self) -> str:
        data = {
            "p": self.provider,
            "m": self.model,
            "j": list(self.jobs),
            "t": self.task,
            "q": self.target,
            "n": self.count,
        }
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, job_id: str) -> _Ref:
        if not isinstance(job_id, str) or not job_id.startswith(_PREFIX):
            raise ConfigError(
                f"not a vlgate batch id: {str(job_id)[:40]!r} (BatchJob.id starts with "
                f"{_PREFIX!r}; for a provider's own job id pass task= to resume)"
            )
        body = job_id[len(_PREFIX) :]
        damaged = ConfigError(f"a damaged vlgate batch id: {job_id[:40]!r}...")
        if len(job_id) > _MAX_ID or not _B64URL.fullmatch(body):
            raise damaged
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            data = json.loads(raw)
        except (ValueError, binascii.Error, RecursionError):
            raise damaged from None
        if not isinstance(data, dict):
            raise damaged
        provider, model, jobs, task = data.get("p"), data.get("m"), data.get("j"), data.get("t")
        target, count = data.get("q"), data.get("n")
        if not (
            isinstance(provider, str)
            and isinstance(model, str)
            and isinstance(jobs, list)
            and jobs
            and all(safe_id(j) for j in jobs)
            and task in _TASKS
            and (target is None or isinstance(target, str))
            and isinstance(count, int)
            and not isinstance(count, bool)
            and 1 <= count <= _MAX_COUNT
        ):
            raise damaged
        return cls(provider, model, tuple(jobs), task, target, count)


class BatchJob:
    """A submitted provider batch: one or more provider jobs answering one list of images.

    Every method has an async twin (``astatus``, ``wait_async`` — ``await`` is a keyword —,
    ``aresults``, ``acancel``); the sync ones run them on vlgate's background loop.

    Example:
        >>> job = model.submit_batch(paths, "Is the shelf empty?")         # doctest: +SKIP
        >>> job.id                                                          # doctest: +SKIP
        'vlb1_eyJwIjoib3BlbmFpIiwi...'
        >>> job.wait(poll_interval=60)                                      # doctest: +SKIP
        >>> answers = job.results()                                         # doctest: +SKIP
        >>> later = vlgate.BatchJob.resume(job.id, model)                   # doctest: +SKIP
    """

    def __init__(
        self,
        model: VlModel,
        ref: _Ref,
        *,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        dropped: dict[str, str] | None = None,
    ) -> None:
        self._model = model
        self._engine: Engine = model._primary
        self._ref = ref
        self._schema = schema
        self._dropped = dict(dropped or {})
        self._api = _batch_api(self._engine)
        self._usage = Usage()

    # --- identity -----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The one string that identifies this job, for :meth:`resume` (see the module doc)."""
        return self._ref.encode()

    @property
    def provider_ids(self) -> tuple[str, ...]:
        """The provider's own job ids (more than one when the limits split the job)."""
        return self._ref.jobs

    @property
    def task(self) -> BatchTask:
        """``query``, ``json``, ``detect`` or ``point``."""
        return self._ref.task

    def __len__(self) -> int:
        """The number of images in the job."""
        return self._ref.count

    @property
    def usage(self) -> Usage:
        """Tokens and cost (batch price) of the answers, once :meth:`results` read them."""
        return Usage(**vars(self._usage))

    def __repr__(self) -> str:
        return (
            f"BatchJob(provider={self._ref.provider!r}, model={self._ref.model!r}, "
            f"task={self._ref.task!r}, items={self._ref.count}, jobs={list(self._ref.jobs)!r})"
        )

    @classmethod
    def resume(
        cls,
        job_id: str,
        model: VlModel,
        *,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        task: BatchTask | None = None,
        target: str | None = None,
    ) -> BatchJob:
        """The job ``job_id`` (a :attr:`id`) again, in a new process or with a new model object.

        ``model`` must be the same provider and model as at submission (its key and endpoint
        may differ). ``schema``: validate ``json`` answers again (the id does not carry it).
        A provider's own job id (``batch_abc...``) also works with ``task=`` (and ``target=``
        for detect/point labels).

        Raises:
            ConfigError: not a vlgate batch id, or another provider or model.

        Example:
            >>> job = vlgate.BatchJob.resume(saved_id, vlgate.create("openai/gpt-4o-mini"))
            ... # doctest: +SKIP
        """
        engine = model._primary
        route = engine.route
        if not isinstance(job_id, str):
            raise ConfigError(f"a batch id is a string, not {type(job_id).__name__}")
        if task is not None and not job_id.startswith(_PREFIX):
            if task not in _TASKS:
                raise ConfigError(f"task must be one of {', '.join(_TASKS)}")
            if not safe_id(job_id):
                raise ConfigError(f"not a provider batch id: {job_id[:40]!r}")
            ref = _Ref(route.provider.name, route.model, (job_id,), task, target, 0)
        else:
            ref = _Ref.decode(job_id)
        if (ref.provider, ref.model) != (route.provider.name, route.model):
            raise ConfigError(
                f"batch {ref.jobs[0]} was submitted to {ref.provider}/{ref.model}; resume it "
                f"with that model, not {route.provider.name}/{route.model}"
            )
        if ref.count > len(ref.jobs) * _batch_api(engine).spec.max_requests:
            raise ConfigError(
                f"a damaged vlgate batch id: {ref.count} images in {len(ref.jobs)} job(s)"
            )
        return cls(model, ref, schema=schema)

    # --- async core ---------------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        result, _ = await RetryPolicy.from_config(self._engine.config).run(call)
        return result

    async def astatus(self) -> BatchStatus:
        """Where the job stands: states and counts of its provider jobs combined."""
        parts = await asyncio.gather(
            *(self._call(partial(self._api.status, j)) for j in self._ref.jobs)
        )
        return combine(parts)

    async def wait_async(
        self,
        *,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        on_progress: Callable[[BatchStatus], None] | None = None,
    ) -> BatchStatus:
        """Poll every ``poll_interval`` seconds until the job is finished; return its status.

        ``on_progress`` is called with each status polled. A poll that fails transiently (429,
        5xx, a dropped connection, after the model's retries) is logged and polled again.

        Raises:
            TimeoutError: not finished within ``timeout`` seconds (the job keeps running).
        """
        if poll_interval <= 0:
            raise ConfigError("poll_interval must be positive")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                status = await self.astatus()
            except VlgateError as exc:
                if not exc.retryable:
                    raise
                log.warning("batch status poll failed (%s); polling again", exc)
            else:
                if on_progress is not None:
                    on_progress(status)
                if status.done:
                    return status
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise TimeoutError(
                    f"batch not finished within {timeout}s (it keeps running; resume it with "
                    "BatchJob.resume(job.id, model))",
                    model=self._ref.model,
                )
            await asyncio.sleep(poll_interval)

    async def aresults(self) -> list[Any]:
        """One result per image, in input order (see the module doc for each task's type).

        Raises:
            ConfigError: the job is not finished yet (``wait()`` first).
        """
        return [result for _, result in await self.acollect()]

    async def aanswers(self) -> list[Answer | VlgateError]:
        """The model's answer (text, usage at the batch price) or the error per image, in input
        order, before any JSON or grounding parsing; for ``task="query"`` the same as
        :meth:`aresults`."""
        return [answer for answer, _ in await self.acollect()]

    async def acollect(self) -> list[tuple[Answer | VlgateError, Any]]:
        """``(answer, result)`` per image in input order: :meth:`aanswers` and
        :meth:`aresults` from one download."""
        statuses = await asyncio.gather(
            *(self._call(partial(self._api.status, j)) for j in self._ref.jobs)
        )
        running = [s for s in statuses if not s.done]
        if running:
            raise ConfigError(
                f"batch is still {running[0].state} ({combine(statuses).pending} pending); "
                "call wait() first"
            )
        self._usage = Usage()
        found: dict[int, tuple[Answer | VlgateError, Any]] = {}
        unanswered: dict[int, VlgateError] = {}
        # A provider job id given without its count: as many as the provider says it holds.
        count = self._ref.count or sum(s.total for s in statuses)
        count = min(count, len(self._ref.jobs) * self._api.spec.max_requests)
        for job_id, status in zip(self._ref.jobs, statuses, strict=True):
            items = await self._call(partial(self._api.results, job_id))
            # Answers first: an image with an answer and an error keeps the answer.
            ordered = sorted(items.items(), key=lambda kv: isinstance(kv[1], VlgateError))
            for cid, outcome in ordered:
                facts = ItemFacts.parse(cid)
                if facts is None or facts.index >= count or facts.index in found:
                    log.debug("batch %s: result for custom_id %r ignored", job_id, cid[:80])
                    continue
                found[facts.index] = self._finish(facts, outcome)
            if status.state != "completed" or status.errors:
                why = "; ".join(status.errors) or f"the batch job {job_id} ended {status.state}"
                error = ProviderError(
                    f"not answered: {why}",
                    provider=self._ref.provider,
                    model=self._ref.model,
                    retryable=False,
                )
                unanswered.update({i: error for i in range(count)})
        out: list[tuple[Answer | VlgateError, Any]] = []
        for i in range(count):
            if i in found:
                out.append(found[i])
                continue
            missing = unanswered.get(i) or ProviderError(
                "the batch reported no result for this item",
                provider=self._ref.provider,
                model=self._ref.model,
                retryable=False,
            )
            out.append((missing, missing))
        return out

    def _finish(
        self, facts: ItemFacts, outcome: Completion | VlgateError
    ) -> tuple[Answer | VlgateError, Any]:
        """A provider's answer, and it as the live call's result type, at the batch price."""
        if isinstance(outcome, VlgateError):
            return outcome, outcome
        engine = self._engine
        usage = outcome.usage
        usage.requests = 1
        if usage.image_tokens is None:
            usage.image_tokens = planning.size_plan(engine.route, engine.config).count(facts.seen)
        if usage.image_tokens is not None and usage.input_tokens:
            usage.image_tokens = min(usage.image_tokens, usage.input_tokens)
        discount = self._api.spec.discount
        if usage.cost is None:
            live = cost_of(engine.route, usage)
            usage.cost = None if live is None else live * discount
        usage.discount = discount
        self._usage = self._usage + usage
        answer = Answer(
            outcome.text,
            usage=usage,
            model=outcome.model,
            attempts=1,
            finish_reason=outcome.finish_reason,
            dropped_params=tuple(sorted(self._dropped)),
            dropped_reasons=self._dropped,
        )
        task = self._ref.task
        if task == "query":
            return answer, answer
        try:
            if task == "json":
                from .asks import JsonAsk

                return answer, JsonAsk.of("", self._schema).parse(answer)
            from .asks import DETECT, POINT

            grounding = DETECT if task == "detect" else POINT
            found = grounding.parse(
                answer,
                engine.convention,
                facts.size,
                model_input_size=facts.seen,
                default_label=self._ref.target or "",
            )
        except ResponseError as exc:
            return answer, exc
        kind = Detections if task == "detect" else Points
        return answer, kind(found, image_size=facts.size, answer=answer, dropped=found.dropped)

    async def acancel(self) -> BatchStatus:
        """Ask the provider to cancel every unfinished part; answers already made are kept
        (and billed). Returns the combined status after asking."""
        statuses = []
        for job_id in self._ref.jobs:
            status = await self._call(partial(self._api.status, job_id))
            if not status.done:
                status = await self._call(partial(self._api.cancel, job_id))
            statuses.append(status)
        return combine(statuses)

    # --- sync facade --------------------------------------------------------------------------

    def status(self) -> BatchStatus:
        """Sync :meth:`astatus`."""
        return run_sync(self.astatus())

    def wait(
        self,
        *,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        on_progress: Callable[[BatchStatus], None] | None = None,
    ) -> BatchStatus:
        """Sync :meth:`wait_async`.

        Example:
            >>> job.wait(poll_interval=60, on_progress=lambda s: print(s.completed, s.total))
            ... # doctest: +SKIP
        """
        return run_sync(
            self.wait_async(poll_interval=poll_interval, timeout=timeout, on_progress=on_progress)
        )

    def results(self) -> list[Any]:
        """Sync :meth:`aresults`."""
        return run_sync(self.aresults())

    def answers(self) -> list[Answer | VlgateError]:
        """Sync :meth:`aanswers`."""
        return run_sync(self.aanswers())

    def cancel(self) -> BatchStatus:
        """Sync :meth:`acancel`."""
        return run_sync(self.acancel())


_ORDER: dict[str, int] = {
    "validating": 0,
    "in_progress": 1,
    "finalizing": 2,
    "cancelling": 3,
}
_WORST_STATES: tuple[BatchState, ...] = ("failed", "expired", "cancelled", "completed")


def combine(parts: Sequence[BatchStatus]) -> BatchStatus:
    """One status for a job split across several provider jobs: counts add up; while any part
    runs, the state is the least advanced running one; once all are done, the worst outcome
    (failed, expired, cancelled, then completed).

    Example:
        >>> combine([BatchStatus("completed", 2, 2), BatchStatus("in_progress", 3, 1)]).state
        'in_progress'
    """
    if len(parts) == 1:
        return parts[0]
    running = [p for p in parts if p.state not in TERMINAL]
    state: BatchState
    if running:
        state = min(running, key=lambda p: _ORDER.get(p.state, 0)).state
    else:
        states = {p.state for p in parts}
        state = next(s for s in _WORST_STATES if s in states)
    return BatchStatus(
        state,
        total=sum(p.total for p in parts),
        completed=sum(p.completed for p in parts),
        failed=sum(p.failed for p in parts),
        raw_state=",".join(p.raw_state for p in parts),
        errors=tuple(e for p in parts for e in p.errors),
        parts=tuple(parts),
    )


def _batch_api(engine: Engine) -> BatchApi:
    api = engine.provider.batch_api()
    if api is None:
        raise ConfigError(
            f"{engine.route.provider.name}/ has no provider Batch API in vlgate; batches run on "
            "openai/, anthropic/ and gemini/ models (use query_batch for live calls)"
        )
    return api


class _Chunker:
    """Cuts lines, in order, into jobs of at most ``max_requests`` lines and ``max_bytes``
    bytes as uploaded (``api.job_bytes``)."""

    def __init__(self, api: BatchApi, max_requests: int, max_bytes: int) -> None:
        self._api = api
        self._max_n = max_requests
        self._max_b = max_bytes
        self._empty = api.job_bytes([])
        self._lines: list[BatchLine] = []
        self._size = self._empty

    def add(self, line: BatchLine) -> list[BatchLine] | None:
        """Take ``line``; return the job it closed (``line`` did not fit in it), if any.

        Raises:
            ConfigError: ``line`` alone is over ``max_bytes``.
        """
        alone = self._api.job_bytes([line])
        if alone > self._max_b:
            raise ConfigError(
                f"request {line.custom_id} alone is {alone - self._empty:,} bytes, over the "
                f"batch limit of {self._max_b:,} bytes per job"
            )
        one = alone - self._empty
        full = None
        if self._lines and (len(self._lines) >= self._max_n or self._size + one > self._max_b):
            full = self.flush()
        self._lines.append(line)
        self._size += one
        return full

    def flush(self) -> list[BatchLine] | None:
        """The job being filled (``None`` when empty); starts a new one."""
        lines, self._lines, self._size = self._lines, [], self._empty
        return lines or None


def split(
    lines: Sequence[BatchLine], api: BatchApi, max_requests: int, max_bytes: int
) -> list[list[BatchLine]]:
    """``lines`` in order, cut into jobs of at most ``max_requests`` lines and ``max_bytes``
    bytes as uploaded (``api.job_bytes``).

    Raises:
        ConfigError: one line alone is over ``max_bytes``.
    """
    chunker = _Chunker(api, max_requests, max_bytes)
    jobs = [full for line in lines if (full := chunker.add(line)) is not None]
    last = chunker.flush()
    return [*jobs, last] if last is not None else jobs


async def submit(
    model: VlModel,
    load: Callable[[ImageInput], Awaitable[Image]],
    images: Iterable[ImageInput],
    prompt: str,
    *,
    task: BatchTask,
    schema: type[BaseModel] | dict[str, Any] | None,
    max_requests: int | None,
    max_bytes: int | None,
    display_name: str | None,
    params: dict[str, Any],
) -> BatchJob:
    """Build, split and submit; the engine behind ``VlModel.asubmit_batch`` (which declares the
    defaults)."""
    if task not in _TASKS:
        raise ConfigError(f"task must be one of {', '.join(_TASKS)}, not {task!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("prompt must be a non-empty string (the target for detect/point)")
    if schema is not None and task != "json":
        raise ConfigError("schema= is for task='json'")
    if isinstance(images, str | bytes | Image) or not isinstance(images, Iterable):
        raise ConfigError("images must be a list or an iterable of images")
    engine: Engine = model._primary
    api = _batch_api(engine)
    spec = api.spec
    limit_n = min(spec.max_requests, max_requests or spec.max_requests)
    limit_b = min(spec.max_bytes, max_bytes or spec.max_bytes)
    if limit_n < 1 or limit_b < 1:
        raise ConfigError("max_requests and max_bytes must be positive")
    params = dict(params)
    params.pop("timeout", None)  # a batch has no per-request timeout
    from .asks import DETECT, POINT, JsonAsk

    ask = JsonAsk.of(prompt, schema) if task == "json" else None
    options = ask.options(engine) if ask is not None else {}
    grounding = DETECT if task == "detect" else POINT if task == "point" else None

    async def line(item: tuple[int, ImageInput]) -> BatchLine:
        index, source = item
        img = await load(source)
        encoded = await engine.aencode(img, params)
        seen = planning.model_input_size(encoded, engine.route, engine.config, params)
        text = prompt
        if grounding is not None:
            text = grounding.prompt(engine.convention, prompt, seen)
        elif ask is not None:
            text = ask.prompt
        request = planning.build_request(
            engine.route, engine.config, [encoded], text, params, **options
        )
        cid = ItemFacts(index, img.size, seen).custom_id
        if not CUSTOM_ID.fullmatch(cid):  # sizes past 6 digits: no image gets there
            raise ConfigError(f"cannot name batch item {index} ({cid!r})")
        # The body holds the base64 image: serialised in the worker pool, off the event loop.
        return await pipeline.offload(api.encode, cid, request)

    if isinstance(images, Sequence):
        await model._precheck(images)  # every image's format and size, before anything is sent
    name = display_name or f"vlgate {task}"
    chunker = _Chunker(api, limit_n, limit_b)
    submitted: list[str] = []
    count = 0
    dropped: dict[str, str] = {}

    async def send(part: list[BatchLine]) -> None:
        label = name if not submitted else f"{name} (part {len(submitted) + 1})"
        submitted.append(await api.submit(part, display_name=label))

    # Lines are built a window at a time and each job is uploaded as soon as it is full, so
    # memory holds one job (at most the API's byte limit), not the whole batch.
    built = pipeline.as_completed(enumerate(images), line, window=_LOAD_WINDOW)
    waiting: dict[int, BatchLine] = {}
    try:
        async for index, result in built:
            if isinstance(result, BaseException):  # as_completed raises first; a bug guard
                raise result
            waiting[index] = result
            while count in waiting:
                ready = waiting.pop(count)
                count += 1
                dropped = ready.dropped
                full = chunker.add(ready)
                if full is not None:
                    await send(full)
        if count == 0:
            raise ConfigError("no images to submit")
        last = chunker.flush()
        if last is not None:
            await send(last)
    except BaseException:
        await built.aclose()
        # A half-submitted job is of no use to anyone: cancel the parts already running.
        for job_id in submitted:
            try:
                await api.cancel(job_id)
            except VlgateError as exc:
                log.warning("could not cancel batch part %s: %s", job_id, exc)
        raise
    ref = _Ref(
        engine.route.provider.name,
        engine.route.model,
        tuple(submitted),
        task,
        prompt if grounding is not None else None,
        count,
    )
    return BatchJob(model, ref, schema=schema, dropped=dropped)
