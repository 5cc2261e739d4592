"""Anthropic Message Batches as a :class:`~vlgate.providers._batch.BatchApi`.

Wire (Anthropic API reference, ``messages.batches``): ``POST /v1/messages/batches`` with
``{"requests": [{"custom_id", "params"}]}`` where ``params`` is the body a live ``/v1/messages``
call sends (built here by :meth:`AnthropicProvider.body`, so the same images, MIME types,
parameters and structured output); ``GET /v1/messages/batches/{id}`` for ``processing_status``
(``in_progress``, ``canceling``, ``ended``) and ``request_counts``; ``POST .../{id}/cancel``;
the results are the JSONL at ``results_url`` (set once the batch has ended), one
``{custom_id, result: {type: succeeded|errored|canceled|expired, ...}}`` per line in no
particular order. Same headers as the live calls (``x-api-key``, ``anthropic-version``).

The results are downloaded from ``GET /v1/messages/batches/{id}/results`` under the configured
base URL, the address ``results_url`` documents, never from the URL the answer names: the key
goes with that request, and an answer (a proxy's, a forged one) must not send it elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
from .anthropic import _ERROR_STATUS
from .base import count_of

if TYPE_CHECKING:
    from .anthropic import AnthropicProvider
    from .base import ChatRequest, Completion

__all__ = ["AnthropicBatchApi"]

_ENVELOPE = len(b'{"requests":[]}')


class AnthropicBatchApi(BatchApi):
    """Message Batches for one :class:`AnthropicProvider` (its key, base URL and body builder)."""

    def __init__(self, spec: BatchSpec, provider: AnthropicProvider) -> None:
        super().__init__(spec)
        self._provider = provider
        self._url = provider._url + "/batches"

    @property
    def _timeout(self) -> float:
        return self._provider.config.timeout

    def encode(self, custom_id: str, request: ChatRequest) -> BatchLine:
        body, dropped = self._provider.body(request)
        return BatchLine(custom_id, dumps({"custom_id": custom_id, "params": body}), dropped)

    def job_bytes(self, lines: Sequence[BatchLine]) -> int:
        """The JSON body of one create call: the items joined by commas in ``requests``."""
        return _ENVELOPE + sum(len(line.data) for line in lines) + max(0, len(lines) - 1)

    async def submit(self, lines: Sequence[BatchLine], *, display_name: str) -> str:
        # Anthropic batches have no name; ``display_name`` is for the APIs that take one.
        body = b'{"requests":[' + b",".join(line.data for line in lines) + b"]}"
        http = self._provider._http
        status, headers, raw = await http.request(self._url, body, timeout=self._timeout)
        data = http.json_of(status, headers, raw)
        batch_id = data.get("id")
        if not safe_id(batch_id):
            raise malformed_answer("no usable batch 'id'", **self._provider._where())
        return str(batch_id)

    def _at(self, batch_id: str) -> str:
        if not safe_id(batch_id) or "/" in batch_id:
            raise errors.ConfigError(f"not a message batch id: {batch_id[:80]!r}")
        return f"{self._url}/{batch_id}"

    async def _get(self, batch_id: str) -> dict[str, Any]:
        return await self._provider._http.get_json(self._at(batch_id), timeout=self._timeout)

    async def status(self, job_id: str) -> BatchStatus:
        return _status(await self._get(job_id))

    async def cancel(self, job_id: str) -> BatchStatus:
        http = self._provider._http
        status, headers, raw = await http.request(
            f"{self._at(job_id)}/cancel", b"", timeout=self._timeout
        )
        return _status(http.json_of(status, headers, raw))

    async def results(self, job_id: str) -> dict[str, Completion | errors.VlgateError]:
        data = await self._get(job_id)
        url = data.get("results_url")
        if not isinstance(url, str) or not url:
            state = data.get("processing_status")
            raise errors.ProviderError(
                f"batch {job_id} has no results yet (processing_status {state!r})",
                retryable=True,
                **self._provider._where(),
            )
        raw = await self._provider._http.get_bytes(
            f"{self._at(job_id)}/results", timeout=self._timeout, max_bytes=RESULTS_MAX_BYTES
        )
        out: dict[str, Completion | errors.VlgateError] = {}
        for entry in jsonl_objects(raw, f"message batch {job_id} results"):
            cid = entry.get("custom_id")
            result = entry.get("result")
            if not isinstance(cid, str) or not isinstance(result, dict):
                continue  # unreadable: its item is reported as having no result
            value = self._result(result)
            if value is not None:
                keep(out, cid, value)
        return out

    def _result(self, result: dict[str, Any]) -> Completion | errors.VlgateError | None:
        kind = result.get("type")
        if kind == "succeeded":
            message = result.get("message")
            if not isinstance(message, dict):
                return malformed_answer(
                    "a succeeded result has no message", **self._provider._where()
                )
            try:
                return self._provider.completion_from(message, {})
            except errors.VlgateError as exc:
                return exc
        if kind == "errored":
            error = result.get("error")
            inner = error.get("error") if isinstance(error, dict) else None
            kind_name = inner.get("type") if isinstance(inner, dict) else None
            return error_for_status(
                _ERROR_STATUS.get(str(kind_name), 500),
                dumps(error),
                secrets=(self._provider._api_key,),
                **self._provider._where(),
            )
        # canceled / expired: not answered; the orchestrator reports them as such.
        return None


def _status(data: dict[str, Any]) -> BatchStatus:
    raw = str(data.get("processing_status") or "")
    counts = data.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}

    def n(key: str) -> int:
        return count_of(counts.get(key))

    total = sum(n(k) for k in ("processing", "succeeded", "errored", "canceled", "expired"))
    state: BatchState
    if raw == "ended":
        if data.get("cancel_initiated_at"):
            state = "cancelled"
        elif n("expired"):
            state = "expired"
        else:
            state = "completed"
    elif raw == "canceling":
        state = "cancelling"
    else:
        state = "in_progress"
    return BatchStatus(
        state,
        total=total,
        completed=n("succeeded"),
        failed=n("errored") + n("canceled") + n("expired"),
        raw_state=raw,
    )
