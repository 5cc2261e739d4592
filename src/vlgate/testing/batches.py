"""OpenAI's Batch API in the emulator: ``/v1/files`` and ``/v1/batches``.

Endpoints (OpenAI auth: ``Authorization: Bearer KEY``), as the OpenAI API reference describes
them (research notes: batch-and-proxy.md §1):

* ``POST /v1/files`` — multipart ``purpose=batch`` + ``file`` (a ``.jsonl`` name, at most
  ``emu.batches.max_file_bytes``, 200 MB like OpenAI); ``GET /v1/files/{id}`` and
  ``GET /v1/files/{id}/content``.
* ``POST /v1/batches`` — ``{input_file_id, endpoint: "/v1/chat/completions",
  completion_window: "24h", metadata?}``; ``GET /v1/batches`` (list, newest first,
  ``?limit=&after=``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.

Lifecycle. A job is created ``validating``. Each ``GET /v1/batches/{id}`` moves it one step
(``emu.batches.auto``, on by default), or :meth:`OpenAIBatches.advance` does:

``validating`` -> ``in_progress`` (or ``failed`` with ``errors.data`` [{code, message, param,
line}] for a bad input file: a line that is not JSON, a ``method`` other than POST, a ``url``
other than the job's endpoint, a duplicate ``custom_id``, a second model, too many lines) ->
``in_progress`` answers ``lines_per_step`` lines per step (0: all of them) -> ``finalizing`` ->
``completed``. ``POST .../cancel`` -> ``cancelling`` -> ``cancelled`` on the next step;
:meth:`OpenAIBatches.expire` -> ``expired``. Lines not answered by then are error lines with
``error.code`` ``batch_cancelled`` / ``batch_expired``.

Each line's body is answered by :meth:`Emulator.answer_offline` exactly as a live
``/v1/chat/completions`` request (the same validation, image rules, vision and answers; a
scripted ``"500"`` for the model fails that one line), recorded in ``emu.requests`` with
``batch=<job id>``. Answered lines go to ``output_file_id``, failed ones (a non-200
``response.status_code``, or ``error``) to ``error_file_id``, each ``{id, custom_id,
response: {status_code, request_id, body}, error}``, in a shuffled order (seeded by the
emulator's seed) as real services do not keep the input order.

Example::

    with Emulator() as emu:
        emu.batches.lines_per_step = 10     # progress in steps of 10 lines
        emu.batches.auto = False            # nothing moves until advance()
        emu.batches.advance()               # every unfinished job one step
        emu.batches.expire(job_id)
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .records import RecordedRequest
from .wire import WireError, dumps, error_body

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["OpenAIBatches", "install"]

MB = 1024 * 1024
ENDPOINTS = frozenset(
    {
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    }
)
_SERVED = "/v1/chat/completions"
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_DAY = 24 * 3600


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.created_at + 30 * _DAY if self.purpose == "batch" else None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass
class _Job:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int
    state: str = "validating"
    validated: bool = False
    lines: list[dict[str, Any]] = field(default_factory=list)
    next: int = 0
    out: list[dict[str, Any]] = field(default_factory=list)
    err: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    times: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    tokens: tuple[int, int] = (0, 0)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def to_dict(self) -> dict[str, Any]:
        completed = len(self.out)
        failed = len(self.err)
        ti, to = self.tokens
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.state,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + _DAY,
            **{
                f"{name}_at": self.times.get(name)
                for name in (
                    "in_progress",
                    "finalizing",
                    "completed",
                    "failed",
                    "expired",
                    "cancelling",
                    "cancelled",
                )
            },
            "request_counts": {
                "total": len(self.lines),
                "completed": completed,
                "failed": failed,
            },
            "usage": {
                "input_tokens": ti,
                "output_tokens": to,
                "total_tokens": ti + to,
            },
            "metadata": self.metadata,
        }


def _now() -> int:
    return int(time.time())


class OpenAIBatches:
    """The OpenAI batch jobs and files of one emulator, and the knobs tests turn (``emu.batches``).

    Attributes:
        auto: each ``GET /v1/batches/{id}`` moves that job one step (default ``True``);
            ``False``: jobs move only by :meth:`advance`.
        lines_per_step: lines answered per ``in_progress`` step (0: all at once).
        max_file_bytes: the upload cap (OpenAI: 200 MB).
        max_lines: requests per input file (OpenAI: 50,000).
        uploads: how many files were uploaded (``POST /v1/files`` that succeeded).
        tamper_file: fault knob, ``(kind, data) -> data``: called with ``"output"`` or
            ``"error"`` and a results file's bytes when a job writes them; what it returns is
            served instead (garbage lines, duplicates, a missing line, a huge file).
        tamper_job: fault knob, ``dict -> dict``: each batch object (``GET``/``POST``
            ``/v1/batches...``) passes through it before it is sent (unknown states,
            forged counts, a file id with path characters).
    """

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self.auto = True
        self.lines_per_step = 0
        self.max_file_bytes = 200 * MB
        self.max_lines = 50_000
        self.files: dict[str, _File] = {}
        self.jobs: dict[str, _Job] = {}
        self.uploads = 0
        self.tamper_file: Callable[[str, bytes], bytes] | None = None
        self.tamper_job: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._lock = threading.Lock()

    # --- test controls (any thread) ---------------------------------------------------------

    def state(self, job_id: str) -> str:
        """The job's current state (``KeyError`` for an unknown id)."""
        return self.jobs[job_id].state

    def advance(self, job_id: str | None = None, steps: int = 1) -> None:
        """Move a job (``None``: every unfinished job) ``steps`` steps along its lifecycle."""
        for _ in range(steps):
            for job in self._pick(job_id):
                self._on_loop(self._step(job))

    def finish(self, job_id: str | None = None) -> None:
        """Run a job (``None``: every unfinished one) to its terminal state."""
        for job in self._pick(job_id):
            while job.state not in _TERMINAL:
                self._on_loop(self._step(job))

    def expire(self, job_id: str) -> None:
        """The 24 h window passes now: lines not yet answered become ``batch_expired`` errors."""
        self._on_loop(self._close(self.jobs[job_id], "expired", "batch_expired"))

    def _pick(self, job_id: str | None) -> list[_Job]:
        if job_id is not None:
            return [self.jobs[job_id]]
        with self._lock:
            return [j for j in self.jobs.values() if j.state not in _TERMINAL]

    def _on_loop(self, coro: Any) -> None:
        loop = self._emu._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the emulator is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("call the batch controls from a test thread, not the emulator")
        asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    # --- lifecycle ----------------------------------------------------------------------------

    async def _step(self, job: _Job) -> None:
        async with job.lock:
            if job.state == "validating":
                self._validate(job)
            elif job.state == "in_progress":
                await self._work(job)
            elif job.state == "finalizing":
                self._write_files(job)
                self._set(job, "completed")
            elif job.state == "cancelling":
                if not job.validated:
                    self._read_lines(job)
                self._drop_rest(job, "batch_cancelled")
                self._write_files(job)
                self._set(job, "cancelled")

    async def _close(self, job: _Job, state: str, code: str) -> None:
        async with job.lock:
            if job.state in _TERMINAL:
                return
            if not job.validated and self._read_lines(job):
                self._set(job, "failed")
                return
            self._drop_rest(job, code)
            self._write_files(job)
            self._set(job, state)

    def _set(self, job: _Job, state: str) -> None:
        job.state = state
        job.times[state] = _now()

    def _validate(self, job: _Job) -> None:
        problems = self._read_lines(job)
        if problems:
            job.errors = problems[:50]
            self._set(job, "failed")
            return
        self._set(job, "in_progress")

    def _read_lines(self, job: _Job) -> list[dict[str, Any]]:
        """Parse and check the input file into ``job.lines``; the problems found."""
        job.validated = True
        data = self.files[job.input_file_id].data
        problems: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        raw_lines = [ln for ln in data.splitlines() if ln.strip()]
        if len(raw_lines) > self.max_lines:
            problems.append(
                _problem(
                    "too_many_requests",
                    f"The input file has {len(raw_lines)} requests; a batch takes at most "
                    f"{self.max_lines}.",
                )
            )
        for n, raw in enumerate(raw_lines, start=1):
            try:
                line = json.loads(raw)
            except (ValueError, RecursionError):
                problems.append(_problem("invalid_json_line", "This line is not valid JSON.", n))
                continue
            if not isinstance(line, dict):
                problems.append(_problem("invalid_json_line", "A line must be an object.", n))
                continue
            cid = line.get("custom_id")
            body = line.get("body")
            if not isinstance(cid, str) or not cid:
                problems.append(_problem("missing_required_parameter", "custom_id", n, "custom_id"))
            elif cid in seen:
                problems.append(
                    _problem(
                        "duplicate_custom_id",
                        f"The custom_id '{cid}' is used more than once in the file.",
                        n,
                        "custom_id",
                    )
                )
            if line.get("method") != "POST":
                problems.append(
                    _problem("invalid_method", "The only supported method is POST.", n, "method")
                )
            if line.get("url") != job.endpoint:
                problems.append(
                    _problem(
                        "mismatched_endpoint",
                        f"The url must match the batch's endpoint {job.endpoint}.",
                        n,
                        "url",
                    )
                )
            if not isinstance(body, dict):
                problems.append(_problem("missing_required_parameter", "body", n, "body"))
            elif isinstance(body.get("model"), str):
                models.add(body["model"])
            if len(models) > 1:
                problems.append(
                    _problem(
                        "mismatched_model",
                        "The requests in a batch file must all use the same model.",
                        n,
                        "body.model",
                    )
                )
                models = {next(iter(models))}
            if isinstance(cid, str):
                seen.add(cid)
            lines.append(line)
        if not raw_lines:
            problems.append(_problem("empty_file", "The input file has no requests."))
        job.lines = [] if problems else lines
        return problems

    async def _work(self, job: _Job) -> None:
        todo = len(job.lines) - job.next
        count = todo if self.lines_per_step <= 0 else min(self.lines_per_step, todo)
        for _ in range(count):
            line = job.lines[job.next]
            job.next += 1
            rec = RecordedRequest(
                protocol="openai",
                method="POST",
                path=job.endpoint,
                query={},
                headers={},
                body=line.get("body"),
                t_received=time.time(),
                batch=job.id,
            )
            status, body = await self._emu.answer_offline(rec, "openai")
            entry = {
                "id": "batch_req_" + uuid.uuid4().hex[:24],
                "custom_id": line.get("custom_id"),
                "response": {
                    "status_code": status,
                    "request_id": "req_" + uuid.uuid4().hex[:24],
                    "body": body,
                },
                "error": None,
            }
            if status == 200:
                usage = body.get("usage") or {}
                ti, to = job.tokens
                job.tokens = (
                    ti + int(usage.get("prompt_tokens") or 0),
                    to + int(usage.get("completion_tokens") or 0),
                )
                job.out.append(entry)
            else:
                job.err.append(entry)
        if job.next >= len(job.lines):
            self._set(job, "finalizing")

    def _drop_rest(self, job: _Job, code: str) -> None:
        message = {
            "batch_expired": "This request could not be executed before the completion window "
            "expired.",
            "batch_cancelled": "This request was not executed because the batch was cancelled.",
        }[code]
        for line in job.lines[job.next :]:
            job.err.append(
                {
                    "id": "batch_req_" + uuid.uuid4().hex[:24],
                    "custom_id": line.get("custom_id"),
                    "response": None,
                    "error": {"code": code, "message": message},
                }
            )
        job.next = len(job.lines)

    def _write_files(self, job: _Job) -> None:
        rng = random.Random(f"{self._emu.seed}:{job.id}")
        for kind, entries in (("output", job.out), ("error", job.err)):
            if not entries:
                continue
            shuffled = list(entries)
            rng.shuffle(shuffled)
            data = b"".join(dumps(e) + b"\n" for e in shuffled)
            if self.tamper_file is not None:
                data = self.tamper_file(kind, data)
            file = self._new_file(f"batch_{job.id}_{kind}.jsonl", "batch_output", data)
            if kind == "output":
                job.output_file_id = file.id
            else:
                job.error_file_id = file.id

    def _new_file(self, filename: str, purpose: str, data: bytes) -> _File:
        file = _File("file-" + uuid.uuid4().hex[:24], filename, purpose, data, _now())
        with self._lock:
            self.files[file.id] = file
        return file

    # --- HTTP ---------------------------------------------------------------------------------

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        return self._emu._received(request, "openai", body)

    def _reply(self, rec: RecordedRequest, status: int, body: Any) -> web.Response:
        if status == 200 and self.tamper_job is not None and body.get("object") == "batch":
            body = self.tamper_job(body)
        rec.status = status
        if status >= 400:
            rec.error = body["error"]["message"]
        return web.Response(status=status, body=dumps(body), content_type="application/json")

    def _fail(self, rec: RecordedRequest, exc: WireError) -> web.Response:
        body = error_body("openai", exc.status, exc.message, param=exc.param, code=exc.code)
        return self._reply(rec, exc.status, body)

    def _check_auth(self, request: web.Request) -> None:
        problem = self._emu._auth(request, "openai", "openai")
        if problem is not None:
            raise problem

    async def h_upload(self, request: web.Request) -> web.Response:
        rec = self._record(request, None)
        try:
            self._check_auth(request)
            if not request.content_type.startswith("multipart/"):
                raise WireError(400, "Expected a multipart/form-data body with 'file'.")
            fields, filename = await self._form(request)
            data = fields.get("file")
            purpose = fields.get("purpose")
            rec.body = {
                "purpose": purpose,
                "filename": filename,
                "bytes": len(data) if isinstance(data, bytes | bytearray) else None,
            }
            if not isinstance(data, bytes | bytearray):
                raise WireError(400, "Missing required parameter: 'file'.", param="file")
            if purpose is None:
                raise WireError(400, "Missing required parameter: 'purpose'.", param="purpose")
            if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data", "evals"):
                raise WireError(
                    400, f"'{purpose}' is not one of the valid purposes.", param="purpose"
                )
            if purpose == "batch" and not filename.endswith(".jsonl"):
                raise WireError(
                    400,
                    "Invalid file format for Batch API. Must be .jsonl",
                    param="file",
                    code="invalid_file_format",
                )
            if len(data) > self.max_file_bytes:
                raise WireError(400, "File is too large.", param="file")
        except WireError as exc:
            return self._fail(rec, exc)
        file = self._new_file(filename, purpose, bytes(data))
        self.uploads += 1
        return self._reply(rec, 200, file.to_dict())

    async def _form(self, request: web.Request) -> tuple[dict[str, Any], str]:
        """The multipart fields (the file read in chunks, refused past ``max_file_bytes`` before
        it is all held); a body that is not well-formed multipart or UTF-8 is a 400."""
        fields: dict[str, Any] = {}
        filename = ""
        try:
            reader = await request.multipart()
            while True:
                part: Any = await reader.next()
                if part is None:
                    break
                if part.name == "file":
                    filename = str(part.filename or "")
                    data = bytearray()
                    while chunk := await part.read_chunk(1 << 20):
                        data += chunk
                        if len(data) > self.max_file_bytes:
                            raise WireError(400, "File is too large.", param="file")
                    fields["file"] = bytes(data)
                elif part.name is not None:
                    text = bytes(await part.read(decode=False))[:4096]
                    fields[str(part.name)] = text.decode("utf-8").strip()
        except (ValueError, AssertionError, RuntimeError, TypeError, HttpProcessingError):
            # aiohttp's multipart reader raises these on a malformed body; UnicodeDecodeError
            # is a ValueError.
            raise WireError(400, "Could not parse multipart form.") from None
        return fields, filename

    async def h_file(self, request: web.Request) -> web.Response:
        """``GET /v1/files/{id}``: the file object; ``.../content``: its bytes."""
        rec = self._record(request, None)
        try:
            self._check_auth(request)
            file = self._file(request.match_info["file_id"])
        except WireError as exc:
            return self._fail(rec, exc)
        if not request.path.endswith("/content"):
            return self._reply(rec, 200, file.to_dict())
        rec.status = 200
        return web.Response(status=200, body=file.data, content_type="application/octet-stream")

    def _file(self, file_id: str) -> _File:
        file = self.files.get(file_id)
        if file is None:
            raise WireError(404, f"No such File object: {file_id}", param="id")
        return file

    async def h_create(self, request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        rec = self._record(request, body)
        try:
            self._check_auth(request)
            if not isinstance(body, dict):
                raise WireError(400, "We could not parse the JSON body of your request.")
            for key in ("input_file_id", "endpoint", "completion_window"):
                if key not in body:
                    raise WireError(400, f"Missing required parameter: '{key}'.", param=key)
            endpoint = body["endpoint"]
            if endpoint not in ENDPOINTS:
                raise WireError(
                    400,
                    f"Invalid value: '{endpoint}'. Supported values are: "
                    + ", ".join(f"'{e}'" for e in sorted(ENDPOINTS))
                    + ".",
                    param="endpoint",
                )
            if endpoint != _SERVED:
                raise WireError(400, f"The emulator serves batches of {_SERVED} only.")
            if body["completion_window"] != "24h":
                raise WireError(
                    400,
                    "Invalid value: completion_window. Supported values are: '24h'.",
                    param="completion_window",
                )
            metadata = body.get("metadata")
            if metadata is not None and not (
                isinstance(metadata, dict)
                and len(metadata) <= 16
                and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
            ):
                raise WireError(
                    400, "metadata: at most 16 string pairs (values up to 512 characters)."
                )
            file = self._file(str(body["input_file_id"]))
            if file.purpose != "batch":
                raise WireError(400, "The input file must have purpose 'batch'.")
        except WireError as exc:
            return self._fail(rec, exc)
        job = _Job("batch_" + uuid.uuid4().hex[:24], file.id, endpoint, metadata, _now())
        with self._lock:
            self.jobs[job.id] = job
        return self._reply(rec, 200, job.to_dict())

    async def h_get(self, request: web.Request) -> web.Response:
        rec = self._record(request, None)
        try:
            self._check_auth(request)
            job = self._job(request.match_info["batch_id"])
        except WireError as exc:
            return self._fail(rec, exc)
        if self.auto:
            await self._step(job)
        return self._reply(rec, 200, job.to_dict())

    async def h_cancel(self, request: web.Request) -> web.Response:
        rec = self._record(request, None)
        try:
            self._check_auth(request)
            job = self._job(request.match_info["batch_id"])
            async with job.lock:
                if job.state in _TERMINAL:
                    raise WireError(
                        409, f"Cannot cancel a batch with status '{job.state}'.", code="conflict"
                    )
                if job.state != "cancelling":
                    self._set(job, "cancelling")
        except WireError as exc:
            return self._fail(rec, exc)
        return self._reply(rec, 200, job.to_dict())

    async def h_list(self, request: web.Request) -> web.Response:
        rec = self._record(request, None)
        try:
            self._check_auth(request)
            limit = int(request.query.get("limit", "20"))
        except WireError as exc:
            return self._fail(rec, exc)
        except ValueError:
            return self._fail(rec, WireError(400, "limit must be an integer", param="limit"))
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
        after = request.query.get("after")
        if after:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(after) + 1 :] if after in ids else []
        page = jobs[: max(1, min(limit, 100))]
        body = {
            "object": "list",
            "data": [j.to_dict() for j in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(jobs) > len(page),
        }
        return self._reply(rec, 200, body)

    def _job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise WireError(404, f"No batch found with id '{job_id}'.", param="batch_id")
        return job


def _problem(code: str, message: str, line: int | None = None, param: str | None = None) -> Any:
    return {"code": code, "message": message, "param": param, "line": line}


def install(emu: Emulator, app: web.Application) -> None:
    """Add the OpenAI Files and Batch routes to ``app`` and ``emu.batches`` (a route plug-in:
    ``emulator.ROUTE_PLUGINS``)."""
    if emu.batches is None:
        emu.batches = OpenAIBatches(emu)
    books: OpenAIBatches = emu.batches
    r = app.router
    r.add_post("/v1/files", books.h_upload)
    r.add_get("/v1/files/{file_id}", books.h_file)
    r.add_get("/v1/files/{file_id}/content", books.h_file)
    r.add_post("/v1/batches", books.h_create)
    r.add_get("/v1/batches", books.h_list)
    r.add_get("/v1/batches/{batch_id}", books.h_get)
    r.add_post("/v1/batches/{batch_id}/cancel", books.h_cancel)
