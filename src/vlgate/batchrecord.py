"""``BatchRecord``: one line of a ``vlgate batch`` results file, typed, with a JSON round-trip.

Written by the batch engine (``cli/batchjob.py``), read back by resume, the summary and the
HTML report (``report.item_from_record``). Every field is always written (``null`` where it
does not apply), so every line of a file has the same keys whatever the task or outcome.

Example:
    >>> rec = BatchRecord(image="a.png", task="query", prompt="hi", answer="Hello.")
    >>> BatchRecord.from_json(rec.to_json()) == rec
    True
    >>> sorted(json.loads(rec.to_json()))[:4]
    ['answer', 'attempts', 'detections', 'dropped']
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .providers.base import Usage

if TYPE_CHECKING:
    from .grounding import Detections, Points

__all__ = [
    "BatchRecord",
    "RecordError",
    "iter_records",
    "read_records",
    "usage_from_dict",
    "usage_to_dict",
]


def usage_to_dict(usage: Usage | None) -> dict[str, Any] | None:
    """A :class:`~vlgate.Usage` as the plain JSON object records and ``--json`` output carry.

    Example:
        >>> usage_to_dict(Usage(10, 2))["output_tokens"]
        2
    """
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "image_tokens": usage.image_tokens,
        "cost": usage.cost,
    }


def usage_from_dict(data: Any) -> Usage | None:
    """The inverse of :func:`usage_to_dict`; missing counts are 0, a non-object is ``None``."""
    if not isinstance(data, Mapping):
        return None
    image = data.get("image_tokens")
    cost = data.get("cost")
    return Usage(
        input_tokens=int(data.get("input_tokens") or 0),
        output_tokens=int(data.get("output_tokens") or 0),
        image_tokens=int(image) if isinstance(image, int | float) else None,
        cost=float(cost) if isinstance(cost, int | float) else None,
    )


@dataclass(frozen=True)
class RecordError:
    """Why an item failed: the error's class name and its one-line message (at most 500 chars)."""

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> RecordError:
        """Example:
        >>> RecordError.from_exception(ValueError("bad  \\n input")).message
        'bad input'
        """
        message = " ".join(str(exc).split()) or type(exc).__name__
        return cls(type(exc).__name__, message[:500])


@dataclass
class BatchRecord:
    """One image's result. ``task`` is ``query``, ``detect``, ``point`` or ``json``; the field
    of that task (``answer``, ``detections``, ``points``, ``json``) holds the result, the
    others stay ``None``. A failed item has ``error`` set and no result. ``dropped`` (detect
    and point) counts entries of the answer that could not be read: ``0`` with no detections
    means the model found nothing; more means part of its answer was unreadable."""

    image: str
    task: str
    prompt: str | None = None
    answer: str | None = None
    json: Any = None
    detections: list[dict[str, Any]] | None = None
    points: list[dict[str, Any]] | None = None
    image_size: tuple[int, int] | None = None
    dropped: int | None = None
    model: str | None = None
    usage: Usage | None = None
    attempts: int | None = None
    latency: float | None = None
    error: RecordError | None = None

    @property
    def ok(self) -> bool:
        """Whether the item was answered."""
        return self.error is None

    @property
    def cost(self) -> float | None:
        """US dollars of this item, as priced when it was answered (``None``: unpriced)."""
        return None if self.usage is None else self.usage.cost

    def set_found(self, found: Detections | Points) -> None:
        """Fill in a detect/point result: its items (``detections`` for a ``"detect"`` record,
        else ``points``), the image size and how many entries could not be read."""
        items = found.to_dict()["items"]
        if self.task == "detect":
            self.detections = items
        else:
            self.points = items
        self.image_size = found.image_size
        self.dropped = found.dropped

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, every field present."""
        return {
            "image": self.image,
            "task": self.task,
            "prompt": self.prompt,
            "answer": self.answer,
            "json": self.json,
            "detections": self.detections,
            "points": self.points,
            "image_size": list(self.image_size) if self.image_size is not None else None,
            "dropped": self.dropped,
            "model": self.model,
            "usage": usage_to_dict(self.usage),
            "attempts": self.attempts,
            "latency": self.latency,
            "error": (
                {"type": self.error.type, "message": self.error.message} if self.error else None
            ),
        }

    def to_json(self) -> str:
        """One JSONL line (no newline)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchRecord:
        """A record from JSON data; absent keys (older files) are ``None``, unknown ones ignored.

        Raises:
            ValueError: no ``image`` path.
        """
        image = data.get("image")
        if not isinstance(image, str):
            raise ValueError("a batch record needs an 'image' path")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: data.get(k) for k in known}
        size = values["image_size"]
        values["image_size"] = (int(size[0]), int(size[1])) if size else None
        dropped = values["dropped"]
        values["dropped"] = int(dropped) if isinstance(dropped, int | float) else None
        values["usage"] = usage_from_dict(values["usage"])
        err = values["error"]
        values["error"] = (
            RecordError(str(err.get("type", "Error")), str(err.get("message", "")))
            if isinstance(err, Mapping)
            else None
        )
        values["task"] = str(values["task"] or "query")
        return cls(**values)

    @classmethod
    def from_json(cls, line: str) -> BatchRecord:
        """A record from one JSONL line (``ValueError`` when it is not one)."""
        data = json.loads(line)
        if not isinstance(data, Mapping):
            raise ValueError("a batch record is a JSON object")
        return cls.from_dict(data)


def iter_records(path: Path) -> Iterator[BatchRecord]:
    """Every record in a results file, in file order (none when it does not exist). Unreadable
    lines (one cut short by a crash) are skipped: that image counts as not done.

    Example:
        >>> sum(r.ok for r in iter_records(Path("out.jsonl")))  # doctest: +SKIP
        41
    """
    if not path.exists():
        return
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = BatchRecord.from_json(line)
            except (ValueError, TypeError, IndexError):
                continue
            yield record


def read_records(path: Path) -> dict[str, BatchRecord]:
    """The last record per image in a results file (see :func:`iter_records`).

    Example:
        >>> read_records(Path("out.jsonl"))["a.png"].ok  # doctest: +SKIP
        True
    """
    return {record.image: record for record in iter_records(path)}
