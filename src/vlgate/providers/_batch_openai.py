"""OpenAI's Batch API: a JSONL file of chat-completions requests, uploaded and run as one job.

Wire (OpenAI API reference; research notes batch-and-proxy.md §1): ``POST {root}/files``
(multipart, ``purpose=batch``, a ``.jsonl`` file of ``{custom_id, method: "POST", url:
"/v1/chat/completions", body}`` lines), ``POST {root}/batches`` (``input_file_id``,
``endpoint``, ``completion_window: "24h"``), ``GET {root}/batches/{id}``, ``POST
{root}/batches/{id}/cancel``, and the results as ``GET {root}/files/{id}/content`` of the job's
``output_file_id`` and ``error_file_id``: lines ``{id, custom_id, response: {status_code,
request_id, body}, error}`` in no particular order (matched by ``custom_id``).

Each ``body`` is built by :meth:`OpenAICompatProvider.body`, the live request's builder, and
each answered ``body`` is read by its :meth:`~OpenAICompatProvider.completion_from`; a line's
error status goes through :func:`~vlgate.providers._errors.error_for_status`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, get_args

from .. import errors
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

if TYPE_CHECKING:
    from ..registry import BatchSpec
    from .base import ChatRequest, Completion
    from .openai import OpenAICompatProvider

__all__ = ["OpenAIBatchApi"]

ENDPOINT = "/v1/chat/completions"
# vlgate's normalised states are OpenAI's own words.
_STATES: frozenset[str] = frozenset(get_args(BatchState))
_TRANSFER_TIMEOUT = 300.0
"""Seconds allowed between bytes of an upload or a results download (files up to 200 MB)."""


class OpenAIBatchApi(BatchApi):
    """The Batch API next to an OpenAI(-compatible) provider's ``/chat/completions``."""

    def __init__(self, spec: BatchSpec, provider: OpenAICompatProvider) -> None:
        super().__init__(spec)
        self._provider = provider
        self._http = provider._http
        self._root = provider.root
        self._timeout = provider.config.timeout
        self._where: dict[str, Any] = {
            "provider": provider.route.provider.name,
            "model": provider.route.model,
        }

    def encode(self, custom_id: str, request: ChatRequest) -> BatchLine:
        body, dropped = self._provider.body(request)
        line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        return BatchLine(custom_id, dumps(line), dropped)

    async def submit(self, lines: Sequence[BatchLine], *, display_name: str) -> str:
        data = b"\n".join(line.data for line in lines) + b"\n"
        file_id = await self._upload(data, _filename(display_name))
        created = await self._http.post_json(
            f"{self._root}/batches",
            {
                "input_file_id": file_id,
                "endpoint": ENDPOINT,
                "completion_window": "24h",
                "metadata": {"created_by": "vlgate", "name": display_name[:512]},
            },
            timeout=self._timeout,
        )
        job_id = created.get("id")
        if not safe_id(job_id):
            raise malformed_answer("no usable batch 'id'", **self._where)
        return str(job_id)

    async def _upload(self, data: bytes, filename: str) -> str:
        boundary = "vlgate-" + uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        status, headers, raw = await self._http.request(
            f"{self._root}/files",
            head + data + tail,
            timeout=max(self._timeout, _TRANSFER_TIMEOUT),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        uploaded = self._http.json_of(status, headers, raw)
        file_id = uploaded.get("id")
        if not safe_id(file_id):
            raise malformed_answer("no usable file 'id'", **self._where)
        return str(file_id)

    def _checked(self, job_id: str) -> str:
        if not safe_id(job_id):
            raise errors.ConfigError(f"not a batch id: {job_id[:80]!r}")
        return job_id

    async def _job(self, job_id: str) -> dict[str, Any]:
        self._checked(job_id)
        return await self._http.get_json(f"{self._root}/batches/{job_id}", timeout=self._timeout)

    async def status(self, job_id: str) -> BatchStatus:
        return self._status(await self._job(job_id))

    def _status(self, job: dict[str, Any]) -> BatchStatus:
        raw = str(job.get("status") or "")
        if raw not in _STATES:
            raise malformed_answer(f"unknown batch status {raw!r}", **self._where)
        counts = job.get("request_counts")
        counts = counts if isinstance(counts, dict) else {}
        problems = job.get("errors")
        problems = problems.get("data") if isinstance(problems, dict) else None
        problems = problems if isinstance(problems, list) else []
        return BatchStatus(
            raw,  # type: ignore[arg-type]  # checked against _STATES above
            total=count_of(counts.get("total")),
            completed=count_of(counts.get("completed")),
            failed=count_of(counts.get("failed")),
            raw_state=raw,
            errors=tuple(_problem(p) for p in problems[:50] if isinstance(p, dict)),
        )

    async def results(self, job_id: str) -> dict[str, Completion | errors.VlgateError]:
        job = await self._job(job_id)
        out: dict[str, Completion | errors.VlgateError] = {}
        for key in ("output_file_id", "error_file_id"):
            file_id = job.get(key)
            if file_id is None or file_id == "":
                continue
            if not safe_id(file_id):
                raise malformed_answer(f"an unusable {key}", **self._where)
            raw = await self._http.get_bytes(
                f"{self._root}/files/{file_id}/content",
                timeout=max(self._timeout, _TRANSFER_TIMEOUT),
                max_bytes=RESULTS_MAX_BYTES,
            )
            for line in jsonl_objects(raw, f"batch {job_id} {key}"):
                cid = line.get("custom_id")
                if not isinstance(cid, str):
                    continue
                keep(out, cid, self._item(line))
        return out

    def _item(self, line: dict[str, Any]) -> Completion | errors.VlgateError:
        response = line.get("response")
        if isinstance(response, dict):
            status = response.get("status_code")
            body = response.get("body")
            if status == 200 and isinstance(body, dict):
                try:
                    return self._provider.completion_from(body, {})
                except errors.VlgateError as exc:
                    return exc
            return error_for_status(
                status if isinstance(status, int) and 100 <= status <= 599 else 500,
                body,
                secrets=(self._provider.api_key_for_transfer(),),
                **self._where,
            )
        err = line.get("error")
        if not isinstance(err, dict):
            err = {}
        code = str(err.get("code") or "error")[:100]
        message = str(err.get("message") or "the request was not answered")[:1000]
        if code == "request_timeout":
            return errors.TimeoutError(f"{code}: {message}", body=err, **self._where)
        return errors.ProviderError(f"{code}: {message}", body=err, retryable=False, **self._where)

    async def cancel(self, job_id: str) -> BatchStatus:
        job = await self._http.post_json(
            f"{self._root}/batches/{self._checked(job_id)}/cancel", {}, timeout=self._timeout
        )
        return self._status(job)


def _problem(p: dict[str, Any]) -> str:
    line = p.get("line")
    where = f"line {line}: " if line is not None else ""
    return f"{where}{p.get('message') or p.get('code') or 'invalid input'}"[:1000]


def _filename(display_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in display_name)[:60]
    return f"{safe or 'vlgate-batch'}.jsonl"
