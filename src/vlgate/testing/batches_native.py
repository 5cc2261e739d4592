"""Anthropic Message Batches and Gemini batch mode on the emulator.

Endpoints (auth and version headers as on the live endpoints of the same protocol):

* Anthropic: ``POST /v1/messages/batches`` (``{"requests": [{"custom_id", "params"}]}``),
  ``GET /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
  ``POST /v1/messages/batches/{id}/cancel``, ``DELETE /v1/messages/batches/{id}`` and
  ``GET /v1/messages/batches/{id}/results`` (the batch's ``results_url``, JSONL, set only once the
  batch has ``ended``).
* Gemini (under ``/v1beta`` and without a version prefix):
  ``POST models/{model}:batchGenerateContent`` with ``{"batch": {"displayName", "inputConfig":
  {"requests": {"requests": [{"request", "metadata"}]}}}}``; ``GET batches/{id}`` (an Operation:
  ``metadata.state`` ``BATCH_STATE_*``, ``metadata.batchStats``, ``done``, and the output both
  as ``metadata.output`` and ``response``), ``POST batches/{id}:cancel``, ``DELETE batches/{id}``.

Each item is validated and answered exactly as a live ``/v1/messages`` or ``generateContent``
request (the same parser, image rules, scene analysis and answer rules, scripted faults per
model): a request the live endpoint would reject becomes that item's error (Anthropic
``errored``, Gemini ``error`` with a ``google.rpc.Status``), never a failed batch. Results come
back in a shuffled (seeded) order: match them by ``custom_id`` / ``metadata.key``.

Lifecycle, with the same knobs as the OpenAI jobs (``emu.batches``): Anthropic batches are
created ``in_progress``, Gemini ones ``BATCH_STATE_PENDING``. Each ``GET`` of a job moves it one
step (``auto``, on by default), or :meth:`NativeBatches.advance` does: Gemini ``PENDING`` ->
``RUNNING``; a running job answers ``lines_per_step`` items (0: all) and ends once all are
answered (Anthropic ``ended``, Gemini ``BATCH_STATE_SUCCEEDED``); an Anthropic ``cancel`` answers
``canceling`` and the next step ends it with the unanswered items ``canceled``::

    desk = native_batches(emu)
    desk.auto = False                # nothing moves until advance()
    desk.lines_per_step = 3
    desk.advance(batch_id)           # one step
    desk.finish(batch_id)            # to the end
    desk.expire(batch_id)            # unanswered items expire; the batch ends (EXPIRED)
    desk.fail(batch_id, "quota")     # Gemini: BATCH_STATE_FAILED with that error
    desk.job(batch_id).items         # what arrived per item: key, model, images, outcome

Assumptions where the providers document nothing (kept visible here): Gemini per-item errors
carry the gRPC code (``3`` for an invalid argument); a cancelled or expired Gemini batch still
lists the answered items and gives the others an error (``CANCELLED`` code 1,
``DEADLINE_EXCEEDED`` code 4); a Gemini cancel is ``BATCH_STATE_CANCELLED`` at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from .gemini_files import add_routes as add_file_routes
from .gemini_files import gemini_files
from .records import RecordedImage, RecordedRequest
from .wire import dumps, error_body

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = [
    "ANTHROPIC_MAX_BATCH_BYTES",
    "ANTHROPIC_MAX_REQUESTS",
    "GEMINI_MAX_INLINE_BYTES",
    "BatchItem",
    "EmuBatch",
    "NativeBatches",
    "add_routes",
    "install",
    "native_batches",
]

ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BATCH_BYTES = 256 * 1024 * 1024
GEMINI_MAX_INLINE_BYTES = 20 * 1024 * 1024
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DAY = 24 * 3600
# gRPC status codes for the HTTP statuses the live endpoints answer (google.rpc.Code).
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 503: 14, 504: 4}

Outcome = Literal["succeeded", "errored", "canceled", "expired"]


@dataclass
class BatchItem:
    """One request inside an emulated batch, as it arrived and as it was answered.

    Attributes:
        key: Anthropic ``custom_id``; Gemini ``metadata.key`` (else the item's index).
        model: the model the item named (Gemini: the batch's model).
        body: the item's request body (Anthropic ``params``, Gemini ``request``).
        metadata: Gemini's ``metadata`` object, echoed with the answer.
        images: the images found in the item, in order.
        outcome: ``None`` until answered; then ``succeeded``/``errored``/``canceled``/``expired``.
        status: the HTTP status the live endpoint would have answered (0 if never answered).
        error: the error message for an ``errored`` item.
        response: the rendered answer (the live endpoint's body) when ``succeeded``.
        response_text: the text answered.
    """

    key: str
    model: str | None
    body: Any
    metadata: Any = None
    images: list[RecordedImage] = field(default_factory=list)
    outcome: Outcome | None = None
    status: int = 0
    error: str | None = None
    error_body: dict[str, Any] | None = None
    """The live endpoint's error body for an ``errored`` item."""
    response: dict[str, Any] | None = None
    response_text: str | None = None


@dataclass
class EmuBatch:
    """One emulated batch job (either protocol)."""

    id: str
    protocol: Literal["anthropic", "gemini"]
    items: list[BatchItem]
    model: str | None = None
    display_name: str = ""
    created: float = field(default_factory=time.time)
    state: str = "pending"
    """``pending`` (Gemini only: not started), ``running``, ``canceling``, then ``ended``."""
    end_reason: str | None = None
    """``completed``, ``canceled``, ``expired`` or ``failed`` once ended."""
    failure: str | None = None
    ended: float | None = None
    cancel_initiated: float | None = None
    updated: float = field(default_factory=time.time)
    order: list[int] = field(default_factory=list)
    """The (shuffled) order results are listed in."""
    input_file: str | None = None
    """Gemini: the ``files/...`` the requests came from (``None``: inline requests)."""
    output_file: str | None = None
    """Gemini: the responses file written when a file-input job ends."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def counts(self) -> dict[str, int]:
        """How many items have each outcome (``processing`` for the unanswered)."""
        out = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for item in self.items:
            out[item.outcome or "processing"] += 1
        return out


class NativeBatches:
    """The emulator's Anthropic and Gemini batch jobs and the knobs tests turn (the same knobs
    as the OpenAI jobs' ``emu.batches``).

    Attributes:
        auto: each ``GET`` of a job moves it one step (default ``True``); ``False``: jobs move
            only by :meth:`advance` / :meth:`finish`.
        lines_per_step: items answered per step (0: all at once).
        shuffle: list results in a seeded random order (the providers promise no order).

    A step: Gemini ``PENDING`` -> ``RUNNING``; a running job answers ``lines_per_step`` items and
    ends once every item is answered; a canceling (Anthropic) job ends with its unanswered
    items ``canceled``.
    """

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self._lock = threading.Lock()
        self.jobs: dict[str, EmuBatch] = {}
        self.auto = True
        self.lines_per_step = 0
        self.shuffle = True
        self.tamper_results: Callable[[bytes], bytes] | None = None
        """Fault knob: an Anthropic results download or a Gemini responses file passes
        through it (garbage lines, duplicates, a missing line)."""
        self.results_url: str | None = None
        """Fault knob: the ``results_url`` an ended Anthropic batch names (a forged host)."""

    # --- controls (called from the test's thread) -----------------------------------------

    def job(self, batch_id: str) -> EmuBatch:
        """The batch ``batch_id`` (Gemini names may be given with or without ``batches/``)."""
        return self.jobs[batch_id.removeprefix("batches/")]

    def advance(self, batch_id: str | None = None, steps: int = 1) -> None:
        """Move a job (``None``: every unfinished job) ``steps`` steps along its lifecycle."""
        for _ in range(steps):
            for job in self._pick(batch_id):
                self._on_loop(self._step(job))

    def finish(self, batch_id: str | None = None) -> None:
        """Run a job (``None``: every unfinished one) to its end."""
        for job in self._pick(batch_id):
            while job.state != "ended":
                self._on_loop(self._step(job))

    def expire(self, batch_id: str) -> None:
        """The 24 h window passes now: unanswered items expire and the job ends."""
        self._on_loop(self._close(self.job(batch_id), "expired"))

    def fail(self, batch_id: str, message: str = "The batch failed (emulated).") -> None:
        """End ``batch_id`` as failed (Gemini ``BATCH_STATE_FAILED`` with ``message``;
        Anthropic has no such state: its unanswered items are ``errored`` with ``message``)."""
        job = self.job(batch_id)
        job.failure = message
        self._on_loop(self._close(job, "failed"))

    def _pick(self, batch_id: str | None) -> list[EmuBatch]:
        if batch_id is not None:
            return [self.job(batch_id)]
        with self._lock:
            return [j for j in self.jobs.values() if j.state != "ended"]

    def _on_loop(self, coro: Any) -> None:
        loop = self._emu._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the emulator is not running")
        asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    # --- lifecycle (on the emulator's loop) -------------------------------------------------

    async def _step(self, job: EmuBatch) -> None:
        async with job.lock:
            if job.state == "pending":
                job.state = "running"
            elif job.state == "running":
                todo = [item for item in job.items if item.outcome is None]
                if self.lines_per_step > 0:
                    todo = todo[: self.lines_per_step]
                for item in todo:
                    await _answer_item(self._emu, job, item)
                job.updated = time.time()
                if all(item.outcome for item in job.items):
                    self._end(job, "completed")
            elif job.state == "canceling":
                self._end(job, "canceled")

    async def _close(self, job: EmuBatch, reason: str) -> None:
        async with job.lock:
            self._end(job, reason)

    def _end(self, job: EmuBatch, reason: str) -> None:
        if job.state == "ended":
            return
        left: Outcome = "expired" if reason == "expired" else "canceled"
        for item in job.items:
            if item.outcome is None:
                if reason == "failed":
                    item.outcome, item.status, item.error = "errored", 500, job.failure
                else:
                    item.outcome = left
        job.state, job.end_reason = "ended", reason
        job.ended = job.updated = time.time()

    async def _polled(self, job: EmuBatch) -> None:
        if self.auto and job.state != "ended":
            await self._step(job)

    def _add(self, job: EmuBatch) -> None:
        rng = random.Random(f"{self._emu.seed}:{job.id}")
        job.order = list(range(len(job.items)))
        if self.shuffle:
            rng.shuffle(job.order)
        with self._lock:
            self.jobs[job.id] = job


_DESKS: weakref.WeakKeyDictionary[Emulator, NativeBatches] = weakref.WeakKeyDictionary()


def native_batches(emu: Emulator) -> NativeBatches:
    """The Anthropic/Gemini batch jobs and controls of ``emu`` (created on first use).

    Example::

        desk = native_batches(emu)
        desk.auto = False
    """
    desk = _DESKS.get(emu)
    if desk is None:
        desk = _DESKS[emu] = NativeBatches(emu)
    return desk


# --- answering one item as the live endpoint would ----------------------------------------------


async def _answer_item(emu: Emulator, job: EmuBatch, item: BatchItem) -> None:
    """Answer ``item`` with the live endpoint's code (:meth:`Emulator.answer_offline`: the same
    parsing, image rules, vision, answers and per-model faults); record the outcome. The item
    is recorded in ``emu.requests`` with ``batch=<job id>``."""
    if job.protocol == "anthropic":
        path, target = "/v1/messages", ""
    else:
        path, target = f"/v1beta/models/{job.model}:generateContent", f"{job.model}:generateContent"
    rec = RecordedRequest(
        protocol=job.protocol,
        method="POST",
        path=path,
        query={},
        headers={},
        body=item.body,
        t_received=time.time(),
        batch=job.id,
    )
    if job.protocol == "anthropic" and isinstance(item.body, dict) and item.body.get("stream"):
        # A batch answers whole messages: the API refuses a streamed request inside one.
        with emu._lock:
            emu._records.append(rec)
        status = 400
        body = error_body("anthropic", 400, "stream: streaming is not supported in batches")
        rec.status, rec.error = status, body["error"]["message"]
    else:
        status, body = await emu.answer_offline(rec, job.protocol, target=target)
    item.model, item.images, item.status = rec.model or item.model, list(rec.images), status
    if status == 200:
        item.outcome, item.response, item.response_text = "succeeded", body, rec.response_text
    else:
        item.outcome, item.error_body = "errored", body
        item.error = rec.error


# --- HTTP ---------------------------------------------------------------------------------------


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(body), content_type="application/json")


class _Http:
    """The request handlers, bound to one emulator."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.desk = native_batches(emu)

    async def _begin(
        self, request: web.Request, protocol: Literal["anthropic", "gemini"]
    ) -> tuple[RecordedRequest, bytes, web.Response | None]:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = self.emu._received(request, protocol, body)
        problem = self.emu._auth(request, protocol, protocol)
        if problem is not None:
            return rec, raw, self._error(rec, problem.status, problem.message)
        return rec, raw, None

    def _error(self, rec: RecordedRequest, status: int, message: str) -> web.Response:
        rec.status, rec.error = status, message
        return _json(error_body(rec.protocol, status, message), status)

    def _ok(self, rec: RecordedRequest, body: Any) -> web.Response:
        rec.status = 200
        return _json(body)

    # --- Anthropic ----------------------------------------------------------------------------

    def _anthropic_view(self, job: EmuBatch, origin: str) -> dict[str, Any]:
        counts = job.counts()
        if job.state != "ended":
            # Every count but ``processing`` stays 0 until the whole batch has ended.
            counts = {k: (len(job.items) if k == "processing" else 0) for k in counts}
        status = "in_progress" if job.state == "running" else job.state
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": _iso(job.ended),
            "created_at": _iso(job.created),
            "expires_at": _iso(job.created + _DAY),
            "archived_at": None,
            "cancel_initiated_at": _iso(job.cancel_initiated),
            "results_url": (
                (self.desk.results_url or f"{origin}/v1/messages/batches/{job.id}/results")
                if job.state == "ended"
                else None
            ),
        }

    async def _anthropic_target(
        self, request: web.Request
    ) -> tuple[RecordedRequest, EmuBatch | None, web.Response | None]:
        """The request's record and the Anthropic batch its path names, or the error to answer
        (bad key, or no such batch)."""
        rec, _, failed = await self._begin(request, "anthropic")
        if failed is not None:
            return rec, None, failed
        job = self.desk.jobs.get(request.match_info["batch_id"])
        if job is None or job.protocol != "anthropic":
            return rec, None, self._error(rec, 404, "Message batch not found")
        return rec, job, None

    async def anthropic_create(self, request: web.Request) -> web.Response:
        rec, raw, failed = await self._begin(request, "anthropic")
        if failed is not None:
            return failed
        if len(raw) > ANTHROPIC_MAX_BATCH_BYTES:
            return self._error(rec, 413, "Request exceeds the maximum allowed number of bytes.")
        body = rec.body
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            return self._error(rec, 400, "requests: Field required")
        reqs = body["requests"]
        if not 1 <= len(reqs) <= ANTHROPIC_MAX_REQUESTS:
            return self._error(
                rec,
                400,
                f"requests: List should have between 1 and {ANTHROPIC_MAX_REQUESTS} items, "
                f"not {len(reqs)}",
            )
        items: list[BatchItem] = []
        seen: set[str] = set()
        for i, entry in enumerate(reqs):
            cid = entry.get("custom_id") if isinstance(entry, dict) else None
            if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
                return self._error(
                    rec,
                    400,
                    f"requests.{i}.custom_id: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,64}$'",
                )
            if cid in seen:
                return self._error(
                    rec, 400, f"requests.{i}.custom_id: Duplicate custom_id '{cid}' in the batch"
                )
            seen.add(cid)
            params = entry.get("params")
            if not isinstance(params, dict):
                return self._error(rec, 400, f"requests.{i}.params: Field required")
            model = params.get("model")
            items.append(BatchItem(cid, str(model) if model else None, params))
        job = EmuBatch("msgbatch_" + uuid.uuid4().hex[:24], "anthropic", items, state="running")
        self.desk._add(job)
        return self._ok(rec, self._anthropic_view(job, _origin(request)))

    async def anthropic_get(self, request: web.Request) -> web.Response:
        rec, job, failed = await self._anthropic_target(request)
        if job is None:
            assert failed is not None
            return failed
        await self.desk._polled(job)
        return self._ok(rec, self._anthropic_view(job, _origin(request)))

    async def anthropic_list(self, request: web.Request) -> web.Response:
        rec, _, failed = await self._begin(request, "anthropic")
        if failed is not None:
            return failed
        jobs = [j for j in self.desk.jobs.values() if j.protocol == "anthropic"][::-1]
        data = [self._anthropic_view(j, _origin(request)) for j in jobs]
        return self._ok(
            rec,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    async def anthropic_cancel(self, request: web.Request) -> web.Response:
        rec, job, failed = await self._anthropic_target(request)
        if job is None:
            assert failed is not None
            return failed
        if job.state == "ended":
            return self._ok(rec, self._anthropic_view(job, _origin(request)))
        async with job.lock:
            if job.state != "ended":
                job.cancel_initiated = job.updated = time.time()
                job.state = "canceling"
        return self._ok(rec, self._anthropic_view(job, _origin(request)))

    async def anthropic_delete(self, request: web.Request) -> web.Response:
        rec, job, failed = await self._anthropic_target(request)
        if job is None:
            assert failed is not None
            return failed
        if job.state != "ended":
            return self._error(
                rec, 400, "Batch cannot be deleted while it is still processing; cancel it first"
            )
        with self.desk._lock:
            self.desk.jobs.pop(job.id, None)
        return self._ok(rec, {"id": job.id, "type": "message_batch_deleted"})

    async def anthropic_results(self, request: web.Request) -> web.Response:
        rec, job, failed = await self._anthropic_target(request)
        if job is None:
            assert failed is not None
            return failed
        if job.state != "ended":
            return self._error(rec, 400, f"Batch {job.id} has not ended: no results yet")
        lines = []
        for i in job.order:
            item = job.items[i]
            result: dict[str, Any] = {"type": item.outcome}
            if item.outcome == "succeeded":
                result["message"] = item.response
            elif item.outcome == "errored":
                result["error"] = item.error_body or error_body(
                    "anthropic", item.status or 500, item.error or "error"
                )
            lines.append(dumps({"custom_id": item.key, "result": result}))
        rec.status = 200
        data = b"\n".join(lines) + b"\n"
        if self.desk.tamper_results is not None:
            data = self.desk.tamper_results(data)
        return web.Response(status=200, body=data, content_type="application/x-jsonl")

    # --- Gemini -------------------------------------------------------------------------------

    def _gemini_state(self, job: EmuBatch) -> str:
        if job.state == "pending":
            return "BATCH_STATE_PENDING"
        if job.state in ("running", "canceling"):
            return "BATCH_STATE_RUNNING"
        return {
            "completed": "BATCH_STATE_SUCCEEDED",
            "canceled": "BATCH_STATE_CANCELLED",
            "expired": "BATCH_STATE_EXPIRED",
            "failed": "BATCH_STATE_FAILED",
        }[job.end_reason or "completed"]

    def _gemini_view(self, job: EmuBatch) -> dict[str, Any]:
        counts = job.counts()
        stats = {
            "requestCount": str(len(job.items)),
            "successfulRequestCount": str(counts["succeeded"]),
            "failedRequestCount": str(len(job.items) - counts["succeeded"] - counts["processing"]),
            "pendingRequestCount": str(counts["processing"]),
        }
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "createTime": _iso(job.created),
            "updateTime": _iso(job.updated),
            "batchStats": stats,
            "state": self._gemini_state(job),
            "name": f"batches/{job.id}",
        }
        op: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": meta}
        if job.state != "ended":
            return op
        meta["endTime"] = _iso(job.ended)
        op["done"] = True
        if job.end_reason == "failed":
            op["error"] = {"code": 13, "message": job.failure or "The batch failed."}
            return op
        output: dict[str, Any]
        if job.input_file is not None:
            output = {"responsesFile": self._responses_file(job)}
        else:
            entries = [_gemini_entry(job.items[i]) for i in job.order]
            output = {"inlinedResponses": {"inlinedResponses": entries}}
        meta["output"] = output
        op["response"] = {
            "@type": (
                "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
            ),
            **output,
        }
        return op

    def _responses_file(self, job: EmuBatch) -> str:
        if job.output_file is None:
            lines = []
            for i in job.order:
                item = job.items[i]
                entry = _gemini_entry(item)
                entry.pop("metadata", None)
                lines.append(dumps({"key": item.key, **entry}))
            data = b"\n".join(lines) + b"\n"
            if self.desk.tamper_results is not None:
                data = self.desk.tamper_results(data)
            file = gemini_files(self.emu).add(data, file_id=f"batch-{job.id}")
            job.output_file = f"files/{file.id}"
        return job.output_file

    def _gemini_job(self, request: web.Request) -> tuple[EmuBatch | None, str]:
        name = request.match_info["name"]
        batch_id, _, op = name.partition(":")
        job = self.desk.jobs.get(batch_id)
        return (job if job is not None and job.protocol == "gemini" else None), op

    def _not_found(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        name = request.match_info["name"].partition(":")[0]
        return self._error(rec, 404, f"Batch batches/{name} not found.")

    async def gemini_create(self, request: web.Request) -> web.Response:
        rec, raw, failed = await self._begin(request, "gemini")
        if failed is not None:
            return failed
        model = request.match_info["model"]
        rec.model = model
        if len(raw) > GEMINI_MAX_INLINE_BYTES:
            return self._error(
                rec,
                400,
                f"Request payload size exceeds the limit: {GEMINI_MAX_INLINE_BYTES} bytes.",
            )
        body = rec.body
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            return self._error(rec, 400, "* BatchGenerateContentRequest.batch: batch is required\n")
        config = batch.get("inputConfig") or batch.get("input_config")
        if not isinstance(config, dict):
            return self._error(
                rec, 400, "* GenerateContentBatch.input_config: input_config is required\n"
            )
        file_name = config.get("fileName") or config.get("file_name")
        if file_name:
            file = gemini_files(self.emu).get(str(file_name))
            if file is None:
                return self._error(rec, 404, f"File {file_name} not found.")
            items = _file_items(file.data, model)
        else:
            holder = config.get("requests")
            reqs = holder.get("requests") if isinstance(holder, dict) else None
            if not isinstance(reqs, list) or not reqs:
                return self._error(
                    rec, 400, "* InputConfig.requests.requests: requests must not be empty\n"
                )
            items = []
            for i, entry in enumerate(reqs):
                req = entry.get("request") if isinstance(entry, dict) else None
                if not isinstance(req, dict):
                    return self._error(
                        rec, 400, f"* InlinedRequests.requests[{i}].request: request is required\n"
                    )
                meta = entry.get("metadata")
                key = meta.get("key") if isinstance(meta, dict) else None
                items.append(BatchItem(str(key) if key is not None else str(i), model, req, meta))
        job = EmuBatch(uuid.uuid4().hex[:24], "gemini", items, model=model)
        job.input_file = str(file_name) if file_name else None
        job.display_name = str(batch.get("displayName") or batch.get("display_name") or "")
        self.desk._add(job)
        return self._ok(rec, self._gemini_view(job))

    async def gemini_get(self, request: web.Request) -> web.Response:
        rec, _, failed = await self._begin(request, "gemini")
        if failed is not None:
            return failed
        job, op = self._gemini_job(request)
        if job is None or op:
            return self._not_found(rec, request)
        rec.model = job.model
        await self.desk._polled(job)
        return self._ok(rec, self._gemini_view(job))

    async def gemini_post(self, request: web.Request) -> web.Response:
        rec, _, failed = await self._begin(request, "gemini")
        if failed is not None:
            return failed
        job, op = self._gemini_job(request)
        if job is None or op != "cancel":
            return self._not_found(rec, request)
        rec.model = job.model
        # Gemini has no cancelling state: the job is CANCELLED at once.
        job.cancel_initiated = time.time()
        await self.desk._close(job, "canceled")
        return self._ok(rec, {})

    async def gemini_delete(self, request: web.Request) -> web.Response:
        rec, _, failed = await self._begin(request, "gemini")
        if failed is not None:
            return failed
        job, op = self._gemini_job(request)
        if job is None or op:
            return self._not_found(rec, request)
        with self.desk._lock:
            self.desk.jobs.pop(job.id, None)
        return self._ok(rec, {})


def _file_items(data: bytes, model: str) -> list[BatchItem]:
    """The items of a JSONL input file, one ``{"key", "request"}`` per line; a line that is
    not such an object is an item that fails (as a request the API cannot parse)."""
    items: list[BatchItem] = []
    for n, line in enumerate(x for x in data.splitlines() if x.strip()):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        key = entry.get("key") if isinstance(entry, dict) else None
        req = entry.get("request") if isinstance(entry, dict) else None
        item = BatchItem(str(key) if key is not None else str(n), model, req)
        if not isinstance(req, dict):
            item.outcome, item.status = "errored", 400
            item.error = f'Invalid JSONL line {n + 1}: expected {{"key", "request"}}'
        items.append(item)
    return items


def _gemini_entry(item: BatchItem) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if item.outcome == "succeeded":
        entry["response"] = item.response
    else:
        status = {"canceled": 499, "expired": 504}.get(item.outcome or "", item.status or 500)
        message = item.error or {"canceled": "Cancelled.", "expired": "Deadline expired."}.get(
            item.outcome or "", "error"
        )
        entry["error"] = {"code": _GRPC.get(status, 2), "message": message}
    if item.metadata is not None:
        entry["metadata"] = item.metadata
    return entry


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def install(emu: Emulator, app: web.Application) -> None:
    """The emulator's route-plugin hook (``emulator.ROUTE_PLUGINS``)."""
    add_routes(app, emu)


def add_routes(
    app: web.Application, emu: Emulator, prefixes: Iterable[str] = ("/v1beta", "")
) -> None:
    """Serve the Anthropic and Gemini batch endpoints of ``emu`` on ``app``.

    Gemini's ``models/{model}:batchGenerateContent`` must be added before the live
    ``models/{target}`` route, which would otherwise take it.
    """
    h = _Http(emu)
    r = app.router
    add_file_routes(app, emu)
    r.add_post("/v1/messages/batches", h.anthropic_create)
    r.add_get("/v1/messages/batches", h.anthropic_list)
    r.add_get("/v1/messages/batches/{batch_id}", h.anthropic_get)
    r.add_delete("/v1/messages/batches/{batch_id}", h.anthropic_delete)
    r.add_post("/v1/messages/batches/{batch_id}/cancel", h.anthropic_cancel)
    r.add_get("/v1/messages/batches/{batch_id}/results", h.anthropic_results)
    for prefix in prefixes:
        r.add_post(prefix + "/models/{model}:batchGenerateContent", h.gemini_create)
        r.add_get(prefix + "/batches/{name}", h.gemini_get)
        r.add_post(prefix + "/batches/{name}", h.gemini_post)
        r.add_delete(prefix + "/batches/{name}", h.gemini_delete)
