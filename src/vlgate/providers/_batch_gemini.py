"""Gemini batch mode (Gemini Developer API) as a :class:`~vlgate.providers._batch.BatchApi`.

Wire (Gemini API reference, ``batches``): ``POST {root}/models/{model}:batchGenerateContent``
with ``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request",
"metadata": {"key": custom_id}}]}}}}`` where ``request`` is the body a live
``generateContent`` call sends (built here by :meth:`GeminiProvider.body`: the same images,
MIME types, ``generationConfig`` and structured output). The call answers an Operation named
``batches/{id}``; ``GET {root}/batches/{id}`` gives ``metadata.state`` (``BATCH_STATE_PENDING``,
``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELLED``, ``EXPIRED``; the SDK's ``JOB_STATE_*``
words are read too), ``metadata.batchStats`` and, once done, the output: inline
(``inlinedResponses.inlinedResponses``, each ``response`` or ``error`` with its ``metadata``) or
a responses file (``responsesFile``, JSONL ``{key, response | error}``, downloaded from
``/download/v1beta/{file}:download?alt=media``). ``POST {root}/batches/{id}:cancel``.

Inline requests are capped at 20 MB per create call (``BATCH_APIS["gemini"].inline_max_bytes``);
a bigger job goes through the Files API instead: its JSONL (``{"key", "request"}`` per line) is
uploaded with the resumable protocol (``POST /upload/v1beta/files``, ``X-Goog-Upload-Command:
start``, then ``upload, finalize`` to the ``X-Goog-Upload-URL`` answered) and the job names it
in ``inputConfig.fileName`` (the API takes files up to 2 GB; jobs are cut at ``max_bytes``).
Results are matched by ``metadata.key`` / ``key``, never by position (users report inline
responses out of order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import errors
from ..registry import BatchSpec
from ._batch import (
    RESULTS_MAX_BYTES,
    BatchApi,
    BatchLine,
    BatchState,
    BatchStatus,
    jsonl_objects,
    keep,
    safe_id,
)
from ._errors import error_for_status, malformed_answer
from ._http import dumps
from .base import count_of
from .gemini import gemini_base

if TYPE_CHECKING:
    from .base import ChatRequest, Completion
    from .gemini import GeminiProvider

__all__ = ["GeminiBatchApi"]

_INLINE_HEAD = b'{"request":'
_ENVELOPE = b'{"batch":{"displayName":"","inputConfig":{"requests":{"requests":[]}}}}'


def _file_parts(line: BatchLine) -> tuple[bytes | memoryview, ...]:
    """An inline item ``{"request": R, "metadata": {"key": K}}`` as the pieces of a JSONL input
    line ``{"key": K, "request": R}`` and its newline; ``R`` is a view, not a copy (a job of
    images is large)."""
    key = dumps(line.custom_id)
    tail = len(b',"metadata":{"key":') + len(key) + len(b"}}")
    request = memoryview(line.data)[len(_INLINE_HEAD) : len(line.data) - tail]
    return (b'{"key":', key, b',"request":', request, b"}\n")


_STATES: dict[str, BatchState] = {
    "PENDING": "validating",
    "QUEUED": "validating",
    "RUNNING": "in_progress",
    "UPDATING": "in_progress",
    "PAUSED": "in_progress",
    "CANCELLING": "cancelling",
    "SUCCEEDED": "completed",
    "PARTIALLY_SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
}
# google.rpc.Code of a per-item error -> the HTTP status the live call would have answered.
_HTTP_OF_CODE = {
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    13: 500,
    14: 503,
    16: 401,
}


class GeminiBatchApi(BatchApi):
    """Batch mode for one :class:`GeminiProvider` (its key, base URL and body builder)."""

    def __init__(self, spec: BatchSpec, provider: GeminiProvider) -> None:
        super().__init__(spec)
        self._provider = provider
        route = provider.route
        self._root = gemini_base(provider.api_base or route.provider.base_url or "")
        self._create = f"{self._root}/models/{route.model}:batchGenerateContent"
        parts = urlsplit(self._root)
        self._download = f"{parts.scheme}://{parts.netloc}/download{parts.path}"
        self._upload_url = f"{parts.scheme}://{parts.netloc}/upload{parts.path}/files"

    @property
    def _timeout(self) -> float:
        return self._provider.config.timeout

    def encode(self, custom_id: str, request: ChatRequest) -> BatchLine:
        body, dropped = self._provider.body(request)
        # Serialised by hand so that _file_parts() can re-frame it without parsing it again.
        data = _INLINE_HEAD + dumps(body) + b',"metadata":{"key":' + dumps(custom_id) + b"}}"
        return BatchLine(custom_id, data, dropped)

    def job_bytes(self, lines: Sequence[BatchLine]) -> int:
        """Bytes of one job as uploaded: the inline create body while it fits the inline cap
        (``spec.inline_max_bytes``), else the JSONL input file."""
        inline = len(_ENVELOPE) + 256 + sum(len(line.data) + 1 for line in lines)
        cap = self.spec.inline_max_bytes
        if cap is None or inline <= cap:
            return inline
        return sum(len(part) for line in lines for part in _file_parts(line))

    async def submit(self, lines: Sequence[BatchLine], *, display_name: str) -> str:
        cap = self.spec.inline_max_bytes
        inline = len(_ENVELOPE) + 256 + sum(len(line.data) + 1 for line in lines)
        head = dumps({"displayName": display_name})[:-1]  # '{"displayName":"..."'
        if cap is not None and inline > cap:
            jsonl = b"".join(part for line in lines for part in _file_parts(line))
            file_name = await self._upload(jsonl, display_name)
            body = b'{"batch":' + head + b',"inputConfig":{"fileName":' + dumps(file_name) + b"}}}"
        else:
            body = (
                b'{"batch":'
                + head
                + b',"inputConfig":{"requests":{"requests":['
                + b",".join(line.data for line in lines)
                + b"]}}}}"
            )
        http = self._provider._http
        status, headers, raw = await http.request(self._create, body, timeout=self._timeout)
        data = http.json_of(status, headers, raw)
        name = data.get("name")
        if not isinstance(name, str) or not name.startswith("batches/") or not safe_id(name):
            raise malformed_answer("no batch 'name' in the operation", **self._provider._where())
        return name

    async def _upload(self, data: bytes, display_name: str) -> str:
        """Upload the JSONL input through the Files API (resumable: start, then one
        ``upload, finalize``); return its ``files/...`` name."""
        http = self._provider._http
        start = {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        }
        meta = dumps({"file": {"displayName": display_name}})
        status, headers, raw = await http.request(
            self._upload_url, meta, timeout=self._timeout, headers=start
        )
        http.json_of(status, headers, raw)
        url = headers.get("X-Goog-Upload-URL")
        if not url:
            raise malformed_answer(
                "the upload start gave no X-Goog-Upload-URL", **self._provider._where()
            )
        finish = {
            "X-Goog-Upload-Command": "upload, finalize",
            "X-Goog-Upload-Offset": "0",
            "Content-Type": "application/jsonl",
        }
        status, headers, raw = await http.request(url, data, timeout=self._timeout, headers=finish)
        file = http.json_of(status, headers, raw).get("file")
        name = file.get("name") if isinstance(file, dict) else None
        if not isinstance(name, str) or not name.startswith("files/"):
            raise malformed_answer("the upload answered no file name", **self._provider._where())
        return name

    def _name(self, job_id: str) -> str:
        name = job_id if job_id.startswith("batches/") else f"batches/{job_id}"
        if not safe_id(name):
            raise errors.ConfigError(f"not a batch name: {job_id[:80]!r}")
        return name

    async def _get(self, job_id: str) -> dict[str, Any]:
        return await self._provider._http.get_json(
            f"{self._root}/{self._name(job_id)}", timeout=self._timeout
        )

    async def status(self, job_id: str) -> BatchStatus:
        return _status(await self._get(job_id))

    async def cancel(self, job_id: str) -> BatchStatus:
        http = self._provider._http
        status, headers, raw = await http.request(
            f"{self._root}/{self._name(job_id)}:cancel", b"{}", timeout=self._timeout
        )
        http.json_of(status, headers, raw)  # an empty object; raises the mapped error otherwise
        return await self.status(job_id)

    async def results(self, job_id: str) -> dict[str, Completion | errors.VlgateError]:
        op = await self._get(job_id)
        output = _output(op)
        entries: list[Any]
        if isinstance(output.get("inlinedResponses"), dict):
            entries = output["inlinedResponses"].get("inlinedResponses") or []
            entries = entries if isinstance(entries, list) else []
        elif isinstance(output.get("responsesFile"), str):
            file_name = output["responsesFile"]
            if not file_name.startswith("files/") or not safe_id(file_name):
                raise malformed_answer("an unusable responsesFile", **self._provider._where())
            raw = await self._provider._http.get_bytes(
                f"{self._download}/{file_name}:download?alt=media",
                timeout=self._timeout,
                max_bytes=RESULTS_MAX_BYTES,
            )
            entries = jsonl_objects(raw, f"batch {job_id} responses file")
        elif op.get("done"):
            entries = []
        else:
            state = _meta(op).get("state")
            raise errors.ProviderError(
                f"batch {job_id} has no results yet (state {state!r})",
                retryable=True,
                **self._provider._where(),
            )
        # Items a cancelled or expired job never ran come back as CANCELLED (1) or
        # DEADLINE_EXCEEDED (4) errors: left out, the orchestrator reports them as not run.
        word = str(_meta(op).get("state") or "")
        not_run = {"CANCELLED": 1, "EXPIRED": 4}.get(word.rsplit("_", 1)[-1])
        out: dict[str, Completion | errors.VlgateError] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            error = entry.get("error")
            if not_run is not None and isinstance(error, dict) and error.get("code") == not_run:
                continue
            meta = entry.get("metadata")
            key = meta.get("key") if isinstance(meta, dict) else entry.get("key")
            if not isinstance(key, str):
                continue  # not one of vlgate's items: unmatched, never guessed by position
            keep(out, key, self._entry(entry))
        return out

    def _entry(self, entry: dict[str, Any]) -> Completion | errors.VlgateError:
        response = entry.get("response")
        if isinstance(response, dict):
            try:
                return self._provider.completion_from(response, {}, self._provider.route.model)
            except errors.VlgateError as exc:
                return exc
        error = entry.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        status = _HTTP_OF_CODE.get(code, 500) if isinstance(code, int) else 500
        message = str(error.get("message") or "error")[:1000]
        body = {"error": {"code": status, "message": message}}
        return error_for_status(
            status, dumps(body), secrets=(self._provider._api_key,), **self._provider._where()
        )


def _meta(op: dict[str, Any]) -> dict[str, Any]:
    meta = op.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _output(op: dict[str, Any]) -> dict[str, Any]:
    """The batch output of an Operation: ``response`` (REST) or ``metadata.output``."""
    for holder in (op.get("response"), _meta(op).get("output")):
        if isinstance(holder, dict) and ("inlinedResponses" in holder or "responsesFile" in holder):
            return holder
    return {}


def _status(op: dict[str, Any]) -> BatchStatus:
    meta = _meta(op)
    raw = str(meta.get("state") or "")[:100]
    word = raw.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    state = _STATES.get(word, "completed" if op.get("done") else "in_progress")
    stats = meta.get("batchStats")
    stats = stats if isinstance(stats, dict) else {}

    def n(key: str) -> int:
        return count_of(stats.get(key))

    problems: tuple[str, ...] = ()
    error = op.get("error")
    if isinstance(error, dict) and error.get("message"):
        problems = (str(error["message"])[:1000],)
    return BatchStatus(
        state,
        total=n("requestCount"),
        completed=n("successfulRequestCount"),
        failed=n("failedRequestCount"),
        raw_state=raw,
        errors=problems,
    )
