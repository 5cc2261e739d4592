"""Fault injection: scripted outcomes, random transient faults, provider-style rate limits.

Outcome syntax (for ``Emulator.script(model, [...])``, ``set_faults(kinds=[...])`` and the
request header ``x-emulator-fault``):

================  =================================================================
``ok``            answer normally
``429``           rate limited, with ``Retry-After`` (the emulator's ``retry_after``)
``429:0.05``      rate limited, ``Retry-After: 0.05``
``400`` ``401``   any 4xx/5xx code: that status with the protocol's error body
``500`` ``502``   (Anthropic names 529 ``overloaded_error``; ``overloaded`` = ``529``)
``503`` ``529``
``hang``          no answer for ``hang_seconds`` (default 30 s; ``hang:5`` for 5 s), then
                  504; does not block other requests; shutdown ends it at once
``slow:0.5``      answer normally after an extra 0.5 s
``reset``         abort the TCP connection without an answer
``malformed``     200 with a body that is not valid JSON
``empty``         200 with empty text; ``null``: 200 with no content (``null``/no parts)
``prose``         200 with a chatty answer that holds no JSON (a model ignoring the format)
``truncate``      streams stop half-way (no final event); plain answers are cut mid-body
``blocked``       200, the answer withheld by the provider's filter: Gemini ``promptFeedback``
                  ``blockReason: SAFETY`` (no candidates), Anthropic ``stop_reason: refusal``,
                  OpenAI ``finish_reason: content_filter`` with no content
``recitation``    200, Gemini's candidate stopped with ``finishReason: RECITATION`` and no text
                  (other protocols: as ``blocked``)
================  =================================================================

Example::

    >>> parse_fault("429:0.5")
    Fault(kind='status', spec='429:0.5', status=429, seconds=0.5)
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Fault", "FaultBook", "parse_fault"]

_SIMPLE = {
    "ok",
    "reset",
    "malformed",
    "empty",
    "null",
    "truncate",
    "prose",
    "blocked",
    "recitation",
}


@dataclass(frozen=True)
class Fault:
    """One outcome. ``kind``: ok, status, hang, slow, reset, malformed, empty, null, truncate,
    prose, blocked, recitation."""

    kind: str
    spec: str
    status: int = 200
    seconds: float | None = None


def parse_fault(spec: str) -> Fault:
    """Parse one outcome string (see the module docstring).

    Example:
        >>> parse_fault("overloaded").status
        529
    """
    s = spec.strip().lower()
    name, _, arg = s.partition(":")
    seconds = float(arg) if arg else None
    if name in _SIMPLE:
        return Fault(name, spec)
    if name == "overloaded":
        return Fault("status", spec, 529, seconds)
    if name in ("hang", "slow"):
        return Fault(name, spec, 200, seconds)
    if name.isdigit() and 400 <= int(name) <= 599:
        return Fault("status", spec, int(name), seconds)
    raise ValueError(f"unknown fault {spec!r}; see vlgate.testing.faults")


class FaultBook:
    """Thread-safe store of scripts, random-fault settings and rate limits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Fault]] = {}
        self._rate = 0.0
        self._kinds: list[Fault] = []
        self._rng = random.Random(0)
        self._limits: dict[str, tuple[int | None, int | None, float]] = {}
        self._usage: dict[str, deque[tuple[float, int]]] = {}

    def script(self, model: str, outcomes: Iterable[str]) -> None:
        """Queue outcomes for the next requests naming ``model`` (``"*"``: any model)."""
        parsed = [parse_fault(o) for o in outcomes]
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(parsed)

    def set_random(self, rate: float, kinds: Iterable[str], seed: int) -> None:
        parsed = [parse_fault(k) for k in kinds]
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if rate > 0 and not parsed:
            raise ValueError("kinds must not be empty when rate > 0")
        with self._lock:
            self._rate, self._kinds, self._rng = rate, parsed, random.Random(seed)

    def set_limit(self, model: str, rpm: int | None, tpm: int | None, window: float = 60.0) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        with self._lock:
            self._limits[model] = (rpm, tpm, window)
            self._usage.setdefault(model, deque())

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._rate, self._kinds = 0.0, []
            self._limits.clear()
            self._usage.clear()

    def pending(self, model: str) -> int:
        """Outcomes still queued for ``model``."""
        with self._lock:
            return len(self._scripts.get(model, ()))

    def next_fault(self, model: str | None, header: str | None) -> Fault | None:
        """The outcome for one request: header, then the model's script, then ``"*"``, then
        random faults."""
        if header:
            return parse_fault(header)
        with self._lock:
            for key in (model or "", "*"):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
            if self._rate > 0 and self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
        return None

    def check_limit(self, model: str | None, tokens: int, now: float | None = None) -> float | None:
        """Count one request of ``tokens`` against the model's limits (a sliding window, 60 s
        unless set otherwise).

        Returns the seconds to wait when over the limit (nothing is counted then), else ``None``.
        """
        if model is None:
            return None
        t = time.monotonic() if now is None else now
        with self._lock:
            limit = self._limits.get(model)
            if limit is None:
                return None
            rpm, tpm, window = limit
            usage = self._usage[model]
            while usage and usage[0][0] <= t - window:
                usage.popleft()
            over = (rpm is not None and len(usage) + 1 > rpm) or (
                tpm is not None and sum(n for _, n in usage) + tokens > tpm
            )
            if over:
                return max(0.001, usage[0][0] + window - t) if usage else window
            usage.append((t, tokens))
            return None
