"""The seam a provider implements to offer its Batch API (half price, answers within 24 h).

A provider with a Batch API returns a :class:`BatchApi` from
:meth:`~vlgate.providers.base.Provider.batch_api` (``None`` by default: no batch API). The
adapter only speaks the wire: it encodes one request per item with the *same* body builder as
the live call, submits a job, reads its status, downloads its results and cancels it. Everything
else is :mod:`vlgate.batches`: loading and encoding the images exactly as live calls do, the
per-item ``custom_id`` (input index and sizes, so a resumed job can order results and map boxes
back to original pixels), splitting by the :class:`~vlgate.registry.BatchSpec` limits, combining
the statuses of several jobs, and post-processing answers (JSON, detect, point) and the price.

Contract for an adapter (one per protocol: OpenAI, Anthropic, Gemini):

* ``encode(custom_id, request)`` -> :class:`BatchLine`: the bytes of one item as it will be
  uploaded (a JSONL line, or one JSON element of an inline ``requests`` array), built by the
  provider's live body builder. Its length is what the orchestrator counts against
  ``spec.max_bytes``; :meth:`BatchApi.job_bytes` adds the envelope.
* ``submit(lines, display_name=...)`` -> the provider's job id (one job; the orchestrator
  splits beforehand).
* ``status(job_id)`` -> :class:`BatchStatus`, the provider's state normalised to
  :data:`BatchState` (``raw_state`` keeps the provider's word).
* ``results(job_id)`` -> ``{custom_id: Completion | VlgateError}`` for the items the provider
  reports; per-item failures go through the one error mapper (``providers/_errors.py``).
  Items it does not report (cancelled or expired before they ran) are left out: the
  orchestrator turns them into errors.
* ``cancel(job_id)`` -> the status after asking.

Every failure of these calls is a vlgate error (the shared :class:`~vlgate.providers._http.
HttpClient` maps statuses and transport faults). Custom ids match ``^[a-zA-Z0-9_-]{1,64}$``
(Anthropic's rule, used for every protocol).

What comes back is read as hostile (a results file is downloaded from a server; a job id may
have been stored and edited): a job or file id goes into a URL only if :func:`safe_id` accepts
it; a results file is read up to :data:`RESULTS_MAX_BYTES` (past it, a non-retried
``ProviderError``) and split by :func:`jsonl_objects`, which skips, and logs, lines that are
over :data:`LINE_MAX_BYTES`, not JSON, not UTF-8 or not an object: their items come back as
"no result" errors, the other items as answered. Counts go through
:func:`~vlgate.providers.base.count_of` (no negative, string or non-finite count).
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..errors import VlgateError
    from ..registry import BatchSpec
    from .base import ChatRequest, Completion

__all__ = [
    "CUSTOM_ID",
    "TERMINAL",
    "BatchApi",
    "BatchLine",
    "BatchState",
    "BatchStatus",
    "jsonl_objects",
    "keep",
    "safe_id",
]

log = logging.getLogger("vlgate")

BatchState = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
]
"""A job's state, normalised (OpenAI's words; Anthropic's ``ended`` is ``completed``, Gemini's
``BATCH_STATE_SUCCEEDED`` is ``completed``, ...)."""

TERMINAL: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})
"""States after which nothing changes: results can be read."""

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What every custom id matches (Anthropic's pattern, the strictest of the three APIs)."""


RESULTS_MAX_BYTES = 1 << 30
"""The largest results file vlgate downloads (1 GiB; a job's input is at most 200 MB to 2 GB
of mostly images, its answers are text)."""
LINE_MAX_BYTES = 16 << 20
"""The largest results line read (one answer); a longer one is skipped."""

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}(?:/[A-Za-z0-9][A-Za-z0-9_-]{0,199})?")


def safe_id(value: object) -> bool:
    """Whether ``value`` may be put in a URL path as a provider's job or file id: letters,
    digits, ``_`` and ``-``, with at most one inner ``/`` (Gemini's ``batches/…``,
    ``files/…``); never ``..``, ``?``, ``#``, ``%`` or a space.

    Example:
        >>> safe_id("batch_abc"), safe_id("batches/x1"), safe_id("../files"), safe_id("a?b")
        (True, True, False, False)
    """
    return isinstance(value, str) and _SAFE_ID.fullmatch(value) is not None


def jsonl_objects(raw: bytes, where: str = "results file") -> list[dict[str, Any]]:
    """The JSON objects of a downloaded JSONL file; lines that are blank are ignored, lines
    that are too long, not UTF-8 JSON or not an object are skipped and logged (their items
    then have no result, reported as such).

    Example:
        >>> jsonl_objects(b'{"a": 1}\n[1]\nnot json\n\n{"b": 2}')
        [{'a': 1}, {'b': 2}]
    """
    out: list[dict[str, Any]] = []
    skipped = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            if len(line) > LINE_MAX_BYTES:
                raise ValueError("too long")
            entry = json.loads(line)
        except (ValueError, RecursionError):
            entry = None
        if isinstance(entry, dict):
            out.append(entry)
        else:
            skipped += 1
    if skipped:
        log.warning("%s: %d unreadable line(s) skipped", where, skipped)
    return out


def keep(
    out: dict[str, Completion | VlgateError], key: str, value: Completion | VlgateError
) -> None:
    """Record ``value`` for ``key`` unless a better one is there: when a results file holds two
    lines for one item, an answer wins over an error and the first answer over a later one
    (nothing shifts: results are matched by custom id, never by position)."""
    from ..errors import VlgateError

    kept = out.get(key)
    if kept is None or (isinstance(kept, VlgateError) and not isinstance(value, VlgateError)):
        out[key] = value


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch job stands.

    Attributes:
        state: normalised state (:data:`BatchState`).
        total: requests in the job(s).
        completed: requests answered so far.
        failed: requests that failed so far.
        raw_state: the provider's own word for the state (``ended``, ``BATCH_STATE_RUNNING``).
        errors: job-level problems the provider reported (a rejected input file).
        parts: for a job split across several provider jobs, each part's status.

    Example:
        >>> s = BatchStatus("in_progress", total=50, completed=20)
        >>> s.done, s.pending
        (False, 30)
    """

    state: BatchState
    total: int = 0
    completed: int = 0
    failed: int = 0
    raw_state: str = ""
    errors: tuple[str, ...] = ()
    parts: tuple[BatchStatus, ...] = field(default=(), repr=False)

    @property
    def done(self) -> bool:
        """Whether the job reached a terminal state (its results can be read)."""
        return self.state in TERMINAL

    @property
    def pending(self) -> int:
        """Requests neither answered nor failed yet."""
        return max(0, self.total - self.completed - self.failed)


@dataclass(frozen=True)
class BatchLine:
    """One item encoded for upload: its custom id, its bytes, the caller parameters dropped."""

    custom_id: str
    data: bytes
    dropped: dict[str, str] = field(default_factory=dict)
    """Parameters the API is known to reject, with the reason (as ``Answer.dropped_reasons``)."""


class BatchApi(ABC):
    """One provider's Batch API over its HTTP client. Built by ``Provider.batch_api()``.

    ``spec`` is the provider's :class:`~vlgate.registry.BatchSpec` row: limits per job and the
    price factor.
    """

    def __init__(self, spec: BatchSpec) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec.name!r})"

    @abstractmethod
    def encode(self, custom_id: str, request: ChatRequest) -> BatchLine:
        """One item as uploaded, built by the live request's body builder."""

    def job_bytes(self, lines: Sequence[BatchLine]) -> int:
        """Bytes of one job made of ``lines`` as uploaded (default: JSONL, one newline each,
        plus a little for the envelope)."""
        return sum(len(line.data) + 1 for line in lines) + 1024

    @abstractmethod
    async def submit(self, lines: Sequence[BatchLine], *, display_name: str) -> str:
        """Create one job of ``lines``; return the provider's job id."""

    @abstractmethod
    async def status(self, job_id: str) -> BatchStatus:
        """The job's current status."""

    @abstractmethod
    async def results(self, job_id: str) -> dict[str, Completion | VlgateError]:
        """Each reported item's answer or error, by custom id (a terminal job)."""

    @abstractmethod
    async def cancel(self, job_id: str) -> BatchStatus:
        """Ask the provider to cancel the job; return its status after asking."""
